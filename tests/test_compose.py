"""docker-compose.yml and the Dockerfile: a valid Compose file that runs the platform on Airflow 3
with the CeleryExecutor, as the comments at the top of docker-compose.yml describe.

The Compose file is validated against the Compose Specification's JSON schema, vendored as
tests/support/compose-spec.json from the PyPI package docker-compose 1.29.2
(compose/config/compose_spec.json, Apache-2.0), since the tests run without a network. Docker
itself is not needed: nothing here builds or starts a container.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft201909Validator

from pkpi.airflow.names import WRITER_POOL

REPO = Path(__file__).resolve().parents[1]
COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
SCHEMA = REPO / "tests" / "support" / "compose-spec.json"

AIRFLOW_SERVICES = (
    "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer",
    "airflow-worker", "airflow-init",
)
LONG_RUNNING = tuple(s for s in AIRFLOW_SERVICES if s != "airflow-init")

_DEFAULTED = re.compile(r"\$\{(\w+):?-([^}]*)\}")


def with_defaults(value):
    """A value as Compose reads it with no .env file: ``${VAR:-default}`` becomes ``default``."""
    return _DEFAULTED.sub(lambda m: m.group(2), value) if isinstance(value, str) else value


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())  # safe_load resolves the << merge keys


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def published_ports(service: str) -> list[str]:
    """The host ports a service publishes: docker-compose.override.yml, which compose reads
    beside docker-compose.yml (docker/compose.offline.yml, on the host's network, cannot have any)."""
    override = yaml.safe_load((REPO / "docker-compose.override.yml").read_text())
    return override["services"].get(service, {}).get("ports", [])


def test_only_the_override_publishes_ports_so_the_offline_file_can_use_the_hosts_network(services):
    assert not any("ports" in service for service in services.values())
    assert "8080:8080" in published_ports("airflow-apiserver")
    offline = yaml.safe_load((REPO / "docker" / "compose.offline.yml").read_text())["services"]
    assert set(offline) <= set(services)
    assert {name: s.get("network_mode") for name, s in offline.items()} == {name: "host" for name in offline}
    assert not any("ports" in s for s in offline.values())


def env(service: dict) -> dict[str, str]:
    return {k: with_defaults(v) for k, v in service.get("environment", {}).items()}


def test_the_compose_file_is_valid_against_the_compose_spec(compose):
    schema = json.loads(SCHEMA.read_text())
    errors = sorted(Draft201909Validator(schema).iter_errors(compose), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors)


@pytest.mark.parametrize("name", ["docker-compose.override.yml", "docker/compose.offline.yml"])
def test_the_override_files_are_valid_against_the_compose_spec(name):
    # The schema is docker-compose 1.29's (v1); v2 reads the same Compose Specification.
    schema = json.loads(SCHEMA.read_text())
    errors = list(Draft201909Validator(schema).iter_errors(yaml.safe_load((REPO / name).read_text())))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors)


def test_the_offline_stack_talks_over_loopback_only():
    offline = yaml.safe_load((REPO / "docker" / "compose.offline.yml").read_text())
    hosts = re.findall(r"(?:://(?:[^@/\s]*@)?|HOST: |--host\W+|-h\W+|-l\W+|--bind\W+|listen_addresses=|--address=)([\w.\-]+)",
                       yaml.safe_dump(offline))
    assert hosts and set(hosts) == {"127.0.0.1"}, hosts


def test_the_schema_catches_a_broken_file(compose):
    # Guard against a vacuous schema: a misspelt service key must be reported.
    schema = json.loads(SCHEMA.read_text())
    broken = {**compose, "services": {**compose["services"], "redis": {**compose["services"]["redis"], "helthcheck": {}}}}
    assert list(Draft201909Validator(schema).iter_errors(broken))


def test_it_has_the_services_of_airflows_celery_compose_file_plus_mailpit(services):
    assert set(services) >= {"postgres", "redis", "mailpit", *AIRFLOW_SERVICES}
    commands = {name: services[name].get("command") for name in LONG_RUNNING}
    assert commands == {
        "airflow-apiserver": "api-server",
        "airflow-scheduler": "scheduler",
        "airflow-dag-processor": "dag-processor",
        "airflow-triggerer": "triggerer",
        "airflow-worker": "celery worker",
    }


