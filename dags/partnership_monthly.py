"""
# Partnership monthly cycle

`pkpi run --period YYYY-MM --send` as a DAG: **ingest** the returns in `landing/` (rejections are
quarantined and their partner told why, without failing the task), **build** and test the KPI mart,
render the **scorecard** into `exports/<YYYY-MM>/`, **deliver** it by email (or to `outbox/` without
SMTP; never twice for a month unless `force`). The build updates the `mart` and
`published.kpi_mart` Assets and the scorecard task the `scorecard` Asset.

The month is the one before the logical date (the run on 20 April reports on March) unless the
`period` param names one; `send` is `auto` (not for backfills), `true` or `false`. Runs 06:00 UK
time on the 20th, no catch-up. Warehouse writers (ingest, build, deliver) share the one-slot pool
`duckdb_writer`. Transient failures are retried with backoff, the rest fail at once, and
`PKPI_ENGINEER_EMAILS` hear of a task that failed for good: fix the cause, then clear it.
Details: docs/orchestration.md.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import CronTriggerTimetable, dag, get_current_context, task

from pkpi.airflow import tasks
from pkpi.airflow.assets import MART_ASSET, PUBLISHED_ASSET, SCORECARD_ASSET
from pkpi.airflow.defaults import default_task_args
from pkpi.airflow.names import MONTHLY_DAG_ID, TIMEZONE, WRITER_POOL, start_date
from pkpi.airflow.params import force_param, period_param, send_param


@dag(
    dag_id=MONTHLY_DAG_ID,
    description="Partner returns to the partnership scorecard, once a month",
    # A trigger timetable makes the logical date the trigger time (the 20th), so
    # "the month before the logical date" is the month just ended.
    schedule=CronTriggerTimetable("0 6 20 * *", timezone=TIMEZONE),
    start_date=start_date(),
    catchup=False,
    max_active_runs=1,
    default_args=default_task_args(execution_timeout=timedelta(minutes=30)),
    tags=["pkpi", "partner-returns", "scorecard", "monthly"],
    doc_md=__doc__,
    params={"period": period_param(), "send": send_param("Email the scorecard", "do not send."),
            "force": force_param()},
)
def partnership_monthly():
    @task(pool=WRITER_POOL)
    def ingest() -> dict:
        """Validate and load every return waiting in landing/; rejections are reported, not raised."""
        return tasks.monthly_ingest()

    @task(pool=WRITER_POOL, outlets=[MART_ASSET, PUBLISHED_ASSET])
    def build() -> str:
        """Build and test the KPI mart with dbt, including the reporting month; returns the month."""
        return tasks.monthly_build(get_current_context())

    @task(outlets=[SCORECARD_ASSET], execution_timeout=timedelta(minutes=20))
    def scorecard(period: str) -> str:
        """Render the reporting month's scorecard files into exports/<period>/."""
        return tasks.monthly_scorecard(get_current_context(), period)

    @task(pool=WRITER_POOL, execution_timeout=timedelta(minutes=15))
    def deliver(period: str) -> str:
        """Email the scorecard (or write it to outbox/) unless this run should not send."""
        return tasks.monthly_deliver(get_current_context(), period)

    period = build()
    ingest() >> period
    deliver(scorecard(period))


partnership_monthly()
