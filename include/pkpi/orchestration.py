"""The small decisions the monthly Airflow run makes, kept here so they are unit-tested.

The DAG in ``dags/partnership_monthly.py`` only wires tasks together; what a run should do is
decided by these functions:

- :func:`resolve_period`: which month the run reports on (the ``period`` param, or the month
  before the run's logical date).
- :func:`should_send`: whether the scorecard is emailed (the ``send`` param; ``auto`` sends
  for scheduled and manual runs but not for backfills, so re-running history never re-mails
  the strategic leads).
- :func:`is_transient_failure` and :class:`TransientFailuresOnly`: retry only failures that
  another attempt can fix (a busy warehouse, a network or mail server hiccup, a timeout);
  a failed dbt test or a bad param fails at once instead of retrying for half an hour.
- :func:`notify_engineers_of_failure`: the task failure callback that emails the data
  engineers (``PKPI_ENGINEER_EMAILS``).
- :func:`default_task_args`: the retry, timeout and alerting settings every DAG's tasks share.
- :func:`run_day` and :func:`ingest_summary`: small helpers the partner returns DAGs share
  (``partner_returns_ingest``, ``partnership_mart_build``, ``partner_return_reminders``; see
  docs/orchestration.md); :func:`rejected_files`, the part of an ingest summary the monthly
  DAG returns too.

This module is imported when the DAG file is parsed, so it imports nothing heavy at the top:
no DuckDB, dbt or pandas.
"""

from __future__ import annotations

import logging
import smtplib
import socket
from datetime import date, datetime, timedelta
from typing import Any, Mapping
from zoneinfo import ZoneInfo

from airflow.sdk import RetryDecision, RetryPolicy

from .periods import MONTH_RE, PeriodError, parse_month, previous_month
from .settings import Settings

log = logging.getLogger(__name__)

DAG_ID = "partnership_monthly"
INGEST_DAG_ID = "partner_returns_ingest"
MART_DAG_ID = "partnership_mart_build"
REMINDERS_DAG_ID = "partner_return_reminders"
RETENTION_DAG_ID = "partner_returns_retention"
OWNER = "partnership-data-team"
TIMEZONE = "Europe/London"
"""The partnership's clock: the schedule runs on it and months begin and end on it."""
WRITER_POOL = "duckdb_writer"
"""One-slot Airflow pool: DuckDB allows one writing process, so writer tasks queue here."""
WRITER_POOL_DESCRIPTION = "DuckDB warehouse writers (ingest, build, delivery ledger): one at a time"

PERIOD_PATTERN = MONTH_RE.pattern
"""JSON-schema pattern of the ``period`` param (YYYY-MM), the same rule periods.parse_month uses."""
SEND_CHOICES = ("auto", "true", "false")
"""Values of the ``send`` param: auto = send unless the run is a backfill."""

_TRUE_WORDS = {"true", "yes", "1", "on"}
_FALSE_WORDS = {"false", "no", "0", "off"}


class OrchestrationError(ValueError):
    """A run's params or dates do not let it decide what to do."""


def resolve_period(logical_date: date | datetime | None, params: Mapping[str, Any] | None) -> str:
    """The reporting month (``YYYY-MM``) of a run.

    The ``period`` param wins when it is set; otherwise it is the calendar month before
    ``logical_date``, read on UK time (a run on 2026-04-20 reports on 2026-03).
    """
    requested = (params or {}).get("period")
    if requested is not None and str(requested).strip():
        try:
            return parse_month(str(requested).strip()).label
        except PeriodError as exc:
            raise OrchestrationError(f"The run's period param is not usable: {exc}") from exc
    if logical_date is None:
        raise OrchestrationError(
            "This run has no logical date, so its reporting month cannot be worked out: "
            'trigger it again with the period param, for example {"period": "2026-03"}.'
        )
    if isinstance(logical_date, datetime) and logical_date.tzinfo is not None:
        # Airflow hands over UTC; 00:30 on 1 April in London is still 31 March in UTC.
        logical_date = logical_date.astimezone(ZoneInfo(TIMEZONE))
    return previous_month(logical_date)


def should_send(params: Mapping[str, Any] | None, run_type: Any) -> bool:
    """Whether the run emails the scorecard.

    ``send`` is ``auto`` (the default), ``true`` or ``false`` (JSON booleans work too).
    ``auto`` sends for scheduled and manual runs and holds back for backfills, which
    rebuild history and must not re-mail it.
    """
    value = (params or {}).get("send", "auto")
    if isinstance(value, bool):
        return value
    word = "auto" if value is None else str(value).strip().lower()
    if word in ("", "auto"):
        # DagRunType is a str enum; compare its value so both the enum and "backfill" work.
        return str(getattr(run_type, "value", run_type)).lower() != "backfill"
    if word in _TRUE_WORDS:
        return True
    if word in _FALSE_WORDS:
        return False
    raise OrchestrationError(
        f"The run's send param is {value!r}; use one of {', '.join(SEND_CHOICES)} "
        "(auto sends unless the run is a backfill)."
    )


