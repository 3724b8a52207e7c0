"""What production runs and what development adds: two lock files, one set of versions.

requirements.lock is what the image installs (docker-compose.yml's stack: the platform plus the
CeleryExecutor, PostgreSQL and FAB providers); requirements-dev.lock is what `make setup` installs
(the platform, its tests and the benchmarks), compiled with requirements.lock as a constraint.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)(\s*;\s*(.+))?$", re.M)


def pins(name: str) -> dict[tuple[str, str], str]:
    """(package, environment marker) -> version, as the lock file pins them."""
    text = (REPO / name).read_text()
    return {(canonicalize_name(m[1]), m[4] or ""): m[2] for m in _PIN.finditer(text)}


def names(requirements: list[str]) -> set[str]:
    return {canonicalize_name(Requirement(r).name) for r in requirements}


RUNTIME, DEV = pins("requirements.lock"), pins("requirements-dev.lock")
EXTRAS = PYPROJECT["project"]["optional-dependencies"]


def test_the_lock_files_parse_into_pins():
    # Guards the regex: both files pin the stack.
    for locked in (RUNTIME, DEV):
        got = {name for name, _ in locked}
        assert {"apache-airflow", "dbt-core", "dbt-duckdb", "duckdb", "great-expectations"} <= got


def test_the_production_lock_holds_no_test_or_benchmark_package():
    runtime_names = {name for name, _ in RUNTIME}
    # Named by the test and bench extras and not needed by anything production runs (jsonschema,
    # for one, is also an Airflow dependency, so it stays).
    only_for_development = {"pytest", "pytest-timeout", "pytest-xdist", "aiosmtpd", "pypdf", "astronomer-cosmos"}
    assert only_for_development <= names(EXTRAS["test"]) | names(EXTRAS["bench"])
    assert not runtime_names & only_for_development
    assert not any(name.startswith("pytest") for name in runtime_names)


def test_astronomer_cosmos_is_not_a_runtime_dependency():
    assert "astronomer-cosmos" not in names(PYPROJECT["project"]["dependencies"])
    assert "astronomer-cosmos" in names(EXTRAS["bench"])


def test_the_production_lock_holds_what_the_compose_stack_runs():
    runtime_names = {name for name, _ in RUNTIME}
    assert {"apache-airflow-providers-celery", "apache-airflow-providers-fab",
            "apache-airflow-providers-postgres", "celery", "redis", "psycopg2-binary", "flower"} <= runtime_names


def test_development_uses_the_versions_production_runs():
    # Everything both install is pinned alike, so the tests run what the image ships.
    differ = {key: (version, DEV[key]) for key, version in RUNTIME.items() if key in DEV and DEV[key] != version}
    assert not differ
    shared = set(RUNTIME) & set(DEV)
    assert {("dbt-core", ""), ("duckdb", ""), ("great-expectations", "")} <= shared


def test_the_lock_headers_name_the_makefile_commands():
    makefile = (REPO / "Makefile").read_text()
    for name in ("requirements.lock", "requirements-dev.lock"):
        command = (REPO / name).read_text().splitlines()[1].lstrip("# ").strip()
        assert command.replace("uv ", "$(UV) ", 1) in makefile, name
