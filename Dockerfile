# The image every Airflow service in docker-compose.yml runs: Airflow plus this project, installed
# from requirements.lock (the platform and what the compose stack runs; no test packages).
#
#   docker compose build                                   # production: FROM the official Airflow image
#   DOCKER_BUILDKIT=1 docker build --build-arg BASE=debian -t pkpi-airflow:latest .
#                                                          # no registry: FROM a Debian base made locally
#
# BASE=official (the default) starts from apache/airflow; BASE=debian from LOCAL_BASE_IMAGE, a
# Debian bookworm image made on the machine itself from the apt mirror (docs/runbook.md, "Starting
# the stack"), with Debian's Python 3.11 and an entrypoint that does what the official one does
# for docker-compose.yml (migrate, create the admin user, run the airflow subcommand). Build with
# BuildKit (DOCKER_BUILDKIT=1), which builds only the base asked for.
#
# Sites whose TLS is intercepted by a proxy put its CA certificates (*.crt) in docker/ca-certificates/
# before building (never committed; .gitignore): they are trusted by apt and pip inside the build.
#
# Layout inside the image: the project lives in /opt/pkpi (dags/, dbt_project/, seeds/,
# expectations/), the pkpi package is installed into Airflow's Python, and the data folder
# /opt/pkpi/data is where docker-compose.yml mounts its named volume.
ARG BASE=official
ARG AIRFLOW_IMAGE=apache/airflow:3.3.2-python3.11
ARG LOCAL_BASE_IMAGE=pkpi-debian-base:bookworm
# The uv that installs the lock on the Debian base: the one `make setup` uses (Makefile UV_VERSION).
ARG UV_VERSION=0.13.9

FROM ${AIRFLOW_IMAGE} AS base-official
USER root
COPY docker/ca-certificates/ /usr/local/share/ca-certificates/pkpi-extra/
RUN update-ca-certificates > /dev/null
USER airflow
# How the lock is installed: the official image's own pip, as Airflow's docs extend it.
ENV PKPI_INSTALL="pip install --no-cache-dir --disable-pip-version-check"

FROM ${LOCAL_BASE_IMAGE} AS base-debian
COPY docker/ca-certificates/ /usr/local/share/ca-certificates/pkpi-extra/
# What the official image gives the stack: Python 3.11, curl for the health checks, the PostgreSQL
# client library, tini as PID 1, and the airflow user (uid 50000, group 0) with a home of its own.
RUN apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
       ca-certificates python3.11 python3.11-venv curl libpq5 tini procps > /dev/null \
    && update-ca-certificates > /dev/null \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 50000 --gid 0 --create-home --home-dir /home/airflow airflow \
    && mkdir -p /opt/airflow && chown airflow:0 /opt/airflow && chmod 2775 /opt/airflow \
    && python3.11 -m venv /home/airflow/.venv && chown -R airflow:0 /home/airflow
ENV PATH=/home/airflow/.venv/bin:$PATH \
    AIRFLOW_HOME=/opt/airflow \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    PYTHONUNBUFFERED=1
COPY docker/entrypoint.sh /entrypoint
ENTRYPOINT ["/usr/bin/tini", "--", "/entrypoint"]
USER airflow
# How the lock is installed here: uv, which fetches in parallel and compiles the bytecode on every
# core (pip took over three minutes on two cores). It lives in /tmp only until the lock is in.
ARG UV_VERSION
RUN python3.11 -m venv /tmp/pkpi-uv && /tmp/pkpi-uv/bin/pip install --quiet --no-cache-dir \
    --disable-pip-version-check "uv==${UV_VERSION}"
ENV PKPI_INSTALL="/tmp/pkpi-uv/bin/uv pip install --no-cache --compile-bytecode --system-certs --python /home/airflow/.venv/bin/python"

FROM base-${BASE}
ENV PKPI_PROJECT_DIR=/opt/pkpi \
    PKPI_DATA_DIR=/opt/pkpi/data \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/pkpi/dags \
    AIRFLOW__CORE__LOAD_EXAMPLES=False \
    GX_ANALYTICS_ENABLED=False

# Group 0 owns the project and may write to it, as in the Airflow image itself, so the
# containers also work under another AIRFLOW_UID.
USER root
RUN mkdir -p /opt/pkpi/data \
    && chown -R airflow:0 /opt/pkpi \
    && chmod -R g+rwX /opt/pkpi
USER airflow
WORKDIR /opt/pkpi

# Dependencies first, so changing the project's code does not reinstall them. The lock pins
# apache-airflow==3.3.2 too, so the image's Airflow cannot move.
COPY --chown=airflow:0 requirements.lock /opt/pkpi/requirements.lock
RUN ${PKPI_INSTALL} -r /opt/pkpi/requirements.lock && rm -rf /tmp/pkpi-uv

# The package itself, not editable: the image is a release, not a workspace.
COPY --chown=airflow:0 pyproject.toml README.md /opt/pkpi/
COPY --chown=airflow:0 include /opt/pkpi/include
RUN pip install --no-cache-dir --disable-pip-version-check --no-deps /opt/pkpi \
    && rm -rf /opt/pkpi/build /opt/pkpi/include/*.egg-info

# What the stages read at run time; PKPI_PROJECT_DIR above points the package at it.
COPY --chown=airflow:0 dags /opt/pkpi/dags
COPY --chown=airflow:0 dbt_project /opt/pkpi/dbt_project
COPY --chown=airflow:0 seeds /opt/pkpi/seeds
COPY --chown=airflow:0 expectations /opt/pkpi/expectations

WORKDIR /opt/airflow
