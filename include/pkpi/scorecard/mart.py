"""Reading the mart for one month's scorecard (nothing here leaves the module uncontrolled).

:func:`read_mart` reads ``mart.scorecard`` (joined to ``mart.dim_kpi`` for each KPI's
definition, source and whether it is disclosive), ``mart.kpi_values`` for the counts behind each
figure and the trends, and ``mart.fct_return_submissions`` for the returns that are missing or
rejected, plus the stored disclosure decisions for the figures it shows. :mod:`.assemble` turns
the result into the disclosure-controlled :class:`~pkpi.scorecard.model.Scorecard`.

Every query names the periods the scorecard shows (the month, its financial year to date, the
13-month trend, five financial years), the partnership's own rows (``partner_code = 'ALL'``)
and is answered by DuckDB, so the cost of a scorecard does not grow with the years of history
or the number of partners in the warehouse.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import duckdb

from ..periods import months_between, parse_financial_year, shift_month
from ..disclosure import Decisions, DecisionsNotStored
from ..disclosure.stored import load_shown_decisions
from ..settings import Settings
from ..warehouse import connect
from .model import FIVE_YEARS, TREND_MONTHS, ScorecardError, fy_of, fy_shift

GAP_STATUSES = ("missing", "rejected")


def _table_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    return bool(
        con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
            [schema, table],
        ).fetchone()[0]
    )


def _dicts(cursor: duckdb.DuckDBPyConnection) -> list[dict]:
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, r)) for r in cursor.fetchall()]


@dataclass
class Observation:
    """A figure as the mart holds it (never leaves the package uncontrolled)."""

    value: float | None = None
    numerator: float | None = None
    denominator: float | None = None


@dataclass
class MartExtract:
    """What the mart holds for one month's scorecard, before disclosure control."""

    rows: list[dict]
    months: dict[tuple[str, str], Observation]  # (kpi_code, month) -> observation
    years: dict[tuple[str, str], Observation]  # (kpi_code, financial_year) -> observation
    deaths_by_month: dict[tuple[str, str], float]  # (month, death_type) -> count
    deaths_by_year: dict[tuple[str, str], float]  # (financial_year, death_type) -> count
    gaps: list[dict]
    latest_period: str | None
    # What the published copy hides, decided over the whole mart (every month and year) by
    # `pkpi build` and stored, so that this month's scorecard hides the same figures as every
    # other month's and as the published copy: decided one scorecard at a time, a figure hidden
    # here could be shown elsewhere. Only the decisions for the periods shown are read.
    decisions: Decisions | None = None


def read_mart(settings: Settings, period: str, threshold: int) -> MartExtract:
    """Read what the scorecard for ``period`` needs; ScorecardError when there is no mart yet."""
    if not settings.warehouse_path.exists():
        raise ScorecardError(
            f"There is no warehouse at {settings.warehouse_path} yet, so there is no scorecard "
            f"for {period}. Run `pkpi ingest` and then `pkpi build` first."
        )
    with connect(settings, read_only=True) as con:
        extract = _extract(con, period)
        if extract.rows:
            try:
                decisions = _stored_decisions(con, threshold, period)
            except DecisionsNotStored as exc:  # never decided here: every output hides the same
                raise ScorecardError(f"The scorecard for {period} cannot be made yet. {exc}") from exc
            extract = replace(extract, decisions=decisions)
        return extract