def should_force(params: Mapping[str, Any] | None) -> bool:
    """Whether delivery re-sends a month already sent (the ``force`` param)."""
    value = (params or {}).get("force", False)
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in _TRUE_WORDS


def run_date(context: Mapping[str, Any]) -> datetime | None:
    """The date a run is "as of": its logical date, or when it was due to run if it has none.

    Airflow 3 allows manual runs without a logical date; their ``run_after`` is the moment
    they were triggered, which is what a user means by "run it now".
    """
    logical = context.get("logical_date")
    if logical is not None:
        return logical
    dag_run = context.get("dag_run")
    return getattr(dag_run, "run_after", None)


def period_for_run(context: Mapping[str, Any]) -> str:
    """:func:`resolve_period` for a running task's Airflow context."""
    return resolve_period(run_date(context), context.get("params"))


def task_settings() -> Settings:
    """The settings a task runs with: the environment, plus Airflow's ``smtp_default``
    connection for mail when no ``PKPI_SMTP_HOST`` is set (see pkpi.mailer.with_airflow_smtp).

    Every task calls it first, so it is also the tasks' entry point for file modes: it sets the
    task process's umask and tightens the data folder (pkpi.files.secure_entry_point).
    """
    from .files import secure_entry_point
    from .mailer import with_airflow_smtp  # imported here: the mailer loads DuckDB

    settings = with_airflow_smtp(Settings.from_env())
    secure_entry_point(settings)
    return settings


def send_for_run(context: Mapping[str, Any]) -> bool:
    """:func:`should_send` for a running task's Airflow context."""
    return should_send(context.get("params"), getattr(context.get("dag_run"), "run_type", None))


# --- retries -------------------------------------------------------------------------------

# Matched by module and class name so that parsing the DAG does not import DuckDB.
_TRANSIENT_BY_NAME = {
    ("pkpi.warehouse", "WarehouseBusy"),  # another writer held the lock too long
    ("airflow.sdk.exceptions", "AirflowTaskTimeout"),  # execution_timeout: a hung lock or server
}
_TRANSIENT_TYPES = (
    ConnectionError,
    TimeoutError,
    socket.timeout,
    socket.gaierror,  # DNS lookup of the mail server failed
    smtplib.SMTPServerDisconnected,
    smtplib.SMTPConnectError,
)


def is_transient_failure(exc: BaseException | None) -> bool:
    """Whether another attempt could succeed where this one failed.

    True for a busy warehouse, DuckDB's "could not set lock" error, network and mail server
    outages (including SMTP 4xx replies) and task timeouts, anywhere in the exception's chain
    of causes. Everything else (a failed dbt test, a bad param, a bug) is permanent:
    retrying it only delays the alert.
    """
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        kind = type(exc)
        if (kind.__module__, kind.__name__) in _TRANSIENT_BY_NAME:
            return True
        if isinstance(exc, _TRANSIENT_TYPES):
            return True
        if isinstance(exc, smtplib.SMTPResponseException) and 400 <= exc.smtp_code < 500:
            return True
        if kind.__name__ == "IOException" and kind.__module__ in ("duckdb", "_duckdb"):
            if "lock" in str(exc).lower():
                return True
        exc = exc.__cause__ or exc.__context__
    return False


class TransientFailuresOnly(RetryPolicy):
    """Airflow retry policy: retry transient failures (with the task's backoff), fail the rest."""

    def evaluate(self, exception, try_number, max_tries, context=None) -> RetryDecision:
        if is_transient_failure(exception):
            return RetryDecision.retry(reason=f"{type(exception).__name__} may clear on its own")
        return RetryDecision.fail(
            reason=f"{type(exception).__name__} will not clear by retrying; fix the cause and clear the task"
        )

    def serialize(self) -> dict[str, Any]:
        # Airflow stores only a has_retry_policy flag; the worker re-parses the DAG file.
        return {"__type": type(self).__name__}

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> "TransientFailuresOnly":
        return cls()


# --- shared task settings ------------------------------------------------------------------


def default_task_args(execution_timeout: timedelta = timedelta(minutes=30), **overrides: Any) -> dict[str, Any]:
    """The ``default_args`` of a pkpi DAG: owner, retries with exponential backoff (2, 4, 8
    minutes) for transient failures only, a timeout, and the engineers' failure alert."""
    return {
        "owner": OWNER,
        "retries": 3,
        "retry_delay": timedelta(minutes=2),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(minutes=30),
        "retry_policy": TransientFailuresOnly(),
        "execution_timeout": execution_timeout,
        "on_failure_callback": notify_engineers_of_failure,
        **overrides,
    }


