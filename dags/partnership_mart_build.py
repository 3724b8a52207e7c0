"""
# Partnership KPI mart build

Rebuilds the KPI mart from the raw tables and republishes its disclosure-controlled copy, the same
work as `pkpi build`:

1. **build** (pool `duckdb_writer`): one in-process `dbt build` of `dbt_project/` (seeds, models,
   data and unit tests) holding the warehouse's lock; a failing node fails the task and is named
   in its log (dbt's own log: `$PKPI_DATA_DIR/dbt/logs/`). The month before the run's date is
   always in the mart. Emits `mart`.
2. **publish**: rewrites `published/` from the mart (aggregates only, disclosure-controlled, each
   file swapped in atomically). It only reads the warehouse, so it is not in the pool. Emits
   `published.kpi_mart`.

**Schedule**: any raw table's asset event (from `partner_returns_ingest`), collected into one run
at a time, and daily at 06:30 UK time (a return turns "missing" with the date alone). **Params**:
`full_refresh` rebuilds the incremental facts and KPI tables from scratch. **Failures**: a busy
warehouse or a timeout is retried; a failed dbt test is not (fix it, then clear the task).
`PKPI_ENGINEER_EMAILS` are emailed; `published/` stays at the last good build. Why one build task
rather than astronomer-cosmos's task per model (measured): docs/orchestration.md.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import AssetAny, AssetOrTimeSchedule, CronTriggerTimetable, dag, get_current_context, task

from pkpi.airflow import tasks
from pkpi.airflow.assets import MART_ASSET, PUBLISHED_ASSET, RAW_ASSETS
from pkpi.airflow.defaults import default_task_args
from pkpi.airflow.names import MART_DAG_ID, TIMEZONE, WRITER_POOL, start_date
from pkpi.airflow.params import full_refresh_param


@dag(
    dag_id=MART_DAG_ID,
    description="Rebuild, test and republish the KPI mart when a raw table changes",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("30 6 * * *", timezone=TIMEZONE),
        assets=AssetAny(*RAW_ASSETS.values()),
    ),
    start_date=start_date(),
    catchup=False,
    max_active_runs=1,
    default_args=default_task_args(execution_timeout=timedelta(minutes=30)),
    tags=["pkpi", "kpi-mart", "dbt", "assets"],
    doc_md=__doc__,
    params={"full_refresh": full_refresh_param()},
)
def partnership_mart_build():
    @task(pool=WRITER_POOL, outlets=[MART_ASSET])
    def build() -> dict:
        """Build and test the KPI mart with dbt (without publishing); returns node counts."""
        return tasks.build_mart(get_current_context())

    @task(outlets=[PUBLISHED_ASSET], execution_timeout=timedelta(minutes=15))
    def publish() -> dict:
        """Rewrite the disclosure-controlled published copy of the mart."""
        return tasks.publish_mart()

    build() >> publish()


partnership_mart_build()
