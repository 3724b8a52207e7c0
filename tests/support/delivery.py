"""The data the delivery tests send: the small mart of support.mart_fixture with its produced
March 2026 scorecard.

``produced_data`` and ``settings`` are pytest fixtures: import both into a test module to use
them. The data folder is built once a module; each test gets a private copy of it.
"""

from __future__ import annotations

import shutil

import pytest

from pkpi.scorecard import produce_scorecard
from pkpi.settings import Settings
from support.mart_fixture import PERIOD, build_mart, make_settings


@pytest.fixture(scope="module")
def produced_data(tmp_path_factory) -> Settings:
    """A data folder with the mart and the produced March 2026 scorecard, built once a module."""
    settings = make_settings(tmp_path_factory.mktemp("produced"))
    build_mart(settings)
    produce_scorecard(settings, PERIOD)
    return settings


@pytest.fixture
def settings(produced_data, tmp_path) -> Settings:
    """A private copy of the produced data folder (no SMTP: the outbox)."""
    shutil.copytree(produced_data.data_dir, tmp_path / "data")
    return produced_data.with_overrides(data_dir=tmp_path / "data")
