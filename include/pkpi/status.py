"""Which returns are in for a month: received on time, late, missing, rejected or not yet due.

Computed from the return schedule and the load audit alone, so it is right straight after an
ingest, before the mart is rebuilt. The mart's ``fct_return_submissions`` applies the same rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from .periods import financial_year_label, parse_month
from .reference import ExpectedReturn, expected_returns, expected_returns_for_financial_year, load_reference
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
        return con.execute(
            "SELECT return_type, partner_code, period, status, received_at, file_name, message "
            "FROM audit.loads WHERE status IN ('accepted', 'rejected') ORDER BY received_at"
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
            on_time = latest[4].date() <= e.due_date
            state = "received_on_time" if on_time else "received_late"
            detail = f"{latest[5]} received {latest[4]:%Y-%m-%d %H:%M}"
            received = latest[4]
        elif rejected:
            state, received = "rejected", rejected[-1][4]
            detail = f"{rejected[-1][5]}: {rejected[-1][6]}"
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
