"""Waiting for partner returns without holding a worker: a deferrable sensor and its trigger.

The ``partner_returns_ingest`` DAG starts every hour with :class:`ReturnsWaitingSensor`. If a
return is already waiting in landing/ it succeeds at once; otherwise it hands the waiting over
to :class:`ReturnsWaitingTrigger`, which looks at landing/ once a minute inside Airflow's
triggerer (one asyncio loop for every deferred task, no worker slot, no Python process of its
own) until a return arrives or the run's waiting time is up. A return that arrives during the
hour is therefore ingested, and a rejected one reported to its partner, within minutes; an
hour with no returns ends with the sensor *skipped*, so the ingest and asset tasks after it are
skipped too and no asset event is emitted.

The trigger keeps its own deadline (the ``wait_minutes`` param) rather than relying on
Airflow's deferral timeout alone: Airflow turns a deferral timeout into a failure, while
"nobody sent a return this hour" is the normal case, not an error. The deferral timeout stays
as a safety net, a few minutes later, and does fail the task: that is what happens when the
triggerer is not running, which the engineers need to hear about.

The run's waiting time is :func:`pkpi.airflow.params.wait_for_run`. Only the standard library,
Airflow, :mod:`pkpi.landing` and the package's params are imported: this module is loaded by the
DAG processor and by the triggerer.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, AsyncIterator, Mapping

from airflow.sdk import BaseSensorOperator
from airflow.sdk.exceptions import AirflowSkipException
from airflow.triggers.base import BaseTrigger, TriggerEvent

from ..landing import DEFAULT_ABANDONED_AFTER_HOURS, waiting_returns
from ..settings import Settings
from .params import MAX_WAIT_MINUTES, wait_for_run

log = logging.getLogger(__name__)

POKE_INTERVAL_SECONDS = 60.0
"""How often the trigger looks at landing/ (one directory walk, milliseconds)."""
DEFERRAL_GRACE = timedelta(minutes=5)
"""Airflow's own deferral timeout fires this long after the trigger's deadline (a dead triggerer)."""


class ReturnsWaitingTrigger(BaseTrigger):
    """Fires once: when a return is waiting in ``landing_dir``, or at ``deadline`` with none.

    The event's payload is ``{"waiting": <number of files found, 0 at the deadline>}``.
    """

    def __init__(self, landing_dir: str, deadline: str, poke_interval: float = POKE_INTERVAL_SECONDS,
                 abandoned_after_hours: float = DEFAULT_ABANDONED_AFTER_HOURS, quiet_seconds: float = 0.0):
        super().__init__()
        self.landing_dir = landing_dir
        self.abandoned_after_hours = abandoned_after_hours  # abandoned uploads wake the ingest too
        # A return still being written does not fire the trigger (the ingest would leave it): it
        # fires once the file has been quiet this long. 0 (a trigger serialised before the
        # setting existed) fires at once, and the ingest then leaves a file still arriving.
        self.quiet_seconds = quiet_seconds
        self.deadline = deadline  # ISO 8601, UTC: triggers are serialised to the database
        self.poke_interval = poke_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {"landing_dir": self.landing_dir, "deadline": self.deadline, "poke_interval": self.poke_interval,
             "abandoned_after_hours": self.abandoned_after_hours, "quiet_seconds": self.quiet_seconds},
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        deadline = datetime.fromisoformat(self.deadline)
        while True:
            # The walk is blocking file-system work: keep it off the triggerer's event loop.
            found = await asyncio.to_thread(waiting_returns, Path(self.landing_dir), None,
                                            self.abandoned_after_hours, self.quiet_seconds)
            if found:
                self.log.info("%d return file(s) waiting in %s.", len(found), self.landing_dir)
                yield TriggerEvent({"waiting": len(found)})
                return
            remaining = (deadline - datetime.now(timezone.utc)).total_seconds()
            if remaining <= 0:
                yield TriggerEvent({"waiting": 0})
                return
            await asyncio.sleep(min(self.poke_interval, remaining))


class ReturnsWaitingSensor(BaseSensorOperator):
    """Succeeds (returning how many files wait) once a return is in landing/; skips if none came.

    Looks once on the worker; if nothing is there, defers to :class:`ReturnsWaitingTrigger` for
    the run's ``wait_minutes``. Reads landing/ from ``PKPI_DATA_DIR`` like every other stage.
    """

    def __init__(self, *, poke_interval: float = POKE_INTERVAL_SECONDS, **kwargs: Any):
        # The waiting happens in the trigger; mode and timeout only matter if someone runs
        # poke() directly, so they get harmless values.
        kwargs.setdefault("timeout", timedelta(minutes=MAX_WAIT_MINUTES) + DEFERRAL_GRACE)
        super().__init__(poke_interval=poke_interval, **kwargs)

    def poke(self, context: Any) -> bool:
        settings = Settings.from_env()
        return bool(waiting_returns(settings.landing_dir, limit=1,
                                    abandoned_after_hours=settings.abandoned_after_hours,
                                    quiet_seconds=settings.quiet_seconds))

    def execute(self, context: Any) -> int:
        settings = Settings.from_env()
        landing_dir = settings.landing_dir
        waiting = len(waiting_returns(landing_dir, abandoned_after_hours=settings.abandoned_after_hours,
                                      quiet_seconds=settings.quiet_seconds))
        if waiting:
            self.log.info("%d return file(s) waiting in %s: ingesting them now.", waiting, landing_dir)
            return waiting
        wait = wait_for_run(context.get("params"))
        if wait <= timedelta(0):
            raise AirflowSkipException(f"No return is waiting in {landing_dir}, and this run does not wait.")
        deadline = datetime.now(timezone.utc) + wait
        self.log.info(
            "No return is waiting in %s yet; watching it from the triggerer until %s UTC.",
            landing_dir, f"{deadline:%H:%M}",
        )
        self.defer(
            trigger=ReturnsWaitingTrigger(str(landing_dir), deadline.isoformat(), float(self.poke_interval),
                                          settings.abandoned_after_hours, settings.quiet_seconds),
            method_name="execute_complete",
            timeout=wait + DEFERRAL_GRACE,
        )

    def execute_complete(self, context: Any, event: Mapping[str, Any] | None = None) -> int:
        waiting = int((event or {}).get("waiting") or 0)
        if not waiting:
            minutes = wait_for_run(context.get("params")).total_seconds() / 60
            raise AirflowSkipException(
                f"No return arrived in landing/ within {minutes:g} minutes: nothing to ingest this time."
            )
        self.log.info("%d return file(s) arrived in landing/: ingesting them now.", waiting)
        return waiting
