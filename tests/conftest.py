"""Shared test set-up: every test gets its own data folder and a clean environment.

Tests never read the developer's own PKPI_* or SMTP settings: the environment variables the
platform reads are removed for each test, and a test that needs one sets it explicitly.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SEEDS = REPO / "seeds"

# The headless Chromium fixtures (browser, page_at) for the pages that are the product.
pytest_plugins = ["support.browser"]

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
# Importing Airflow creates $AIRFLOW_HOME/logs: keep the test session's Airflow home private.
if "AIRFLOW_HOME" not in os.environ:
    import atexit
    import shutil
    import tempfile

    os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="pkpi-test-airflow-")
    atexit.register(shutil.rmtree, os.environ["AIRFLOW_HOME"], True)
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(REPO / "dags"))

# The test files that take longest, longest first (seconds of a quiet two-core run of `make
# test`, from `--durations`; keep the list short and its order true). `make test` runs a whole
# file on one worker (--dist loadfile) in collection order (--no-loadscope-reorder), so a long
# file collected last would leave the other core idle while it ends: these are collected first
# and the short files fill in around them (longest processing time first).
SLOW_FILES = (
    "test_stack.py",  # the compose stack: ~5 min alone and warm, ~10 min in a cold, busy run
    "test_doc_snippets.py",  # ~160 s of CPU: three `pkpi run`s, a scorecard and a dbt build, as printed
    "test_gate_batch.py",  # ~100 s in one test
    "test_delivery_exactly_once.py",  # ~110 s of CPU: a scorecard rendered for each send
    "test_e2e_airflow.py",  # ~90 s
    "test_concurrency.py",  # ~80 s in one test
    "test_gate_corpus.py",  # ~75 s set-up
    "test_dags_assets.py",  # two `airflow dags test` runs
)


def pytest_terminal_summary(terminalreporter):
    """Lines a test recorded as its "summary" property (the stack test's set-up and run times),
    shown at the end of the run even under xdist, which hides a passing test's output."""
    for report in terminalreporter.stats.get("passed", []):
        for name, value in getattr(report, "user_properties", []):
            if name == "summary":
                terminalreporter.write_sep("-", report.nodeid.split("::")[0])
                terminalreporter.write_line(str(value))


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(SLOW_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: a file stays together


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch):
    for name in list(os.environ):
        if name.startswith("PKPI_"):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PKPI_LANDING_QUIET_SECONDS", "0")  # see _no_quiet_period


@pytest.fixture(autouse=True, scope="session")
def _no_quiet_period():
    """Tests drop a file and ingest it at once: no quiet period (pkpi.landing), unless a test
    sets one (``settings.with_overrides(quiet_seconds=...)`` or PKPI_LANDING_QUIET_SECONDS in
    the environment it gives). The one place for it: the default every ``Settings.from_env``
    reads (session-wide, so module-scoped fixtures get it too), and the variable for pkpi
    processes a test starts with this environment (set again after each test's clean-up)."""
    import pkpi.settings

    patch = pytest.MonkeyPatch()
    patch.setattr(pkpi.settings, "DEFAULT_QUIET_SECONDS", 0.0)
    patch.setenv("PKPI_LANDING_QUIET_SECONDS", "0")
    yield
    patch.undo()


@pytest.fixture(autouse=True)
def _restore_umask():
    # `pkpi` and the Airflow tasks set the process umask for good (pkpi.files); in the test
    # process that must not leak from one test into the next.
    mask = os.umask(0o022)
    os.umask(mask)
    yield
    os.umask(mask)


@pytest.fixture(scope="session")
def airflow_database(tmp_path_factory) -> Path:
    """A migrated Airflow metadata database (SQLite) to copy into a test's AIRFLOW_HOME
    (``support.airflow_stack.install_database``): ``airflow db migrate`` runs once per test
    session, in the folder the session's xdist workers share, instead of once per module."""
    from support.airflow_stack import migrated_database

    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # each worker's basetemp is a folder of the session's
    return migrated_database(shared / "airflow-metadata")


@pytest.fixture
def settings(tmp_path):
    """Settings for a fresh data folder, with the shipped reference data."""
    from pkpi.settings import Settings

    return Settings.from_env({"PKPI_DATA_DIR": str(tmp_path / "data"), "PKPI_REFERENCE_DIR": str(SEEDS)})
