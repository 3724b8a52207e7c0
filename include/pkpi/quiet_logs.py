"""Other projects' log lines, kept out of pkpi's: the one home for which loggers are quietened.

Great Expectations logs at INFO while it is imported and started: hundreds of "Skipping
registering function ..." lines from its API-documentation decorators, "Multiple declarations
of metric ..." and, for every context, "Created temporary directory ... for ephemeral docs
site". fontTools logs about 75 INFO lines each time the scorecard's PDF subsets a font; dbt and
matplotlib have their own chatter. In an Airflow task log (Airflow logs INFO and above) they
buried the platform's own lines.

- :func:`quiet_great_expectations` runs before GX is first imported (at the top of pkpi.suites,
  which every module that validates imports first).
- :func:`quiet_third_party` is called by every entry point, the command line (pkpi.cli) and
  every Airflow task (pkpi.airflow.tasks.task_settings), and quietens them all.

Their warnings and errors still show; nothing else of theirs does.
"""

from __future__ import annotations

import logging

GX_LOGGER = "great_expectations"
OTHERS = ("dbt", "matplotlib", "fontTools")
"""The other projects' loggers, quietened to warnings at each entry point."""

SETS_ITS_OWN_LEVEL = ("great_expectations.data_context.types.base",)
"""GX loggers that set their own level to INFO as they are imported: a level set on the parent
before the import does not reach them, a filter does."""


class _WarningsAndAbove(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING


_WARNINGS_AND_ABOVE = _WarningsAndAbove()


def quiet_great_expectations() -> None:
    """Let only GX's warnings and errors through; safe to call more than once."""
    logging.getLogger(GX_LOGGER).setLevel(logging.WARNING)
    for name in SETS_ITS_OWN_LEVEL:
        logging.getLogger(name).addFilter(_WARNINGS_AND_ABOVE)  # addFilter adds it once


def quiet_third_party() -> None:
    """Let only warnings and errors through from GX and :data:`OTHERS`; safe to call again."""
    quiet_great_expectations()
    for name in OTHERS:
        logging.getLogger(name).setLevel(logging.WARNING)
