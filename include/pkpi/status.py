"""Which returns are in for a month: received on time, late, missing, rejected or not yet due.

Computed from the return schedule and the load audit alone, so it is right straight after an
ingest, before the mart is rebuilt. The mart's ``fct_return_submissions`` applies the same rules.

:func:`landing_entries` lists what is in landing and not yet ingested (uploads still arriving,
abandoned ones, entries that are not plain files), so a file never waits unseen.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date, datetime

from . import landing

from .periods import financial_year_label, parse_month
from .reference import ExpectedReturn, expected_returns, expected_returns_for_financial_year, load_reference, on_time
from .settings import Settings
from .warehouse import connect

STATES = ("received_on_time", "received_late", "rejected", "missing", "not_yet_due")


@dataclass(frozen=True)
class ReturnState:
    expected: ExpectedReturn
    state: str
    received_at: datetime | None
    files: int
    rejected_files: int
    detail: str


def _loads(settings: Settings) -> list[tuple]:
    if not settings.warehouse_path.exists():
        return []
    with connect(settings, read_only=True) as con:
        # The current version is the one taken last (arrival_seq, pkpi.warehouse), never the one
        # with the latest timestamp; a warehouse not yet upgraded by a writer orders as before.
        columns = {c[0] for c in con.execute("SELECT * FROM audit.loads LIMIT 0").description}
        order = "arrival_seq" if "arrival_seq" in columns else "received_at, validated_at, load_id"
        return con.execute(
            "SELECT return_type, partner_code, period, status, received_at, file_name, message "
            f"FROM audit.loads WHERE status IN ('accepted', 'rejected') ORDER BY {order}"
        ).fetchall()


def return_states(settings: Settings, period: str, today: date | None = None) -> list[ReturnState]:
    """Each expected return for a month (and its financial year's annual returns), with its state."""
    month = parse_month(period)
    today = today or date.today()
    reference = load_reference(settings)
    expected = list(expected_returns(reference, period))
    if month.start.month == 4:  # annual returns are listed with the first month of their year
        expected += expected_returns_for_financial_year(reference, financial_year_label(month.start))
    loads = _loads(settings)
    out = []
    for e in expected:
        mine = [l for l in loads if (l[0], l[1], l[2]) == (e.return_type, e.partner_code, e.period)]
        accepted = [l for l in mine if l[3] == "accepted"]
        rejected = [l for l in mine if l[3] == "rejected"]
        if accepted:
            latest = accepted[-1]
            state = "received_on_time" if on_time(latest[4], e.due_date) else "received_late"
            detail = f"{landing.safe_name(latest[5])} received {latest[4]:%Y-%m-%d %H:%M}"
            received = latest[4]
        elif rejected:
            state, received = "rejected", rejected[-1][4]
            detail = f"{landing.safe_name(rejected[-1][5])}: {rejected[-1][6]}"
        else:
            state = "missing" if today > e.due_date else "not_yet_due"
            received, detail = None, ""
        out.append(ReturnState(e, state, received, len(mine), len(rejected), detail))
    return out


def format_states(states: list[ReturnState]) -> str:
    """A plain table for the terminal."""
    header = ("return_type", "partner", "period", "due", "state", "detail")
    rows = [(s.expected.return_type, s.expected.partner_code, s.expected.period,
             s.expected.due_date.isoformat(), s.state, s.detail) for s in states]
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header) - 1)]
    lines = ["  ".join(str(v).ljust(w) for v, w in zip(header, widths)) + "  " + header[-1]]
    for r in rows:
        lines.append("  ".join(str(v).ljust(w) for v, w in zip(r, widths)) + "  " + r[-1])
    return "\n".join(lines)



LANDING_STATES = {
    landing.RETURN: "waiting",  # the next ingest judges it ("arriving" while still being written)
    landing.IN_PROGRESS: "in progress",  # a temporary, hidden or lock-file name, still fresh
    landing.SYSTEM_FILE: "system file",  # .DS_Store, Thumbs.db...: cleared once abandoned
    landing.NOT_REGULAR: "not a plain file",  # the next ingest refuses it unread
    landing.OUTSIDE: "not a plain file",
}


@dataclass(frozen=True)
class LandingItem:
    """One entry in landing that no ingest has given an outcome yet."""

    path: str  # below landing/, made safe to show
    state: str  # waiting | arriving | in progress | abandoned | system file | not a plain file
    age_hours: float
    size_bytes: int
    what: str


def landing_entries(settings: Settings, now: float | None = None) -> list[LandingItem]:
    """Everything in landing now, oldest first: what the next ingest does with each entry.

    Temporary, hidden and system files older than ``settings.abandoned_after_hours`` are
    ``abandoned`` (the next ingest records and quarantines them); younger ones ``in progress``.
    A return that changed less than ``settings.quiet_seconds`` ago is ``arriving`` (still being
    written: the next ingest leaves it until it is quiet).
    """
    now = time.time() if now is None else now
    items = []
    for entry in sorted(landing.scan(settings.landing_dir), key=lambda e: (e.mtime, e.parts)):
        state = LANDING_STATES[entry.kind]
        if entry.is_abandoned(settings.abandoned_after_hours, now):
            state = "abandoned"
        elif entry.is_arriving(settings.quiet_seconds, now):
            state = "arriving"
        items.append(LandingItem(entry.relative, state, entry.age_hours(now),
                                 entry.size if entry.kind != landing.NOT_REGULAR else 0, entry.what))
    return items


def _age(hours: float) -> str:
    if hours < 1:
        return f"{hours * 60:.0f} min"
    if hours < 48:
        return f"{hours:.1f} h"
    return f"{hours / 24:.1f} days"


def format_landing(items: list[LandingItem], abandoned_after_hours: float,
                   quiet_seconds: float | None = None) -> str:
    """The landing list for the terminal, after the returns table."""
    if not items:
        return "Landing is empty: nothing is waiting or still arriving."
    header = ("state", "age", "size", "path")
    rows = [(i.state, _age(i.age_hours), f"{i.size_bytes:,}", i.path) for i in items]
    widths = [max(len(r[n]) for r in rows + [header]) for n in range(3)]
    arriving = ("" if quiet_seconds is None else
                f"; a return changed less than {quiet_seconds:g} s ago is arriving and waits until it is quiet")
    lines = [
        f"In landing, not ingested yet (all periods; temporary, hidden and system files count as "
        f"abandoned after {abandoned_after_hours:g} h and are quarantined by the next ingest{arriving}):",
        "  ".join(v.ljust(w) for v, w in zip(header, widths)) + "  " + header[-1],
    ]
    for r in rows:
        lines.append("  ".join(v.ljust(w) for v, w in zip(r, widths)) + "  " + r[-1])
    return "\n".join(lines)
