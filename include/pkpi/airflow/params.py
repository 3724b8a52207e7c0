"""The DAGs' params, and what a run decides from them and from its date (unit-tested here,
so the DAG files only wire them).

- :func:`resolve_period`: which month a run reports on (the ``period`` param, or the month
  before the run's logical date, on UK time).
- :func:`should_send`: whether a run emails (the ``send`` param; ``auto`` sends for scheduled
  and manual runs but not for backfills, so re-running history never re-mails anyone).
- :func:`should_force`: whether delivery re-sends a month already sent (``force``).
- :func:`wait_for_run`: how long the hourly ingest waits for a return (``wait_minutes``).
- :func:`run_date`, :func:`run_day` and :func:`retention_moment`: the moment, the UK day, and
  the retention cut-off a run is "as of".

The ``*_param`` functions build the :class:`~airflow.sdk.Param` of each, for the DAGs' trigger
forms; the JSON schema there rejects what these functions would reject.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any, Mapping
from zoneinfo import ZoneInfo

from airflow.sdk import Param

from ..errors import UserError
from ..periods import MONTH_RE, PeriodError, parse_month, previous_month
from .names import TIMEZONE

PERIOD_PATTERN = MONTH_RE.pattern
"""JSON-schema pattern of the ``period`` param (YYYY-MM), the same rule periods.parse_month uses."""
SEND_CHOICES = ("auto", "true", "false")
"""Values of the ``send`` param: auto = send unless the run is a backfill."""
DEFAULT_WAIT_MINUTES = 55
"""How long an hourly run waits for a return: it ends before the next hour's run starts."""
MAX_WAIT_MINUTES = 58

_TRUE_WORDS = {"true", "yes", "1", "on"}
_FALSE_WORDS = {"false", "no", "0", "off"}


class OrchestrationError(UserError, ValueError):
    """A run's params or dates do not let it decide what to do."""


class WaitParamError(UserError, ValueError):
    """The run's wait_minutes param is not a usable number of minutes."""


# --- the params, as the trigger form shows them ----------------------------------------------


def period_param() -> Param:
    """``period``: the reporting month, empty for the month before the logical date."""
    return Param(None, type=["null", "string"], pattern=PERIOD_PATTERN, title="Reporting month",
                 description="YYYY-MM; leave empty for the month before the logical date.")


def send_param(title: str, when_false: str) -> Param:
    """``send``: auto, true or false (see :func:`should_send`)."""
    return Param("auto", type="string", enum=list(SEND_CHOICES), title=title,
                 description=f"auto: send unless this is a backfill run; true: send; false: {when_false}")


def force_param() -> Param:
    """``force``: email the scorecard even if this month was already sent."""
    return Param(False, type="boolean", title="Send again",
                 description="Email the scorecard even if this month was already sent.")


def wait_minutes_param() -> Param:
    """``wait_minutes``: how long the hourly ingest waits for a return (see :func:`wait_for_run`)."""
    return Param(DEFAULT_WAIT_MINUTES, type="integer", minimum=0, maximum=MAX_WAIT_MINUTES,
                 title="Minutes to wait for a return", description="0 ingests what is waiting now and stops.")


def full_refresh_param() -> Param:
    """``full_refresh``: rebuild the incremental facts and KPI tables from scratch (``pkpi build --full-refresh``)."""
    return Param(False, type="boolean", title="Full refresh",
                 description="Rebuild the incremental facts and KPI tables from scratch.")


# --- what a run decides -----------------------------------------------------------------------


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
    """Whether the run emails.

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


def wait_for_run(params: Mapping[str, Any] | None) -> timedelta:
    """How long this run waits for a return: the ``wait_minutes`` param (0 to 58), default 55.

    0 means "look once and stop": useful when triggering the DAG by hand after dropping a file.
    """
    value = (params or {}).get("wait_minutes", DEFAULT_WAIT_MINUTES)
    if value is None or (isinstance(value, str) and not value.strip()):
        value = DEFAULT_WAIT_MINUTES
    try:
        minutes = float(value)
    except (TypeError, ValueError):
        raise WaitParamError(
            f"The run's wait_minutes param is {value!r}; give a number of minutes from 0 to {MAX_WAIT_MINUTES}."
        ) from None
    if isinstance(value, bool) or not 0 <= minutes <= MAX_WAIT_MINUTES:
        raise WaitParamError(
            f"The run's wait_minutes param is {value!r}; give a number of minutes from 0 to {MAX_WAIT_MINUTES} "
            "(an hourly run must stop waiting before the next one starts)."
        )
    return timedelta(minutes=minutes)


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


def retention_moment(context: Mapping[str, Any]) -> datetime:
    """The moment retention periods are measured to (naive UTC, as the audit keeps times): the
    run's date, never later than now, so clearing an old run never deletes more than it would
    have then."""
    now = datetime.now(timezone.utc)
    moment = run_date(context)
    if moment is not None and moment.tzinfo is not None:
        now = min(now, moment.astimezone(timezone.utc))
    return now.replace(tzinfo=None)


def period_for_run(context: Mapping[str, Any]) -> str:
    """:func:`resolve_period` for a running task's Airflow context."""
    return resolve_period(run_date(context), context.get("params"))


def send_for_run(context: Mapping[str, Any]) -> bool:
    """:func:`should_send` for a running task's Airflow context."""
    return should_send(context.get("params"), getattr(context.get("dag_run"), "run_type", None))