@pytest.mark.parametrize("name", AIRFLOW_SERVICES)
def test_every_airflow_service_shares_one_configuration(services, name):
    service = services[name]
    values = env(service)
    assert service["build"] == "."  # the project's image, from the Dockerfile below
    assert values["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert values["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
    assert "@postgres/" in values["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert values["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://") and "@redis:6379" in values["AIRFLOW__CELERY__BROKER_URL"]
    assert values["AIRFLOW__CORE__DAGS_FOLDER"] == "/opt/pkpi/dags"
    assert values["AIRFLOW__CORE__LOAD_EXAMPLES"] == "false"
    # Without a shared airflow.cfg these must be set for all, or workers cannot run tasks.
    assert values["AIRFLOW__API_AUTH__JWT_SECRET"] and values["AIRFLOW__API__SECRET_KEY"]
    assert values["PKPI_DATA_DIR"] == "/opt/pkpi/data"
    assert values["PKPI_PROJECT_DIR"] == "/opt/pkpi"
    assert "pkpi-data:/opt/pkpi/data" in service["volumes"]
    # Reference data is the deployment's own, edited on the host: bind-mounted read-only.
    assert "${PKPI_REFERENCE_HOST_DIR:-./seeds}:/opt/pkpi/reference:ro" in service["volumes"]
    assert values["PKPI_REFERENCE_DIR"] == "/opt/pkpi/reference"


def test_secrets_are_the_same_in_every_airflow_service(services):
    for key in ("AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY", "AIRFLOW__CORE__FERNET_KEY"):
        assert len({services[name]["environment"][key] for name in AIRFLOW_SERVICES}) == 1, key


def test_the_data_folder_and_warehouse_live_on_a_named_volume(compose):
    assert "pkpi-data" in compose["volumes"]
    assert "postgres-db-volume" in compose["volumes"]


def test_mail_goes_to_mailpit_by_default(services):
    values = env(services["airflow-worker"])
    assert values["PKPI_SMTP_HOST"] == "mailpit"
    assert values["PKPI_SMTP_PORT"] == "1025"
    assert values["PKPI_SMTP_SECURITY"] == "none"
    mailpit = services["mailpit"]
    assert "axllent/mailpit" in with_defaults(mailpit["image"])
    assert 1025 in mailpit["expose"] and "8025:8025" in published_ports("mailpit")
    assert services["airflow-worker"]["depends_on"]["mailpit"]["condition"] == "service_healthy"


def test_airflow_waits_for_its_database_broker_and_init(services):
    for name in AIRFLOW_SERVICES:
        depends = services[name]["depends_on"]
        assert depends["postgres"]["condition"] == "service_healthy"
        assert depends["redis"]["condition"] == "service_healthy"
    for name in LONG_RUNNING:
        assert services[name]["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"
        assert services[name]["healthcheck"]["test"], f"{name} has no health check"


def test_init_migrates_creates_the_admin_and_the_writer_pool(services):
    init = services["airflow-init"]
    values = env(init)
    assert values["_AIRFLOW_DB_MIGRATE"] == "true"
    assert values["_AIRFLOW_WWW_USER_CREATE"] == "true"
    assert values["_AIRFLOW_WWW_USER_USERNAME"] and values["_AIRFLOW_WWW_USER_PASSWORD"]
    script = "\n".join(init["command"])
    # The DAG's writer tasks never start if their pool is missing.
    assert re.search(rf"airflow pools set {WRITER_POOL} 1 ", script)
    # The image's entrypoint migrates again for any non-empty _AIRFLOW_DB_MIGRATE, even "false".
    assert "_AIRFLOW_DB_MIGRATE=false" not in script


def _dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def test_one_dockerfile_two_bases_both_installing_the_lock():
    """BASE=official (the default) builds FROM the official image of the Airflow that is
    installed and tested here; BASE=debian FROM the locally made Debian base; the final stage,
    shared by both, installs the lock and the project."""
    import airflow

    instructions = _dockerfile_instructions()
    args = dict(arg.split("=", 1) for op, arg in instructions if op == "ARG" and "=" in arg)
    assert args["BASE"] == "official"
    assert args["AIRFLOW_IMAGE"] == f"apache/airflow:{airflow.__version__}-python3.11"
    froms = [arg for op, arg in instructions if op == "FROM"]
    assert froms == ["${AIRFLOW_IMAGE} AS base-official", "${LOCAL_BASE_IMAGE} AS base-debian", "base-${BASE}"]
    final = instructions[[i for i, (op, _) in enumerate(instructions) if op == "FROM"][-1]:]
    runs = " && ".join(arg for op, arg in final if op == "RUN")
    assert "-r /opt/pkpi/requirements.lock" in runs
    assert "--no-deps /opt/pkpi" in runs
    envs = " ".join(arg for op, arg in final if op == "ENV")
    assert "PKPI_PROJECT_DIR=/opt/pkpi" in envs


def test_everything_the_image_copies_exists_and_is_not_ignored():
    copied = []
    for op, arg in _dockerfile_instructions():
        if op == "COPY":
            parts = [p for p in arg.split() if not p.startswith("--")]
            copied += parts[:-1]
    assert {"requirements.lock", "pyproject.toml", "include", "dags", "dbt_project", "seeds", "expectations"} <= set(copied)
    ignored = {line.strip() for line in (REPO / ".dockerignore").read_text().splitlines() if line.strip() and not line.startswith("#")}
    for source in copied:
        assert (REPO / source).exists(), f"the Dockerfile copies {source}, which is missing"
        assert source not in ignored, f"{source} is excluded by .dockerignore"
    assert {".venv", "data", ".git"} <= ignored


def test_flower_is_there_behind_its_profile_as_in_airflows_compose_file(services):
    flower = services["flower"]
    assert flower["command"] == "celery flower"
    assert flower["profiles"] == ["flower"]  # not started by a plain "up"
    assert "5555:5555" in published_ports("flower")
    assert "5555" in " ".join(flower["healthcheck"]["test"])
    assert flower["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"


def test_init_warns_when_docker_has_too_little_memory_cpu_or_disk(services):
    script = "\n".join(services["airflow-init"]["command"])
    for probe in ("getconf _PHYS_PAGES", "/proc/stat", "df /"):
        assert probe in script
    warnings = re.findall(r'echo "WARNING: ([^"]+)"', script)
    assert len(warnings) == 3 and all("recommended" in w or "need" in w for w in warnings)
    # Compose interpolates a single $; the shell must see $(( )) and $VAR, so each is doubled.
    assert "$((" not in script.replace("$$((", "")


@pytest.mark.parametrize("name", AIRFLOW_SERVICES)
def test_config_and_plugins_are_mounted_as_in_airflows_compose_file(services, name):
    service = services[name]
    assert "${AIRFLOW_PROJ_DIR:-.}/config:/opt/airflow/config" in service["volumes"]
    assert "${AIRFLOW_PROJ_DIR:-.}/plugins:/opt/airflow/plugins" in service["volumes"]
    assert env(service)["AIRFLOW_CONFIG"] == "/opt/airflow/config/airflow.cfg"
    ignored = (REPO / ".gitignore").read_text().split()
    assert "/config/" in ignored and "/plugins/" in ignored  # the deployment's own, never committed
