"""Partners are reminded of returns due soon, and of overdue ones, once each, every morning.

Wiring only: who is reminded of what is decided by :func:`pkpi.reminders.due_reminders` and
sent by :func:`pkpi.reminders.send_reminders`; see docs/orchestration.md.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from airflow.sdk import CronTriggerTimetable, Param, dag, get_current_context, task

from pkpi.orchestration import REMINDERS_DAG_ID, SEND_CHOICES, TIMEZONE, WRITER_POOL, default_task_args

log = logging.getLogger("pkpi.dags.partner_return_reminders")

DOC_MD = f"""
# Partner return reminders

Every morning, emails each partner's data contact (`data_contact_email` in partners.csv) about
the returns it owes:

- **due soon**: due today or in the next 3 days, and no file accepted yet (none sent, or only
  a rejected one);
- **overdue**: the due date has passed and the return is still missing or rejected (returns
  that fell due more than 28 days ago are left to the data team, so a new installation does not
  send a year of old reminders).

Each reminder goes once: the email ledger (`audit.emails`, kind `reminder`) keys it by
`reminder:<kind>:<return_type>:<partner>:<period>`, so a re-run, a retry or the next
morning skips what was already sent. A partner hears at most twice about one return. Without
SMTP settings the reminders are written to `outbox/` like every other email. Partners without
a data contact are listed in the task log instead.

The states come from the schedule and the load audit (the same rules as `pkpi status`), so a
return accepted by `partner_returns_ingest` an hour ago is not reminded of.

**Schedule**: 08:00 UK time every day. "Today" is the run's logical date, on UK time.

**Params**: `send`: `auto` (default) sends for scheduled and manual runs but not for backfills;
`false` only lists who would be reminded (the task is then skipped); `true` sends.

**Pool**: the task records each email in the warehouse's ledger, so it runs in `{WRITER_POOL}`.
The warehouse lock is never held while talking to the mail server.

**Failures**: a mail server outage is retried with exponential backoff (reminders already sent
are not sent again); the engineers in `PKPI_ENGINEER_EMAILS` are emailed if it fails for good.
"""


@dag(
    dag_id=REMINDERS_DAG_ID,
    description="Remind partners of returns due soon or overdue, once each",
    schedule=CronTriggerTimetable("0 8 * * *", timezone=TIMEZONE),
    start_date=datetime(2024, 4, 1),
    catchup=False,
    max_active_runs=1,
    default_args=default_task_args(execution_timeout=timedelta(minutes=20)),
    tags=["pkpi", "partner-returns", "reminders", "daily", "email"],
    doc_md=DOC_MD,
    params={
        "send": Param(
            "auto",
            type="string",
            enum=list(SEND_CHOICES),
            title="Email the reminders",
            description="auto: send unless this is a backfill run; true: send; false: only list them.",
        ),
    },
)
def partner_return_reminders():
    @task(pool=WRITER_POOL)
    def send_reminders() -> dict:
        """Email today's due-soon and overdue reminders (each once); returns what happened."""
        from airflow.sdk.exceptions import AirflowSkipException

        from pkpi.orchestration import run_day, send_for_run, task_settings
        from pkpi import reminders

        context = get_current_context()
        today = run_day(context)
        settings = task_settings()
        if not send_for_run(context):
            due = reminders.due_reminders(settings, today)
            for reminder in due:
                log.info("Would remind: %s", reminder)
            raise AirflowSkipException(
                f"Not sending reminders for {today}: the send param is {context['params'].get('send')!r} "
                f"for this run. {len(due)} reminder(s) would have been due (listed above)."
            )
        outcomes = reminders.send_reminders(settings, today)
        log.info("Reminders for %s: %s.", today, reminders.summarise(outcomes))
        return {"day": today.isoformat(), "outcomes": [str(o) for o in outcomes]}

    send_reminders()


partner_return_reminders()
