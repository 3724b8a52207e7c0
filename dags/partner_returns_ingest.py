"""Partner returns are ingested within the hour of arriving, and the raw tables they change are
announced as Airflow Assets (which starts ``partnership_mart_build``).

Wiring only: the waiting is :class:`pkpi.landing_sensor.ReturnsWaitingSensor`, the ingest is
:func:`pkpi.ingest.ingest_landing`, and what changed is read from the load audit by
:func:`pkpi.assets.raw_table_changes`; see docs/orchestration.md.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from airflow.sdk import CronTriggerTimetable, Param, TriggerRule, dag, get_current_context, task

from pkpi.assets import RAW_ASSETS
from pkpi.landing_sensor import DEFAULT_WAIT_MINUTES, MAX_WAIT_MINUTES, ReturnsWaitingSensor
from pkpi.orchestration import INGEST_DAG_ID, TIMEZONE, WRITER_POOL, default_task_args

log = logging.getLogger("pkpi.dags.partner_returns_ingest")

DOC_MD = f"""
# Partner returns ingest

Validates and loads partner returns soon after they arrive, so a partner whose return is
rejected hears why **within the hour**, and the KPI mart is rebuilt from what was accepted.

1. **wait_for_returns**: succeeds at once if a return is waiting in `landing/`; otherwise it
   *defers* to the triggerer, which looks at `landing/` every minute for up to `wait_minutes`
   (55) minutes without holding a worker. If nothing arrives it is **skipped**, and so is
   everything after it: an hour without returns costs two short worker runs and emits nothing.
2. **ingest** (pool `{WRITER_POOL}`): the same as `pkpi ingest`. Accepted returns are loaded,
   rejected ones quarantined and their partner's data contact emailed. Rejections do not fail
   the task; a file that fails for a *system* reason stays in landing and fails the task after
   the other files are done.
3. **`announce_<return_type>`**, one per return type: emits an asset event for
   `raw.<return type>` (`duckdb://warehouse/raw/<return type>`) if that table gained an
   accepted return during this run (nil returns count: they replace earlier data), with the
   files, rows, partners and periods as the event's extra; otherwise it is skipped and emits
   nothing. These read the load audit, so loads committed before an ingest failure are still
   announced. Any raw asset event starts `partnership_mart_build`.

**Schedule**: every hour, on the hour (UK time), around the clock; the run waits up to
55 minutes, so a return is picked up within about a minute of arriving while a run waits, and
within the hour at worst. Why a deferrable sensor rather than running ingest every 15 minutes:
one run per hour instead of four, the waiting costs no worker slot and no process (the
triggerer runs it), and the reaction time is a minute rather than a quarter of an hour.
Needs the **triggerer** running (it is in docker-compose.yml); without it `wait_for_returns`
fails after its deferral timeout and the engineers are emailed.

**Params**: `wait_minutes` (0 to {MAX_WAIT_MINUTES}, default {DEFAULT_WAIT_MINUTES}): how long to
wait for a return. Trigger with `{{"wait_minutes": 0}}` to ingest what is there now and stop.

**Failures** are retried with exponential backoff only when transient (a busy warehouse, a
timeout); the data engineers in `PKPI_ENGINEER_EMAILS` get an email when a task has failed
for good. Every task is safe to re-run: ingest skips files already loaded (by checksum), and an
announcement re-emitted only triggers an extra, identical mart build.
"""


@dag(
    dag_id=INGEST_DAG_ID,
    description="Validate and load partner returns within the hour; announce the raw tables they change",
    schedule=CronTriggerTimetable("0 * * * *", timezone=TIMEZONE),
    start_date=datetime(2024, 4, 1),
    catchup=False,
    max_active_runs=1,
    default_args=default_task_args(execution_timeout=timedelta(minutes=30)),
    tags=["pkpi", "partner-returns", "ingest", "hourly", "assets"],
    doc_md=DOC_MD,
    params={
        "wait_minutes": Param(
            DEFAULT_WAIT_MINUTES,
            type="integer",
            minimum=0,
            maximum=MAX_WAIT_MINUTES,
            title="Minutes to wait for a return",
            description="0 ingests what is waiting now and stops.",
        ),
    },
)
def partner_returns_ingest():
    # Its worker time is one look at landing/ before deferring and one after; the waiting
    # itself is in the triggerer and has its own deadline.
    waiting = ReturnsWaitingSensor(task_id="wait_for_returns", execution_timeout=timedelta(minutes=5))

    @task(pool=WRITER_POOL)
    def ingest() -> dict:
        """Validate and load every return waiting in landing/; rejections are reported, not raised."""
        from pkpi.ingest import ingest_landing
        from pkpi.orchestration import ingest_summary, task_settings

        report = ingest_landing(task_settings())
        log.info("Ingest: %s.", report.summary())
        return ingest_summary(report)

    @task(trigger_rule=TriggerRule.ONE_DONE, execution_timeout=timedelta(minutes=5))
    def announce(return_type: str) -> dict:
        """Emit the raw table's asset event if this run accepted a return of this type."""
        from airflow.sdk.exceptions import AirflowSkipException

        from pkpi.assets import raw_table_changes
        from pkpi.orchestration import task_settings

        context = get_current_context()
        # Runs after ingest succeeded *or failed* (ONE_DONE): what was committed counts either way.
        change = raw_table_changes(task_settings(), since=context["dag_run"].start_date).get(return_type)
        if change is None:
            raise AirflowSkipException(
                f"No {return_type} return was accepted in this run: raw.{return_type} is unchanged."
            )
        context["outlet_events"][RAW_ASSETS[return_type]].extra = change.as_event_extra()
        log.info("%s.", change)
        return change.as_event_extra()

    loaded = ingest()
    waiting >> loaded
    for return_type, asset in RAW_ASSETS.items():
        loaded >> announce.override(task_id=f"announce_{return_type}", outlets=[asset])(return_type)


partner_returns_ingest()
