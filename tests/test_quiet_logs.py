"""Other projects' INFO lines stay out of pkpi's logs, from the command line and from every
Airflow task (pkpi.quiet_logs): a task log shows the platform's own lines and any warnings."""

from __future__ import annotations

import logging

import pytest

from pkpi.quiet_logs import GX_LOGGER, OTHERS

QUIETENED = (GX_LOGGER, *OTHERS, "fontTools.subset", "dbt.events")


@pytest.fixture
def chatty():
    """Every one of those loggers as an Airflow task process starts: nothing quietened yet, the
    root at INFO. (setLevel, not the attribute: it also clears the loggers' cached answers.)"""
    loggers = [logging.getLogger(name) for name in QUIETENED] + [logging.getLogger()]
    levels = [logger.level for logger in loggers]
    for logger in loggers[:-1]:
        logger.setLevel(logging.NOTSET)
    loggers[-1].setLevel(logging.INFO)
    assert all(logging.getLogger(name).isEnabledFor(logging.INFO) for name in QUIETENED)
    yield
    for logger, level in zip(loggers, levels):
        logger.setLevel(level)


def _subset_a_font() -> None:
    """What the scorecard's PDF does with its font, which fontTools narrates line by line."""
    from pathlib import Path

    import matplotlib
    from fontTools import subset

    font = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    subsetter = subset.Subsetter()
    subsetter.populate(text="Scorecard")
    subsetter.subset(subset.load_font(str(font), subset.Options()))


def test_without_quietening_fonttools_does_fill_the_log(chatty, caplog):
    caplog.set_level(logging.INFO)
    _subset_a_font()
    assert any(r.name.startswith("fontTools") and r.levelno == logging.INFO for r in caplog.records)


def test_an_airflow_task_keeps_their_info_lines_out_and_their_warnings_in(chatty, caplog, settings, monkeypatch):
    from pkpi.airflow.tasks import task_settings

    monkeypatch.setenv("PKPI_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("PKPI_REFERENCE_DIR", str(settings.reference_dir))
    task_settings()
    caplog.set_level(logging.INFO)
    _subset_a_font()
    # fontTools may still warn (a table it cannot subset): warnings are for reading.
    assert [r for r in caplog.records if r.name.startswith("fontTools") and r.levelno < logging.WARNING] == []
    for name in QUIETENED:
        assert not logging.getLogger(name).isEnabledFor(logging.INFO), name
        assert logging.getLogger(name).isEnabledFor(logging.WARNING), name


def test_the_command_line_quietens_the_same_loggers(chatty, settings, monkeypatch, capsys):
    from pkpi.cli import main

    monkeypatch.setenv("PKPI_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("PKPI_REFERENCE_DIR", str(settings.reference_dir))
    main(["status", "--period", "2026-03"])  # whatever it finds: quietening comes first
    for name in QUIETENED:
        assert not logging.getLogger(name).isEnabledFor(logging.INFO), name
