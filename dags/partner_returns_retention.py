"""
# Partner returns retention

Every night, deletes the partners' original files whose retention period has ended, as the
data-sharing agreement requires: archived originals of accepted (and duplicate) returns, and
quarantined originals of rejected ones with their errors file and report, `PKPI_RETENTION_DAYS`
(default 2557, seven years) after the gate judged them; files rejected because they hold direct
identifiers after `PKPI_IDENTIFIER_RETENTION_DAYS` (default 30).

Only files go: raw rows, the load audit and the mart are untouched. Each file is recorded in
`audit.deletions` **before** it is deleted and completed after, so a run that stopped in between
is finished by the next. Nothing outside `archive/` and `quarantine/` and no symbolic link is
deleted: such a path is refused, recorded and listed in the task log. `pkpi retention --dry-run`
lists what is due.

**Schedule**: 02:30 UK time daily, measured to the run's logical date (never later than now).
**Pool**: `duckdb_writer` (it writes `audit.deletions`), and it takes the ingest lock.
**Failures**: a busy warehouse is retried with backoff (a retry carries on); `PKPI_ENGINEER_EMAILS`
are emailed if it fails for good.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import CronTriggerTimetable, dag, get_current_context, task

from pkpi.airflow import tasks
from pkpi.airflow.defaults import default_task_args
from pkpi.airflow.names import RETENTION_DAG_ID, TIMEZONE, WRITER_POOL, start_date


@dag(
    dag_id=RETENTION_DAG_ID,
    description="Delete archived and quarantined originals whose retention period has ended",
    schedule=CronTriggerTimetable("30 2 * * *", timezone=TIMEZONE),
    start_date=start_date(),
    catchup=False,
    max_active_runs=1,
    default_args=default_task_args(execution_timeout=timedelta(minutes=30)),
    tags=["pkpi", "partner-returns", "retention", "daily"],
    doc_md=__doc__,
)
def partner_returns_retention():
    @task(pool=WRITER_POOL)
    def apply_retention() -> dict:
        """Delete (and record) every original file whose retention period has ended."""
        return tasks.apply_retention(get_current_context())

    apply_retention()


partner_returns_retention()
