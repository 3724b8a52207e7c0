"""Every pkpi task's ``default_args``, and what they point to: the retry policy and the failure
callback.

- :func:`default_task_args`: owner, 3 retries with exponential backoff (2, 4, 8 minutes), a
  timeout, the retry policy and the failure callback; every DAG passes it as ``default_args``.
- :func:`is_transient_failure` and :class:`TransientFailuresOnly`: retry only failures that
  another attempt can fix, as the error hierarchy of :mod:`pkpi.errors` decides (a busy
  warehouse, a full disk, a network or mail server hiccup), plus Airflow's task timeout; a
  failed dbt test or a bad param fails at once instead of retrying for half an hour.
- :func:`failure_alert` and :func:`notify_engineers_of_failure`: the task failure callback that
  emails the data engineers (``PKPI_ENGINEER_EMAILS``) once a task has failed for good.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any, Mapping

from airflow.sdk import RetryDecision, RetryPolicy
from airflow.sdk.exceptions import AirflowTaskTimeout

from ..errors import chain, is_transient
from ..settings import Settings
from .names import MONTHLY_DAG_ID, OWNER
from .params import period_for_run
from .tasks import task_settings

log = logging.getLogger(__name__)


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


# --- retries -------------------------------------------------------------------------------


def is_transient_failure(exc: BaseException | None) -> bool:
    """Whether another attempt could succeed where this one failed: the split of pkpi.errors
    (:func:`pkpi.errors.is_transient`: a busy warehouse, a full disk, network and mail server
    outages, DuckDB's lock conflict), plus Airflow's own task timeout (a hung lock or server).
    Everything else (a failed dbt test, a bad param, a bug) is permanent: retrying it only
    delays the alert.
    """
    if any(isinstance(link, AirflowTaskTimeout) for link in chain(exc)):
        return True
    return is_transient(exc)


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


# --- alerting ------------------------------------------------------------------------------


def failure_alert(context: Mapping[str, Any]) -> tuple[str, str, str]:
    """The (subject, plain-text body, idempotency key) of a failure alert for a task context.

    The body names the run, task, attempt and error type with its message; stage errors are
    sentences about files and settings, never child-level values.
    """
    ti = context.get("ti") or context.get("task_instance")
    dag_id = getattr(ti, "dag_id", None) or MONTHLY_DAG_ID
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
    if dag_id == MONTHLY_DAG_ID:
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
        from ..mailer import send_alert  # imported here: the mailer loads DuckDB

        outcome = send_alert(task_settings(), list(settings.engineer_emails), subject, body, idempotency_key=key)
        log.info("Failure alert: %s", outcome)
    except Exception:
        # Airflow would swallow this anyway; say what to check so the log is useful.
        log.exception(
            "Could not email the failure alert to %s; check the PKPI_SMTP_* settings.",
            ", ".join(settings.engineer_emails),
        )