def _extract(con: duckdb.DuckDBPyConnection, period: str) -> MartExtract:
    for table in ("scorecard", "kpi_values", "dim_kpi", "fct_return_submissions"):
        if not _table_exists(con, "mart", table):
            raise ScorecardError(
                f"The KPI mart has no table mart.{table}: it has not been built yet. "
                "Run `pkpi build` first."
            )
    # In the catalogue's order (dim_kpi.display_order, unique and never null: the seed's tests).
    rows = _dicts(con.execute(
        """
        SELECT s.*, k.disclosive AS kpi_disclosive, k.definition AS kpi_definition,
               k.source AS kpi_source
        FROM mart.scorecard AS s
        JOIN mart.dim_kpi AS k ON k.kpi_code = s.kpi_code
        WHERE s.period = ?
        ORDER BY k.display_order, s.kpi_code
        """,
        [period],
    ))
    latest = con.execute("SELECT max(period) FROM mart.scorecard").fetchone()[0]
    if not rows:
        return MartExtract([], {}, {}, {}, {}, [], latest)
    codes = sorted({r["kpi_code"] for r in rows})
    first_month = shift_month(period, -(TREND_MONTHS - 1))
    fy = fy_of(period)
    fys = [fy_shift(fy, -i) for i in range(FIVE_YEARS - 1, -1, -1)]
    months: dict[tuple[str, str], Observation] = {}
    for code, p, num, den, val in con.execute(
        """
        SELECT kpi_code, period, numerator, denominator, value FROM mart.kpi_values
        WHERE partner_code = 'ALL' AND dimension = 'total' AND period_grain = 'month'
          AND period BETWEEN ? AND ? AND list_contains(?, kpi_code)
        """,
        [first_month, period, codes],
    ).fetchall():
        months[(code, p)] = Observation(val, num, den)
    years: dict[tuple[str, str], Observation] = {}
    for code, p, num, den, val in con.execute(
        """
        SELECT kpi_code, period, numerator, denominator, value FROM mart.kpi_values
        WHERE partner_code = 'ALL' AND dimension = 'total' AND period_grain = 'financial_year'
          AND list_contains(?, period) AND list_contains(?, kpi_code)
        """,
        [fys, codes],
    ).fetchall():
        years[(code, p)] = Observation(val, num, den)
    # Child deaths by type: months up to the reporting month (so the current year is
    # "to date"), with the financial-year rows as a fallback for years without months.
    first_fy_start = parse_financial_year(fys[0]).start.strftime("%Y-%m")
    deaths_by_month = {
        (p, dv): n for p, dv, n in con.execute(
            """
            SELECT period, dimension_value, numerator FROM mart.kpi_values
            WHERE kpi_code = 'CDN_NOTIFICATIONS' AND partner_code = 'ALL'
              AND dimension = 'death_type' AND period_grain = 'month' AND period BETWEEN ? AND ?
            """,
            [first_fy_start, period],
        ).fetchall()
    }
    deaths_by_year = {
        (p, dv): n for p, dv, n in con.execute(
            """
            SELECT period, dimension_value, numerator FROM mart.kpi_values
            WHERE kpi_code = 'CDN_NOTIFICATIONS' AND partner_code = 'ALL'
              AND dimension = 'death_type' AND period_grain = 'financial_year'
              AND list_contains(?, period)
            """,
            [fys],
        ).fetchall()
    }
    gaps = _dicts(con.execute(
        """
        SELECT return_type, partner_code, status, due_date FROM mart.fct_return_submissions
        WHERE period = ? AND list_contains(?, status)
        ORDER BY return_type, partner_code
        """,
        [period, list(GAP_STATUSES)],
    ))
    return MartExtract(rows, months, years, deaths_by_month, deaths_by_year, gaps, latest)



def shown_periods(period: str) -> tuple[list[str], list[str]]:
    """The months (the 13-month trend and the financial year to date) and the five financial
    years that the scorecard for ``period`` shows a figure for."""
    fy = fy_of(period)
    fys = [fy_shift(fy, -i) for i in range(FIVE_YEARS - 1, -1, -1)]
    first = min(shift_month(period, -(TREND_MONTHS - 1)), parse_financial_year(fy).start.strftime("%Y-%m"))
    return months_between(first, period), fys


def _stored_decisions(con: duckdb.DuckDBPyConnection, threshold: int, period: str) -> Decisions:
    """The stored disclosure decisions (``pkpi build``) for the partnership's figures in the
    periods this scorecard shows, never the whole history."""
    months, years = shown_periods(period)
    return load_shown_decisions(con, threshold, period, months, years)
