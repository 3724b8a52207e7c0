"""Reminding partners of returns that fall due soon or are overdue.

Run once a day (the ``partner_return_reminders`` DAG, or by hand). For every return the
schedule expects, :func:`due_reminders` decides from the schedule and the load audit
(:func:`pkpi.status.return_states`, the same rules as ``pkpi status``) whether its partner needs
a reminder today:

- ``due_soon``: due today or within the next :data:`DUE_SOON_DAYS` days, and no accepted file
  yet (nothing sent, or only a rejected file);
- ``overdue``: the due date has passed, and the return is still missing or rejected. Only returns
  that fell due in the last :data:`OVERDUE_LOOKBACK_DAYS` days are considered, so a platform
  installed (or paused) for a while does not greet its partners with a year of old reminders.

:func:`send_reminders` emails each one to the partner's data contact (``data_contact_email``
in partners.csv) through :func:`pkpi.mailer.deliver`, once: the ledger key
``reminder:<kind>:<return_type>:<partner>:<period>`` makes a second run on the same day, or the
next day, skip a reminder already sent. So a partner hears at most twice about one return:
once before it is due, once after. Partners with no data contact are listed, not emailed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, timedelta
from email.message import EmailMessage

from .contracts import get_contract
from .errors import PkpiError
from .periods import month_label, months_between, period_words
from .reference import Reference, load_reference
from .settings import Settings
from .status import ReturnState, return_states
from .templates_gen import checking_sentence

log = logging.getLogger(__name__)

DUE_SOON_DAYS = 3
"""A return due within this many days (and not yet accepted) gets a 'due soon' reminder."""
OVERDUE_LOOKBACK_DAYS = 28
"""Returns that fell due longer ago than this get no overdue reminder (see the module docstring)."""
KINDS = ("due_soon", "overdue")

_DUE_SOON_STATES = ("not_yet_due", "rejected")
_OVERDUE_STATES = ("missing", "rejected")


class RemindersIncomplete(PkpiError, RuntimeError):
    """Some reminders could not be sent; the others were. The first failure is the ``__cause__``
    (and decides whether a retry can help)."""

    def __init__(self, outcomes: list["ReminderOutcome"], failures: list[tuple["Reminder", BaseException]]):
        self.outcomes = outcomes
        self.failures = failures
        names = ", ".join(r.idempotency_key for r, _ in failures[:5]) + (" ..." if len(failures) > 5 else "")
        super().__init__(
            f"{len(failures)} reminder(s) could not be sent ({names}): {failures[0][1]} The others were "
            "delivered and are not sent again; run the reminders again once the mail server is back."
        )


@dataclass(frozen=True)
class Reminder:
    """One reminder a partner's data contact should get today."""

    kind: str  # due_soon | overdue
    return_type: str
    partner_code: str
    partner_name: str
    period: str
    due_date: date
    state: str  # the return's state (pkpi.status): not_yet_due, missing or rejected
    recipient: str | None  # the partner's data contact; None when partners.csv has none
    detail: str = ""  # for a rejected return: the file and why it was not accepted

    @property
    def idempotency_key(self) -> str:
        return f"reminder:{self.kind}:{self.return_type}:{self.partner_code}:{self.period}"

    def __str__(self) -> str:
        when = f"due {self.due_date:%d %b %Y}"
        return f"{self.kind} {self.return_type} {self.partner_code} {self.period} ({when}, {self.state})"


@dataclass(frozen=True)
class ReminderOutcome:
    """What happened to one reminder: sent, outbox, skipped (already sent) or no_contact."""

    reminder: Reminder
    status: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.reminder}: {self.status}" + (f" ({self.detail})" if self.detail else "")


# --- deciding -------------------------------------------------------------------------------


def _candidate_periods(reference: Reference, today: date) -> list[str]:
    """Months whose returns (and, through April, whose financial year's annual returns) could
    fall due between ``today - OVERDUE_LOOKBACK_DAYS`` and ``today + DUE_SOON_DAYS``."""
    longest = max((s.due_days for s in reference.schedule), default=0)
    first = today - timedelta(days=OVERDUE_LOOKBACK_DAYS + longest)
    last = today + timedelta(days=DUE_SOON_DAYS)
    return months_between(month_label(first), month_label(last))


def _kind(state: ReturnState, today: date) -> str | None:
    due = state.expected.due_date
    if today <= due <= today + timedelta(days=DUE_SOON_DAYS) and state.state in _DUE_SOON_STATES:
        return "due_soon"
    if today - timedelta(days=OVERDUE_LOOKBACK_DAYS) <= due < today and state.state in _OVERDUE_STATES:
        return "overdue"
    return None