def run_day(context: Mapping[str, Any]) -> date:
    """The UK calendar day a run is "as of" (its logical date, or when it was triggered)."""
    moment = run_date(context)
    if moment is None:
        raise OrchestrationError("This run has neither a logical date nor a trigger time, so it has no day.")
    if isinstance(moment, datetime):
        if moment.tzinfo is not None:
            moment = moment.astimezone(ZoneInfo(TIMEZONE))
        return moment.date()
    return moment


def rejected_files(report: Any) -> list[dict[str, Any]]:
    """Each file an ingest rejected, logged as a warning: its return, partner, period and name,
    never its contents. ``report`` is a :class:`pkpi.ingest.IngestReport`."""
    fields = ("return_type", "partner_code", "period", "file_name", "status")
    rejected = [{name: getattr(o, name) for name in fields} for o in report.rejected]
    for item in rejected:
        log.warning(
            "Rejected %(file_name)s (%(return_type)s, %(partner_code)s, %(period)s): "
            "its errors file and report are in quarantine/.",
            item,
        )
    return rejected


def ingest_summary(report: Any) -> dict[str, Any]:
    """What an ingest task returns (and logs): counts, and the :func:`rejected_files`.
    ``report`` is a :class:`pkpi.ingest.IngestReport`."""
    return {
        "accepted": len(report.accepted),
        "rejected": rejected_files(report),
        "duplicates": len(report.duplicates),
        "changed_return_types": sorted(report.changed_return_types),
    }


# --- alerting ------------------------------------------------------------------------------


def failure_alert(context: Mapping[str, Any]) -> tuple[str, str, str]:
    """The (subject, plain-text body, idempotency key) of a failure alert for a task context.

    The body names the run, task, attempt and error type with its message; stage errors are
    sentences about files and settings, never child-level values.
    """
    ti = context.get("ti") or context.get("task_instance")
    dag_id = getattr(ti, "dag_id", None) or DAG_ID
    task_id = getattr(ti, "task_id", "?")
    run_id = getattr(ti, "run_id", None) or getattr(context.get("dag_run"), "run_id", "?")
    try_number = getattr(ti, "try_number", None)
    exc = context.get("exception")
    error = f"{type(exc).__name__}: {exc}" if exc is not None else "no error was recorded"
    if len(error) > 2000:
        error = error[:2000] + " [...]"
    lines = [
        f"The Airflow task {task_id} of {dag_id} failed and will not be retried.",
        "",
        f"Run: {run_id}",
    ]
    if dag_id == DAG_ID:
        # Only the monthly cycle has a reporting period; the hourly ingest, the mart build
        # and the reminders are not about one month.
        try:
            period = period_for_run(context)
        except Exception:  # the alert must go out even when the params were the problem
            period = "unknown"
        subject = f"[pkpi] {dag_id}: task {task_id} failed (period {period})"
        lines.append(f"Reporting period: {period}")
    else:
        subject = f"[pkpi] {dag_id}: task {task_id} failed"
    lines += [
        f"Attempt: {try_number}",
        f"Error: {error}",
    ]
    log_url = getattr(ti, "log_url", None)
    if log_url:
        lines.append(f"Log: {log_url}")
    lines += [
        "",
        "Later tasks in this run did not run. Fix the cause (see the runbook in the README), "
        "then clear the failed task in Airflow to carry on from it.",
    ]
    key = f"alert:{dag_id}:{run_id}:{task_id}:{try_number}"
    return subject, "\n".join(lines), key


def notify_engineers_of_failure(context: Mapping[str, Any]) -> None:
    """Task ``on_failure_callback``: email the data engineers that a task failed for good.

    Does nothing (and says so in the task log) when ``PKPI_ENGINEER_EMAILS`` is empty.
    Without SMTP settings the mailer writes the alert to the outbox like any other message.
    """
    settings = Settings.from_env()  # the cheap check first: most installs set no engineers
    if not settings.engineer_emails:
        log.info("No PKPI_ENGINEER_EMAILS configured, so no failure alert is emailed.")
        return
    subject, body, key = failure_alert(context)
    try:
        from .mailer import send_alert

        outcome = send_alert(task_settings(), list(settings.engineer_emails), subject, body, idempotency_key=key)
        log.info("Failure alert: %s", outcome)
    except Exception:
        # Airflow would swallow this anyway; say what to check so the log is useful.
        log.exception(
            "Could not email the failure alert to %s; check the PKPI_SMTP_* settings.",
            ", ".join(settings.engineer_emails),
        )
