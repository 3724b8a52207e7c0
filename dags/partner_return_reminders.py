"""
# Partner return reminders

Every morning, emails each partner's data contact (`data_contact_email` in partners.csv) about the
returns it owes: **due soon** (due within 3 days, nothing accepted yet) and **overdue** (due date
passed, still missing or rejected; returns due more than 28 days ago are left to the data team).
The states are those of `pkpi status`, so a return accepted an hour ago is not reminded of.

Each reminder goes once: the email ledger keys it `reminder:<kind>:<return_type>:<partner>:<period>`,
so a re-run, a retry or the next morning skips what was sent. Without SMTP settings they are
written to `outbox/`; partners without a data contact are listed in the task log.

**Schedule**: 08:00 UK time daily; "today" is the run's logical date. **Params**: `send`: `auto`
sends except for backfills, `false` only lists who would be reminded (the task is skipped), `true`.
**Pool**: `duckdb_writer` (it writes the ledger; the lock is never held while mailing).
**Failures**: a mail outage is retried with backoff (what was sent is not sent again);
`PKPI_ENGINEER_EMAILS` are emailed if it fails for good.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import CronTriggerTimetable, dag, get_current_context, task

from pkpi.airflow import tasks
from pkpi.airflow.defaults import default_task_args
from pkpi.airflow.names import REMINDERS_DAG_ID, TIMEZONE, WRITER_POOL, start_date
from pkpi.airflow.params import send_param


@dag(
    dag_id=REMINDERS_DAG_ID,
    description="Remind partners of returns due soon or overdue, once each",
    schedule=CronTriggerTimetable("0 8 * * *", timezone=TIMEZONE),
    start_date=start_date(),
    catchup=False,
    max_active_runs=1,
    default_args=default_task_args(execution_timeout=timedelta(minutes=20)),
    tags=["pkpi", "partner-returns", "reminders", "daily", "email"],
    doc_md=__doc__,
    params={"send": send_param("Email the reminders", "only list them.")},
)
def partner_return_reminders():
    @task(pool=WRITER_POOL)
    def send_reminders() -> dict:
        """Email today's due-soon and overdue reminders (each once); returns what happened."""
        return tasks.send_reminders(get_current_context())

    send_reminders()


partner_return_reminders()
