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


@pytest.fixture
def settings(tmp_path):
    """Settings for a fresh data folder, with the shipped reference data."""
    from pkpi.settings import Settings

    return Settings.from_env({"PKPI_DATA_DIR": str(tmp_path / "data"), "PKPI_REFERENCE_DIR": str(SEEDS)})
