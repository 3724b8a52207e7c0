"""Partners' original files are deleted when their retention period ends, every night.

Wiring only: what is due and how it is deleted is :func:`pkpi.retention.apply_retention`; see
docs/orchestration.md.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

from airflow.sdk import CronTriggerTimetable, dag, get_current_context, task

from pkpi.orchestration import RETENTION_DAG_ID, TIMEZONE, WRITER_POOL, default_task_args

log = logging.getLogger("pkpi.dags.partner_returns_retention")

DOC_MD = f"""
# Partner returns retention

Every night, deletes the partners' original files whose retention period has ended, as the
data-sharing agreement requires:

- **archived** originals of accepted (and duplicate) returns, and **quarantined** originals of
  rejected ones with their errors file and report, `PKPI_RETENTION_DAYS` (default 2557, seven
  years) after the gate judged them;
- **quarantined files rejected because they hold direct identifiers** (rules
  `column_identifier`, `identifier_value`) after `PKPI_IDENTIFIER_RETENTION_DAYS` (default 30).

Only files go: the raw rows, the load audit and the KPI mart are untouched, so no figure
changes. Each file is recorded in `audit.deletions` (load, path, why, bytes, when) **before** it
is deleted, and the row completed after; a run that stopped in between leaves an intention the
next run finishes first. Deletion never follows a symbolic link or leaves `archive/` and
`quarantine/`: anything else is refused, recorded with outcome `refused`, and listed in the
task log (check who changed the folder). `pkpi retention --dry-run` lists what is due.

**Schedule**: 02:30 UK time every day; the periods are measured to the run's logical date
(never later than now), so clearing an old run never deletes more than it would have then.

**Pool**: the task writes `audit.deletions` in the warehouse, so it runs in `{WRITER_POOL}`;
it also takes the ingest lock, so it never prunes a folder an ingest is writing into.

**Failures**: a busy warehouse is retried with exponential backoff (what was deleted is
recorded, so a retry carries on); the engineers in `PKPI_ENGINEER_EMAILS` are emailed if it
fails for good.
"""


@dag(
    dag_id=RETENTION_DAG_ID,
    description="Delete archived and quarantined originals whose retention period has ended",
    schedule=CronTriggerTimetable("30 2 * * *", timezone=TIMEZONE),
    start_date=datetime(2024, 4, 1),
    catchup=False,
    max_active_runs=1,
    default_args=default_task_args(execution_timeout=timedelta(minutes=30)),
    tags=["pkpi", "partner-returns", "retention", "daily"],
    doc_md=DOC_MD,
)
def partner_returns_retention():
    @task(pool=WRITER_POOL)
    def apply_retention() -> dict:
        """Delete (and record) every original file whose retention period has ended."""
        from pkpi.orchestration import run_date, task_settings
        from pkpi import retention

        moment = run_date(get_current_context())
        now = datetime.now(timezone.utc)
        if moment is not None and moment.tzinfo is not None:
            now = min(now, moment.astimezone(timezone.utc))
        report = retention.apply_retention(task_settings(), now=now.replace(tzinfo=None))
        for deletion in report.refused:
            log.warning("Refused: %s", deletion)
        log.info("%s", report.summary())
        return {
            "deleted": len(report.deleted),
            "bytes": sum(d.bytes or 0 for d in report.deleted),
            "refused": [str(d) for d in report.refused],
            "loads": len(report.loads),
        }

    apply_retention()


partner_returns_retention()
