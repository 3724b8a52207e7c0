"""The partnership's monthly cycle: ingest -> build -> scorecard -> deliver.

Wiring only: every task calls one stage function of the ``pkpi`` package, exactly as the
``pkpi`` command line does, and the decisions (which month, whether to send, what to retry)
live in ``pkpi.orchestration`` where they are unit-tested. Stage modules are imported inside
the tasks so that parsing this file stays fast and never loads DuckDB, dbt or pandas.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from airflow.sdk import CronTriggerTimetable, Param, dag, get_current_context, task

from pkpi.orchestration import (
    DAG_ID,
    PERIOD_PATTERN,
    SEND_CHOICES,
    TIMEZONE,
    WRITER_POOL,
    default_task_args,
)

log = logging.getLogger("pkpi.dags.partnership_monthly")

DOC_MD = f"""
# Partnership monthly cycle

Turns the partner returns waiting in `landing/` into the monthly scorecard for the strategic
leads, in four tasks, the same steps as `pkpi run --period YYYY-MM --send`:

1. **ingest**: validate every waiting file against its return contract; accepted returns are
   loaded into the warehouse, rejected ones go to quarantine and their partner is told why.
   Rejections do not fail the task: they are listed in its log and return value.
2. **build**: build and test the KPI mart with dbt.
3. **scorecard**: render the scorecard for the reporting month into `exports/<YYYY-MM>/`.
4. **deliver**: email it to the distribution list (or write it to `outbox/` when no SMTP
   server is configured). A month already sent is not sent again unless `force` is set.

**Reporting period**: the calendar month before the run's logical date (the run on
20 April reports on March), unless the `period` param names a month.

**Schedule**: 06:00 UK time on the 20th of each month, after the monthly returns are due.
No catch-up: use a backfill to rebuild past months.

**Params** (Trigger DAG w/ config, or `airflow dags test {DAG_ID} DATE -c '{{"send": "false"}}'`):

| param | default | meaning |
|---|---|---|
| `period` | none | report on this month (`YYYY-MM`) instead of the month before the logical date |
| `send` | `auto` | `auto` emails for scheduled and manual runs but not for backfills; `true`; `false` (deliver is skipped) |
| `force` | `false` | email the scorecard even if this month was already sent |

**Pool**: ingest, build and deliver write to the DuckDB warehouse, which allows one writer at
a time, so they run in the one-slot pool `{WRITER_POOL}`. `make airflow-init` and the
compose `airflow-init` service create it; elsewhere run
`airflow pools set {WRITER_POOL} 1 "DuckDB warehouse writers"`. The scheduler never starts a
task whose pool is missing.

**Failures**: a busy warehouse, a network or mail server outage or a timeout is retried
with exponential backoff; anything else (a failed dbt test, a bad param) fails at once.
Either way the data engineers in `PKPI_ENGINEER_EMAILS` get an email when a task has
failed for good. Fix the cause, then clear the failed task to carry on.
"""

@dag(
    dag_id=DAG_ID,
    description="Partner returns to the partnership scorecard, once a month",
    # A trigger timetable makes the logical date the trigger time (the 20th), so
    # "the month before the logical date" is the month just ended.
    schedule=CronTriggerTimetable("0 6 20 * *", timezone=TIMEZONE),
    start_date=datetime(2024, 4, 1),
    catchup=False,
    max_active_runs=1,
    default_args=default_task_args(execution_timeout=timedelta(minutes=30)),
    tags=["pkpi", "partner-returns", "scorecard", "monthly"],
    doc_md=DOC_MD,
    params={
        "period": Param(
            None,
            type=["null", "string"],
            pattern=PERIOD_PATTERN,
            title="Reporting month",
            description="YYYY-MM; leave empty for the month before the logical date.",
        ),
        "send": Param(
            "auto",
            type="string",
            enum=list(SEND_CHOICES),
            title="Email the scorecard",
            description="auto: send unless this is a backfill run; true: send; false: do not send.",
        ),
        "force": Param(
            False,
            type="boolean",
            title="Send again",
            description="Email the scorecard even if this month was already sent.",
        ),
    },
)
def partnership_monthly():
    @task(pool=WRITER_POOL)
    def ingest() -> dict:
        """Validate and load every return waiting in landing/; rejections are reported, not raised."""
        from pkpi.ingest import ingest_landing
        from pkpi.orchestration import rejected_files, task_settings

        report = ingest_landing(task_settings())
        rejected = rejected_files(report)
        log.info("Ingest: %s.", report.summary())
        return {"accepted": len(report.accepted), "rejected": rejected}

    @task(pool=WRITER_POOL)
    def build() -> str:
        """Build and test the KPI mart with dbt, including the reporting month; returns the month."""
        from pkpi.build import build_mart
        from pkpi.orchestration import period_for_run, task_settings

        period = period_for_run(get_current_context())
        # Passing the period puts the month in the mart even before its returns arrive,
        # so the scorecard can show them as missing.
        result = build_mart(task_settings(), period=period)
        log.info("%s", result)
        return period

    @task(execution_timeout=timedelta(minutes=20))
    def scorecard(period: str) -> str:
        """Render the reporting month's scorecard files into exports/<period>/."""
        from pkpi.orchestration import task_settings
        from pkpi.scorecard import produce_scorecard

        output = produce_scorecard(task_settings(), period)
        log.info(
            "Scorecard for %s written to %s%s.",
            period,
            output.directory,
            " (provisional: a return is missing or rejected)" if output.provisional else "",
        )
        return period

    @task(pool=WRITER_POOL, execution_timeout=timedelta(minutes=15))
    def deliver(period: str) -> str:
        """Email the scorecard (or write it to outbox/) unless this run should not send."""
        from airflow.sdk.exceptions import AirflowSkipException

        from pkpi.orchestration import send_for_run, should_force

        context = get_current_context()
        if not send_for_run(context):
            run_type = context["dag_run"].run_type
            raise AirflowSkipException(
                f"Not sending the {period} scorecard: the send param is "
                f"{context['params'].get('send')!r} for a {getattr(run_type, 'value', run_type)} run."
            )
        from pkpi.delivery import deliver_scorecard
        from pkpi.orchestration import task_settings

        result = deliver_scorecard(task_settings(), period, force=should_force(context["params"]))
        log.info("%s", result)
        return result.status

    period = build()
    ingest() >> period
    deliver(scorecard(period))


partnership_monthly()
