# The image every Airflow service in docker-compose.yml runs: the official Airflow image plus
# this project, installed from the same lock file as the development venv.
#
#   docker compose build
#
# Layout inside the image: the project lives in /opt/pkpi (dags/, dbt_project/, seeds/,
# expectations/), the pkpi package is installed into Airflow's Python, and the data folder
# /opt/pkpi/data is where docker-compose.yml mounts its named volume.
FROM apache/airflow:3.3.2-python3.11

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
RUN pip install --no-cache-dir -r /opt/pkpi/requirements.lock

# The package itself, not editable: the image is a release, not a workspace.
COPY --chown=airflow:0 pyproject.toml README.md /opt/pkpi/
COPY --chown=airflow:0 include /opt/pkpi/include
RUN pip install --no-cache-dir --no-deps /opt/pkpi \
    && rm -rf /opt/pkpi/build /opt/pkpi/include/*.egg-info

# What the stages read at run time; PKPI_PROJECT_DIR above points the package at it.
COPY --chown=airflow:0 dags /opt/pkpi/dags
COPY --chown=airflow:0 dbt_project /opt/pkpi/dbt_project
COPY --chown=airflow:0 seeds /opt/pkpi/seeds
COPY --chown=airflow:0 expectations /opt/pkpi/expectations

WORKDIR /opt/airflow
