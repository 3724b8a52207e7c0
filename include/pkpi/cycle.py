"""The monthly cycle, in order: ingest, build, scorecard, delivery.

``pkpi run`` and ``pkpi demo`` call :func:`run_cycle`; the Airflow DAG calls the same four
stage functions as separate tasks.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from .settings import Settings

log = logging.getLogger(__name__)


@dataclass
class CycleResult:
    ingest: object
    scorecard: object
    delivery: object | None


def run_cycle(settings: Settings, period: str, send: bool = False, force: bool = False) -> CycleResult:
    """Ingest what is waiting, rebuild the mart, produce the month's scorecard, and send it if asked."""
    from .build import build_mart
    from .delivery import deliver_scorecard
    from .ingest import ingest_landing
    from .scorecard import produce_scorecard

    report = ingest_landing(settings)
    build_mart(settings, period=period)
    output = produce_scorecard(settings, period)
    delivery = deliver_scorecard(settings, period, force=force) if send else None
    return CycleResult(report, output, delivery)
