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

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
# Importing Airflow creates $AIRFLOW_HOME/logs: keep the test session's Airflow home private.
if "AIRFLOW_HOME" not in os.environ:
    import tempfile

    os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="pkpi-test-airflow-")
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(REPO / "dags"))


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


@pytest.fixture
def settings(tmp_path):
    """Settings for a fresh data folder, with the shipped reference data."""
    from pkpi.settings import Settings

    return Settings.from_env({"PKPI_DATA_DIR": str(tmp_path / "data"), "PKPI_REFERENCE_DIR": str(SEEDS)})
