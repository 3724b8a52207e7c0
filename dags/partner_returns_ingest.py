"""
# Partner returns ingest

Hourly: a partner whose return is rejected hears why **within the hour**, and the raw tables that
changed are announced as assets (which starts `partnership_mart_build`).

**wait_for_returns** succeeds at once if a return waits in `landing/`, else *defers* to the
triggerer (needed: it is in docker-compose.yml), which looks every minute for up to `wait_minutes`
(param, 0 to 58, default 55) without holding a worker; if none comes, the run is **skipped**.
**ingest** (pool `duckdb_writer`) is `pkpi ingest`: rejections do not fail it. Each
**`announce_<return_type>`** emits `raw.<return_type>` if this run accepted a return of that type
(read from the load audit, so also after an ingest failure), else is skipped.

Transient failures are retried with backoff; `PKPI_ENGINEER_EMAILS` hear of a task that failed
for good. Every task is safe to re-run. Trigger with `{"wait_minutes": 0}` to ingest what is there
now. Details, and why a deferrable sensor: docs/orchestration.md.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import CronTriggerTimetable, TriggerRule, dag, get_current_context, task

from pkpi.airflow import tasks
from pkpi.airflow.assets import RAW_ASSETS
from pkpi.airflow.defaults import default_task_args
from pkpi.airflow.landing_sensor import ReturnsWaitingSensor
from pkpi.airflow.names import INGEST_DAG_ID, INGEST_SCHEDULE, TIMEZONE, WRITER_POOL, start_date
from pkpi.airflow.params import wait_minutes_param


@dag(
    dag_id=INGEST_DAG_ID,
    description="Validate and load partner returns within the hour; announce the raw tables they change",
    schedule=CronTriggerTimetable(INGEST_SCHEDULE, timezone=TIMEZONE),
    start_date=start_date(),
    catchup=False,
    max_active_runs=1,
    default_args=default_task_args(execution_timeout=timedelta(minutes=30)),
    tags=["pkpi", "partner-returns", "ingest", "hourly", "assets"],
    doc_md=__doc__,
    params={"wait_minutes": wait_minutes_param()},
)
def partner_returns_ingest():
    # Its worker time is one look at landing/ before deferring and one after; the waiting
    # itself is in the triggerer and has its own deadline.
    waiting = ReturnsWaitingSensor(task_id="wait_for_returns", execution_timeout=timedelta(minutes=5))

    @task(pool=WRITER_POOL)
    def ingest() -> dict:
        """Validate and load every return waiting in landing/; rejections are reported, not raised."""
        return tasks.ingest_returns()

    # ONE_DONE: announced after a failed ingest too (what it committed counts), never after a skip.
    @task(trigger_rule=TriggerRule.ONE_DONE, execution_timeout=timedelta(minutes=5))
    def announce(return_type: str) -> dict:
        """Emit the raw table's asset event if this run accepted a return of this type."""
        return tasks.announce_raw_table(get_current_context(), return_type)

    loaded = ingest()
    waiting >> loaded
    for return_type, asset in RAW_ASSETS.items():
        loaded >> announce.override(task_id=f"announce_{return_type}", outlets=[asset])(return_type)


partner_returns_ingest()
