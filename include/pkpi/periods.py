"""Reporting periods: calendar months (``YYYY-MM``) and UK financial years (``YYYY-YY``)."""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from .errors import UserError

# ASCII digits only ([0-9], not \d, which also matches Arabic-Indic or full-width digits), and
# always applied with fullmatch: a pattern's $ also matches before a final newline, so
# "2019-11\n" would pass .match(). MONTH_RE is also the Airflow param's JSON-schema pattern.
MONTH_RE = re.compile(r"^([0-9]{4})-(0[1-9]|1[0-2])$")
FINANCIAL_YEAR_RE = re.compile(r"^([0-9]{4})-([0-9]{2})$")


class PeriodError(UserError, ValueError):
    """A period string is not a valid month or financial year."""


@dataclass(frozen=True, order=True)
class Period:
    """A reporting period: its label, kind ('month' or 'financial_year') and inclusive dates."""

    start: date
    end: date
    kind: str
    label: str

    def contains(self, day: date) -> bool:
        return self.start <= day <= self.end


def as_written(text: str, limit: int = 80) -> str:
    """Text for a message, with control and other invisible characters shown as escapes
    (``2019-11\\x0a``), so a message says exactly what was written and never breaks a line."""
    shown = "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in str(text))
    return shown if len(shown) <= limit else shown[:limit] + "..."


def parse_month(label: str) -> Period:
    """``2025-03`` -> the calendar month; raises PeriodError otherwise (ASCII digits only)."""
    match = MONTH_RE.fullmatch(label) if isinstance(label, str) else None
    if not match or match.group(1) == "0000":
        raise PeriodError(f"'{as_written(label)}' is not a month: write it as YYYY-MM, for "
                          "example 2025-03 (digits 0-9, nothing before or after).")
    year, month = int(match.group(1)), int(match.group(2))
    last = calendar.monthrange(year, month)[1]
    return Period(date(year, month, 1), date(year, month, last), "month", f"{year:04d}-{month:02d}")


def parse_financial_year(label: str) -> Period:
    """``2022-23`` -> 2022-04-01..2023-03-31; raises PeriodError otherwise (ASCII digits only)."""
    match = FINANCIAL_YEAR_RE.fullmatch(label) if isinstance(label, str) else None
    if (not match or match.group(1) in ("0000", "9999")
            or (int(match.group(1)) + 1) % 100 != int(match.group(2))):
        raise PeriodError(
            f"'{as_written(label)}' is not a financial year: write it as YYYY-YY, for example "
            "2022-23 (April 2022 to March 2023; digits 0-9, nothing before or after)."
        )
    start_year = int(match.group(1))
    return Period(date(start_year, 4, 1), date(start_year + 1, 3, 31), "financial_year",
                  f"{start_year:04d}-{(start_year + 1) % 100:02d}")


def parse_period(label: str, kind: str) -> Period:
    """Parse a period label of the given kind ('month' or 'financial_year')."""
    return parse_month(label) if kind == "month" else parse_financial_year(label)


def period_words(label: str, kind: str) -> str:
    """A period as a partner reads it: "March 2025", or "the financial year 2024-25 (April 2024
    to March 2025)"."""
    p = parse_period(label, kind)
    if kind == "month":
        return f"{p.start:%B %Y}"
    return f"the financial year {p.label} (April {p.start.year} to March {p.end.year})"


def financial_year_label(day: date) -> str:
    """The financial year a date falls in: 2023-03-31 -> '2022-23', 2023-04-01 -> '2023-24'."""
    start = day.year if day.month >= 4 else day.year - 1
    return f"{start}-{(start + 1) % 100:02d}"


def month_label(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def previous_month(day: date | datetime) -> str:
    """The calendar month before ``day``: the default reporting period of a monthly run."""
    first = date(day.year, day.month, 1)
    return month_label(first - timedelta(days=1))


def shift_month(label: str, months: int) -> str:
    """Move a ``YYYY-MM`` label by a number of months (negative for earlier)."""
    p = parse_month(label)
    index = p.start.year * 12 + (p.start.month - 1) + months
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def months_between(first: str, last: str) -> list[str]:
    """Every month label from ``first`` to ``last`` inclusive."""
    out, current = [], first
    parse_month(last)
    while current <= last:
        out.append(current)
        current = shift_month(current, 1)
    return out