def due_reminders(settings: Settings, today: date) -> list[Reminder]:
    """The reminders partners should get on ``today``, ordered by due date, partner, return type."""
    reference = load_reference(settings)
    seen: set[tuple[str, str, str]] = set()
    out: list[Reminder] = []
    for month in _candidate_periods(reference, today):
        for state in return_states(settings, month, today=today):
            e = state.expected
            key = (e.return_type, e.partner_code, e.period)
            kind = _kind(state, today)
            if kind is None or key in seen:
                continue
            seen.add(key)
            partner = reference.partner(e.partner_code)
            out.append(Reminder(
                kind=kind, return_type=e.return_type, partner_code=e.partner_code,
                partner_name=partner.name, period=e.period, due_date=e.due_date, state=state.state,
                recipient=partner.data_contact_email,
                detail=state.detail if state.state == "rejected" else "",
            ))
    return sorted(out, key=lambda r: (r.due_date, r.partner_code, r.return_type, r.period))


# --- writing --------------------------------------------------------------------------------


def _period_words(return_type: str, period: str) -> str:
    return period_words(period, get_contract(return_type).period_kind)


def reminder_message(settings: Settings, reminder: Reminder, today: date) -> EmailMessage:
    """The reminder email: which return, for which period, when it is (or was) due, and how to send it."""
    contract = get_contract(reminder.return_type)
    what = (f"{contract.title.lower()} return ({reminder.return_type}) for "
            f"{_period_words(reminder.return_type, reminder.period)} from {reminder.partner_name}")
    due = f"{reminder.due_date:%A %d %B %Y}"
    if reminder.kind == "due_soon":
        days = (reminder.due_date - today).days
        when = "today" if days == 0 else ("tomorrow" if days == 1 else f"in {days} days")
        subject = f"{settings.partnership_name}: your {reminder.return_type} return for {reminder.period} is due {when}"
        opening = f"This is a reminder that the {what} is due {when}, on {due}."
    else:
        subject = f"{settings.partnership_name}: your {reminder.return_type} return for {reminder.period} is overdue"
        opening = (
            f"The {what} was due on {due} and the partnership has not yet "
            "received a file it could accept."
        )
    lines = [opening, ""]
    if reminder.state == "rejected":
        lines += [
            "A file was sent but was not accepted, so the return still counts as outstanding. "
            "The email sent when it was rejected lists the rules it did not meet; please send a "
            "corrected file.",
        ]
        if reminder.detail:
            lines.append(f"Rejected file: {reminder.detail}")
        lines.append("")
    period_folder = f"landing/{reminder.return_type}/{reminder.partner_code}/{reminder.period}/"
    lines += [
        f"Please upload the file to {period_folder} (a CSV or XLSX file built from the blank "
        f"{reminder.return_type} template). If there is nothing to report for the period, send a "
        "nil return: the header row with no data rows. A nil return counts as received; no "
        "file counts as missing on the partnership's scorecard.",
        "",
        f"If you have already sent it, thank you: {checking_sentence()} You can ignore this message.",
        "",
        f"{settings.partnership_name} data team",
    ]
    message = EmailMessage()
    message["Subject"] = subject
    message["To"] = reminder.recipient or ""
    message.set_content("\n".join(lines))
    return message


# --- sending --------------------------------------------------------------------------------


def send_reminders(settings: Settings, today: date, force: bool = False) -> list[ReminderOutcome]:
    """Email today's reminders (or write them to the outbox) and return what happened to each.

    A reminder already sent (same kind, return, partner and period) is skipped unless ``force``.
    When some cannot be sent, the rest still are and :class:`RemindersIncomplete` is raised at
    the end, chaining the first mail error (so a retry can tell an outage from a refusal).
    """
    from .mailer import deliver  # DuckDB and the ledger: loaded only when reminders are sent

    outcomes: list[ReminderOutcome] = []
    failures: list[tuple[Reminder, BaseException]] = []
    for reminder in due_reminders(settings, today):
        if not reminder.recipient:
            log.warning("No data contact for partner %s in partners.csv: %s not emailed.",
                        reminder.partner_code, reminder)
            outcomes.append(ReminderOutcome(reminder, "no_contact", "partners.csv has no data_contact_email"))
            continue
        try:
            delivered = deliver(
                settings, reminder_message(settings, reminder, today), kind="reminder",
                idempotency_key=reminder.idempotency_key, period=reminder.period,
                partner_code=reminder.partner_code, force=force,
            )
        except Exception as exc:  # one partner's failure must not stop the others' reminders
            log.error("Could not send %s: %s", reminder, exc)
            failures.append((reminder, exc))
            outcomes.append(ReminderOutcome(reminder, "failed", str(exc)))
            continue
        outcomes.append(ReminderOutcome(reminder, delivered.status, delivered.detail))
        log.info("%s", outcomes[-1])
    if failures:
        raise RemindersIncomplete(outcomes, failures) from failures[0][1]
    return outcomes


def summarise(outcomes: list[ReminderOutcome]) -> str:
    """``3 reminder(s): 2 sent, 1 skipped`` (statuses in a fixed order)."""
    order = ("sent", "outbox", "skipped", "no_contact", "failed")
    counts = {s: sum(1 for o in outcomes if o.status == s) for s in order}
    parts = [f"{n} {s.replace('_', ' ')}" for s, n in counts.items() if n]
    return f"{len(outcomes)} reminder(s)" + (": " + ", ".join(parts) if parts else "")
