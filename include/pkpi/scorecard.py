"""The monthly scorecard: read the mart, apply disclosure control, write the files.

:func:`produce_scorecard` reads ``mart.scorecard`` (with ``mart.kpi_values`` for the counts
behind each figure and the trends, and ``mart.fct_return_submissions`` for what is missing),
builds one disclosure-controlled :class:`Scorecard`, and writes from it, into
``$PKPI_DATA_DIR/exports/<YYYY-MM>/``:

- ``scorecard.html`` (self-contained), ``scorecard.pdf``, ``scorecard.xlsx``, ``scorecard.csv``;
- ``charts/*.png``: a 13-month trend per KPI and child death notifications over five years;
- ``email/body.html`` and ``email/body.txt`` plus ``manifest.json``: the email version, which
  :mod:`pkpi.delivery` sends without going back to the warehouse.

Disclosure control: each figure goes through the primary rule of :mod:`pkpi.disclosure`, and is
hidden as well wherever :func:`pkpi.publishing.decide`, run over the whole mart, hides it in the
published copy (complementary suppression across months, years and breakdowns; a year to date
once any month it covers is hidden). So every month's scorecard hides the same figures, and no
figure hidden in one can be worked out from another. Renderers only ever see
:class:`~pkpi.disclosure.Figure` objects, so a hidden number cannot reach any of these files.
Rerunning overwrites the same files.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, replace
from datetime import date
from functools import cached_property
from pathlib import Path

import duckdb

from . import charts, rendering
from .contracts import load_contracts
from .disclosure import DisclosureControl, Figure, Reason, is_disclosive, link_of
from .files import make_dir, secure_tree
from .periods import (
    financial_year_label,
    months_between,
    parse_financial_year,
    parse_month,
    shift_month,
)
from .publishing import Decisions, decide_from_mart
from .reference import ReferenceDataError, load_reference
from .settings import Settings
from .warehouse import connect

NOTE_MARKS = "abcdefgh"  # footnote marks, one per disclosure reason in use

SCORECARD_COLUMNS = (
    "period", "kpi_code", "kpi_name", "theme", "unit", "value", "fytd_value",
    "previous_month_value", "same_month_last_year_value", "target", "polarity", "rag", "trend",
    "provisional", "suppressed",
)
# Catalogue order (docs/dbt.md, the KPI catalogue), so the scorecard reads the same way every month;
# KPIs added later go after their theme's known ones.
THEME_ORDER = ("CON_", "TRN_", "CDN_", "FIN_", "RET_")
CATALOGUE_ORDER = (
    "CON_CONTACTS", "CON_REFERRALS", "CON_CONVERSION_PCT", "CON_NFA_PCT", "CON_EARLY_HELP_PCT",
    "CON_REREFERRAL_12M_PCT", "CON_PER_10K", "TRN_ELEARN_COMMENCED", "TRN_ELEARN_COMPLETED",
    "TRN_ELEARN_COMPLETION_PCT", "TRN_ATTENDANCES", "TRN_DNA_PCT", "TRN_POSITIVE_IMPACT_PCT",
    "CDN_NOTIFICATIONS", "CDN_UNDER_1_PCT", "CDN_UNEXPECTED_JAR_PCT", "FIN_CONTRIBUTIONS_GBP",
    "FIN_GRANT_INCOME_GBP", "FIN_TOTAL_INCOME_GBP", "FIN_SHARE_PCT", "FIN_YOY_CHANGE_PCT",
    "RET_ON_TIME_PCT", "RET_REJECTED",
)
DEATH_TYPES = ("expected", "unexpected", "not_known")
TREND_MONTHS = 13
FIVE_YEARS = 5
GAP_STATUSES = ("missing", "rejected")


class ScorecardError(RuntimeError):
    """The scorecard cannot be produced; the message says what to run first."""


# --- the model every output is rendered from ---------------------------------------------


@dataclass(frozen=True)
class SeriesPoint:
    """One point of a KPI's trend: a month (``YYYY-MM``) or a financial year (``YYYY-YY``)."""

    period: str
    label: str
    figure: Figure


@dataclass(frozen=True)
class ScorecardRow:
    """One KPI on the scorecard, disclosure-controlled."""

    period: str
    kpi_code: str
    kpi_name: str
    theme: str
    unit: str
    polarity: str
    definition: str
    value: Figure
    fytd: Figure
    previous_month: Figure
    same_month_last_year: Figure
    target: Figure
    rag: str
    trend: str
    provisional: bool
    series_grain: str  # 'month', or 'financial_year' for KPIs with no monthly figures
    series: tuple[SeriesPoint, ...]
    source: str | None = None  # the return type the KPI is counted from (None: every return)
    gaps: tuple["ReturnGap", ...] = ()  # missing or rejected returns this KPI is counted from

    @property
    def figures(self) -> tuple[Figure, ...]:
        return (self.value, self.fytd, self.previous_month, self.same_month_last_year)

    @property
    def suppressed(self) -> bool:
        """True when disclosure control hides any figure on the row."""
        return any(f.hidden for f in self.figures)

    @property
    def annual(self) -> bool:
        """True for KPIs counted by financial year only (finance): "this month" is the year."""
        return self.series_grain == "financial_year"

    @property
    def value_label(self) -> str:
        """What the headline figure covers: "March 2026", or "2025-26" for an annual KPI."""
        if self.annual:
            return f"Financial year {_fy_of(self.period)}"
        return _month_label(self.period)

    @property
    def comparisons(self) -> tuple["Comparison", ...]:
        """The figures shown beside the headline, labelled for a reader, in order."""
        fy = _fy_of(self.period)
        target = Comparison(f"Target ({fy})", self.target if self.target.value is not None else None, "none set")
        if self.annual:
            # Month-on-month comparisons of an annual figure are the same year twice.
            return (
                Comparison(f"Previous financial year ({_fy_shift(fy, -1)})", self.same_month_last_year),
                target,
            )
        return (
            Comparison(f"Year to date ({fy})", self.fytd),
            Comparison(f"Previous month ({_month_label(shift_month(self.period, -1))})", self.previous_month),
            Comparison(f"Same month last year ({_month_label(shift_month(self.period, -12))})", self.same_month_last_year),
            target,
        )

    @property
    def trend_text(self) -> str:
        """The trend as words: "↓ Down on February 2026 (better)"; "No trend" when there is none."""
        arrow = {"up": "↑ Up", "down": "↓ Down", "flat": "→ No change"}.get(self.trend)
        if arrow is None:
            return "– No trend"
        against = _fy_shift(_fy_of(self.period), -1) if self.annual else _month_label(shift_month(self.period, -1))
        better = {"higher_is_better": "up", "lower_is_better": "down"}.get(self.polarity)
        verdict = ""
        if better and self.trend != "flat":
            verdict = " (better)" if self.trend == better else " (worse)"
        return f"{arrow} on {against}{verdict}"

    @property
    def waiting_for(self) -> str:
        """The returns this KPI still waits for, named by return and partner ("" for none):
        "multi-agency training returns from Northamptonshire Police (rejected) and Probation
        Service (missing)"."""
        by_title: dict[str, list[str]] = {}
        for gap in self.gaps:
            title = gap.return_title[:1].lower() + gap.return_title[1:]  # mid-sentence
            by_title.setdefault(title, []).append(gap.short())

        def listed(who: list[str]) -> str:
            return who[0] if len(who) == 1 else f"{', '.join(who[:-1])} and {who[-1]}"

        return "; ".join(
            f"{title} return{'s' if len(who) > 1 else ''} from {listed(who)}" for title, who in by_title.items()
        )


@dataclass(frozen=True)
class Comparison:
    """One labelled figure beside a KPI's headline; ``figure`` None reads as ``none_text``."""

    label: str
    figure: Figure | None
    none_text: str = "–"


@dataclass(frozen=True)
class ReturnGap:
    """An expected return for the month that is missing or was rejected."""

    return_type: str
    return_title: str
    partner_code: str
    partner_name: str
    status: str
    due_date: date | None

    def describe(self) -> str:
        verb = "missing" if self.status == "missing" else "rejected"
        return f"{self.return_title} return from {self.partner_name}: {verb}"

    @property
    def explanation(self) -> str:
        """What the status means for the reader, and when the return was due."""
        what = "not received" if self.status == "missing" else "received but failed the quality checks"
        due = f"; due {self.due_date.day} {self.due_date:%B %Y}" if self.due_date else ""
        return f"{what}{due}"

    def short(self) -> str:
        """The partner and what happened, for a KPI that depends on this return."""
        verb = "missing" if self.status == "missing" else "rejected"
        return f"{self.partner_name} ({verb})"


@dataclass(frozen=True)
class ChildDeathYear:
    """Child death notifications in one financial year, split by death type (controlled)."""

    financial_year: str
    label: str
    parts: dict[str, Figure]
    total: Figure
    has_data: bool

    @property
    def split_shown(self) -> bool:
        return not any(f.hidden for f in self.parts.values())


@dataclass(frozen=True)
class Scorecard:
    """Everything the scorecard outputs show, already through disclosure control."""

    partnership: str
    period: str
    period_label: str
    financial_year: str
    threshold: int
    provisional: bool
    gaps: tuple[ReturnGap, ...]
    rows: tuple[ScorecardRow, ...]
    child_deaths_by_year: tuple[ChildDeathYear, ...]

    @property
    def themes(self) -> list[tuple[str, list[ScorecardRow]]]:
        """Rows grouped by theme, in catalogue order."""
        out: dict[str, list[ScorecardRow]] = {}
        for row in self.rows:
            out.setdefault(row.theme, []).append(row)
        return list(out.items())

    @cached_property
    def reasons(self) -> list[Reason]:
        """The reasons used anywhere in this scorecard, in a fixed order (footnote marks)."""
        used = {f.reason for row in self.rows for f in row.figures + tuple(p.figure for p in row.series) if f.hidden}
        used |= {f.reason for y in self.child_deaths_by_year for f in (*y.parts.values(), y.total) if f.hidden}
        return [r for r in Reason if r in used]

    def note_number(self, figure: Figure) -> str | None:
        """The footnote mark of a hidden figure ("a", "b", ...), else None.

        Letters, not digits: a hidden count of 3 marked with note 3 would read "<5 3" as text.
        """
        if not figure.hidden:
            return None
        return NOTE_MARKS[self.reasons.index(figure.reason)]

    def footnotes(self) -> list[tuple[str, str]]:
        control = DisclosureControl(self.threshold)
        return [(NOTE_MARKS[i], control.footnote(r)) for i, r in enumerate(self.reasons)]

    @property
    def rag_counts(self) -> dict[str, int]:
        counts = {k: 0 for k in ("green", "amber", "red", "grey")}
        for row in self.rows:
            counts[row.rag] = counts.get(row.rag, 0) + 1
        return counts

    @property
    def period_short(self) -> str:
        """The month as a column heading: "Mar 2026"."""
        return parse_month(self.period).start.strftime("%b %Y")

    def attachment_name(self, extension: str) -> str:
        """The file name a reader sees for an emailed copy: ``scorecard-2026-03.pdf``."""
        return f"scorecard-{self.period}.{extension}"

    @property
    def subject(self) -> str:
        """The email subject: partnership and month, and 'provisional' when it is."""
        status = " (provisional)" if self.provisional else ""
        return f"{self.partnership} scorecard: {self.period_label}{status}"


@dataclass(frozen=True)
class ScorecardOutput:
    """The files :func:`produce_scorecard` wrote for one month."""

    period: str
    directory: Path
    html: Path
    pdf: Path
    xlsx: Path
    csv: Path
    manifest: Path
    email_html: Path
    email_text: Path
    charts: tuple[Path, ...]
    provisional: bool
    subject: str

    @property
    def files(self) -> tuple[Path, ...]:
        return (self.html, self.pdf, self.xlsx, self.csv, *self.charts)


# --- reading the mart --------------------------------------------------------------------


def _month_label(label: str) -> str:
    return parse_month(label).start.strftime("%B %Y")


def _short_month(label: str) -> str:
    return parse_month(label).start.strftime("%b %y")


def _fy_of(period: str) -> str:
    return financial_year_label(parse_month(period).start)


def _fy_shift(fy: str, years: int) -> str:
    start = parse_financial_year(fy).start
    return financial_year_label(date(start.year + years, 4, 1))


def _sort_key(row: dict) -> tuple:
    """The catalogue's display_order when the mart has it, else the catalogue order above."""
    kpi_code = row["kpi_code"]
    theme = next((i for i, p in enumerate(THEME_ORDER) if kpi_code.startswith(p)), len(THEME_ORDER))
    known = CATALOGUE_ORDER.index(kpi_code) if kpi_code in CATALOGUE_ORDER else len(CATALOGUE_ORDER)
    order = row.get("display_order")
    return (0 if order is not None else 1, order if order is not None else 0, theme, known, kpi_code)


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
class _Observation:
    """A figure as the mart holds it (never leaves this module uncontrolled)."""

    value: float | None = None
    numerator: float | None = None
    denominator: float | None = None


@dataclass
class _MartExtract:
    rows: list[dict]
    months: dict[tuple[str, str], _Observation]  # (kpi_code, month) -> observation
    years: dict[tuple[str, str], _Observation]  # (kpi_code, financial_year) -> observation
    deaths_by_month: dict[tuple[str, str], float]  # (month, death_type) -> count
    deaths_by_year: dict[tuple[str, str], float]  # (financial_year, death_type) -> count
    gaps: list[dict]
    latest_period: str | None
    # What the published copy hides, worked out over the whole mart (every month and year), so
    # that this month's scorecard hides the same figures as every other month's and as the
    # published copy: one scorecard at a time, a figure hidden here could be shown elsewhere.
    decisions: Decisions | None = None


def _read_mart(settings: Settings, period: str, threshold: int) -> _MartExtract:
    if not settings.warehouse_path.exists():
        raise ScorecardError(
            f"There is no warehouse at {settings.warehouse_path} yet, so there is no scorecard "
            f"for {period}. Run `pkpi ingest` and then `pkpi build` first."
        )
    with connect(settings, read_only=True) as con:
        extract = _extract(con, period)
        if extract.rows:
            extract = replace(extract, decisions=decide_from_mart(con, threshold))
        return extract


def _extract(con: duckdb.DuckDBPyConnection, period: str) -> _MartExtract:
    for table in ("scorecard", "kpi_values", "dim_kpi", "fct_return_submissions"):
        if not _table_exists(con, "mart", table):
            raise ScorecardError(
                f"The KPI mart has no table mart.{table}: it has not been built yet. "
                "Run `pkpi build` first."
            )
    # dim_kpi.source (the return type a KPI is counted from) is optional: without it the
    # source is read from the KPI code's prefix (_source_of).
    has_source = bool(con.execute(
        "SELECT count(*) FROM information_schema.columns "
        "WHERE table_schema = 'mart' AND table_name = 'dim_kpi' AND column_name = 'source'"
    ).fetchone()[0])
    source = "k.source" if has_source else "NULL"
    rows = _dicts(con.execute(
        f"""
        SELECT s.*, k.disclosive AS kpi_disclosive, k.definition AS kpi_definition,
               {source} AS kpi_source
        FROM mart.scorecard AS s
        LEFT JOIN mart.dim_kpi AS k ON k.kpi_code = s.kpi_code
        WHERE s.period = ?
        """,
        [period],
    ))
    latest = con.execute("SELECT max(period) FROM mart.scorecard").fetchone()[0]
    if not rows:
        return _MartExtract([], {}, {}, {}, {}, [], latest)
    codes = sorted({r["kpi_code"] for r in rows})
    first_month = shift_month(period, -(TREND_MONTHS - 1))
    fy = _fy_of(period)
    fys = [_fy_shift(fy, -i) for i in range(FIVE_YEARS - 1, -1, -1)]
    months: dict[tuple[str, str], _Observation] = {}
    for code, p, num, den, val in con.execute(
        """
        SELECT kpi_code, period, numerator, denominator, value FROM mart.kpi_values
        WHERE partner_code = 'ALL' AND dimension = 'total' AND period_grain = 'month'
          AND period BETWEEN ? AND ? AND list_contains(?, kpi_code)
        """,
        [first_month, period, codes],
    ).fetchall():
        months[(code, p)] = _Observation(val, num, den)
    years: dict[tuple[str, str], _Observation] = {}
    for code, p, num, den, val in con.execute(
        """
        SELECT kpi_code, period, numerator, denominator, value FROM mart.kpi_values
        WHERE partner_code = 'ALL' AND dimension = 'total' AND period_grain = 'financial_year'
          AND list_contains(?, period) AND list_contains(?, kpi_code)
        """,
        [fys, codes],
    ).fetchall():
        years[(code, p)] = _Observation(val, num, den)
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
    return _MartExtract(rows, months, years, deaths_by_month, deaths_by_year, gaps, latest)


# --- building the controlled model -------------------------------------------------------


def _partner_names(settings: Settings) -> dict[str, str]:
    """Partner display names from the reference data; codes stand in if it cannot be read."""
    try:
        return {p.code: p.name for p in load_reference(settings).partners}
    except (ReferenceDataError, OSError):  # the note still names the return, by partner code
        return {}


def _sum(values: list[float | None]) -> float | None:
    present = [float(v) for v in values if v is not None]
    return sum(present) if present else None


def _first(*values):
    return next((v for v in values if v is not None), None)


def _fytd_observation(extract: _MartExtract, code: str, period: str, fytd_value) -> _Observation:
    """FYTD numerator and denominator: the sum of the months April..period, else the FY row."""
    fy = _fy_of(period)
    start = parse_financial_year(fy).start.strftime("%Y-%m")
    months = [extract.months[(code, m)] for m in months_between(start, period) if (code, m) in extract.months]
    if months:
        return _Observation(fytd_value, _sum([m.numerator for m in months]), _sum([m.denominator for m in months]))
    year = extract.years.get((code, fy))
    return _Observation(fytd_value, year.numerator if year else None, year.denominator if year else None)


SOURCE_PREFIXES = {"CON_": "contacts", "TRN_": "training", "CDN_": "child_deaths", "FIN_": "finance"}


def _source_of(row: dict) -> str | None:
    """The return type a KPI is counted from; None for KPIs about every return (RET_)."""
    source = row.get("kpi_source")
    if not source:
        code = str(row["kpi_code"]).upper()
        source = next((t for p, t in SOURCE_PREFIXES.items() if code.startswith(p)), None)
    # Anything else (return compliance: "returns") depends on every expected return.
    return source if source in load_contracts() else None


def _build_row(control: DisclosureControl, extract: _MartExtract, row: dict, period: str,
               gaps: tuple[ReturnGap, ...] = ()) -> ScorecardRow:
    code, unit = row["kpi_code"], row["unit"]
    disclosive = is_disclosive(code, bool(row.get("kpi_disclosive")))
    nested = link_of(code, unit).nested  # denominator minus numerator is a count too
    fy = _fy_of(period)
    previous, last_year = shift_month(period, -1), shift_month(period, -12)
    window = months_between(shift_month(period, -(TREND_MONTHS - 1)), period)
    has_months = any((code, m) in extract.months for m in window)

    # The scorecard's own figures win over kpi_values for the months it reports, so the table
    # and the chart always agree.
    observations = {m: extract.months.get((code, m), _Observation()) for m in window}
    for month, column in ((period, "value"), (previous, "previous_month_value"), (last_year, "same_month_last_year_value")):
        base = observations[month]
        observations[month] = _Observation(row.get(column), base.numerator, base.denominator)
    # The mart's scorecard carries the month's own counts (beyond section 5); prefer them.
    observations[period] = _Observation(
        row.get("value"),
        _first(row.get("numerator"), observations[period].numerator),
        _first(row.get("denominator"), observations[period].denominator),
    )

    decisions = extract.decisions
    decided = decisions.row(period, code) if decisions else {}

    def controlled(obs: _Observation, grain: str | None = None, at: str | None = None) -> Figure:
        """The primary rule here, then whatever the mart-wide decisions hide as well."""
        figure = control.figure(obs.value, unit, disclosive, obs.numerator, obs.denominator, nested=nested)
        if not disclosive or decisions is None or grain is None:
            return figure
        return _also_hidden(control, figure, decisions.kpi(code, grain, at))

    fytd_obs = _fytd_observation(extract, code, period, row.get("fytd_value"))
    fytd = controlled(_Observation(
        fytd_obs.value,
        _first(row.get("fytd_numerator"), fytd_obs.numerator),
        _first(row.get("fytd_denominator"), fytd_obs.denominator),
    ))
    # Hidden once any month it adds up is (consecutive scorecards would give the month away).
    fytd = _also_hidden(control, fytd, decided.get("fytd_value"))
    monthly = {m: controlled(o, "month", m) for m, o in observations.items()}

    if has_months:
        grain = "month"
        series = tuple(SeriesPoint(m, _short_month(m), monthly[m]) for m in window)
    else:
        # Financial-year KPIs (finance) have no monthly figures: trend them over five years.
        grain = "financial_year"
        fys = [_fy_shift(fy, -i) for i in range(FIVE_YEARS - 1, -1, -1)]
        series = tuple(
            SeriesPoint(y, y, controlled(extract.years.get((code, y), _Observation()), "financial_year", y))
            for y in fys
        )
    # The row's own figures: hidden wherever the published scorecard hides them.
    for column, month in (("value", period), ("previous_month_value", previous), ("same_month_last_year_value", last_year)):
        monthly[month] = _also_hidden(control, monthly[month], decided.get(column))

    value = monthly[period]
    previous_figure = monthly[previous]
    rag, trend = row.get("rag") or "grey", row.get("trend") or "n/a"
    if grain == "financial_year":
        # An annual KPI's "previous month" is the same year again: the mart's trend compares
        # with the year before.
        previous_figure = monthly[last_year]
    if value.hidden:
        # A colour or direction next to a hidden figure would hint at it.
        rag, trend = "grey", "n/a"
    elif previous_figure.hidden:
        # "Up" or "down" would bound the hidden figure by the shown one.
        trend = "n/a"
    source = _source_of(row)
    row_gaps = tuple(g for g in gaps if source is None or g.return_type == source)
    return ScorecardRow(
        period=period,
        kpi_code=code,
        kpi_name=row.get("kpi_name") or code,
        theme=_theme_label(row.get("theme") or "Other"),
        unit=unit,
        polarity=row.get("polarity") or "neutral",
        definition=row.get("kpi_definition") or "",
        value=value,
        fytd=fytd,
        previous_month=monthly[previous],
        same_month_last_year=monthly[last_year],
        target=control.shown(row.get("target"), unit),
        rag=rag,
        trend=trend,
        provisional=bool(row.get("provisional")),
        series_grain=grain,
        series=series,
        source=source,
        gaps=row_gaps,
    )


def _theme_label(theme: str) -> str:
    theme = theme.replace("_", " ").strip()
    return theme[:1].upper() + theme[1:]


def _also_hidden(control: DisclosureControl, figure: Figure, reason: Reason | None) -> Figure:
    """``figure``, hidden for ``reason`` too when the mart-wide decisions hide it (a figure the
    primary rule already hid keeps its own reason)."""
    return control.hidden(figure.unit, reason) if reason and not figure.hidden else figure


def _decided(control: DisclosureControl, decisions: Decisions | None, figure: Figure, year: str,
             dimension: str = "total", value: str = "total") -> Figure:
    """A child death figure for a financial year, hidden too where the published copy hides it."""
    if decisions is None:
        return figure
    return _also_hidden(control, figure, decisions.kpi("CDN_NOTIFICATIONS", "financial_year", year, dimension, value))


def _child_death_years(control: DisclosureControl, extract: _MartExtract, period: str) -> tuple[ChildDeathYear, ...]:
    fy = _fy_of(period)
    decisions = extract.decisions
    out = []
    for i in range(FIVE_YEARS - 1, -1, -1):
        year = _fy_shift(fy, -i)
        start = parse_financial_year(year).start.strftime("%Y-%m")
        end = min(parse_financial_year(year).end.strftime("%Y-%m"), period)
        months = months_between(start, end)
        raw: dict[str, float | None] = {}
        has_months = any((m, t) in extract.deaths_by_month for m in months for t in DEATH_TYPES)
        for t in DEATH_TYPES:
            if has_months:
                raw[t] = _sum([extract.deaths_by_month.get((m, t)) for m in months]) or 0.0
            else:
                raw[t] = extract.deaths_by_year.get((year, t))
        has_data = any(v is not None for v in raw.values())
        parts = {t: _decided(control, decisions, control.figure(raw[t], "count", True), year, "death_type", t)
                 for t in DEATH_TYPES}
        total = _decided(control, decisions, control.figure(_sum(list(raw.values())), "count", True), year)
        if end == period and not period.endswith("-03") and decisions is not None:
            # A year to date, not the year: like the scorecard's year to date, hidden once any
            # month it adds up is (consecutive scorecards would give that month away).
            def to_date(dimension: str, value: str) -> Reason | None:
                hidden = any(decisions.kpi("CDN_NOTIFICATIONS", "month", m, dimension, value) for m in months)
                return Reason.COMPLEMENT if hidden else None

            parts = {t: _also_hidden(control, f, to_date("death_type", t)) for t, f in parts.items()}
            total = _also_hidden(control, total, to_date("total", "total"))
        if end == period and decisions is not None:
            # A year still in progress counts to this month: its total is this month's year to
            # date, hidden wherever the scorecard row hides that.
            total = _also_hidden(control, total, decisions.row(period, "CDN_NOTIFICATIONS").get("fytd_value"))
        if total.hidden or any(f.hidden for f in parts.values()):
            # With the total shown, one hidden part is given away by the others; the other KPIs
            # constrain the split too (the JAR percentage hints at the unexpected count). With
            # the total hidden, the parts would add up to it. Either way the whole split is
            # withheld for that year.
            parts = {t: f if f.hidden else control.hidden("count", Reason.COMPLEMENT) for t, f in parts.items()}
        label = f"{year} (to {_short_month(period)})" if end == period and not period.endswith("-03") else year
        out.append(ChildDeathYear(year, label, parts, total, has_data))
    return tuple(out)


def _gaps(settings: Settings, extract: _MartExtract) -> tuple[ReturnGap, ...]:
    names = _partner_names(settings) if extract.gaps else {}
    contracts = load_contracts()
    out = []
    for g in extract.gaps:
        contract = contracts.get(g["return_type"])
        title = contract.title if contract else str(g["return_type"]).replace("_", " ")
        out.append(ReturnGap(
            return_type=g["return_type"],
            return_title=title,
            partner_code=g["partner_code"],
            partner_name=names.get(g["partner_code"], g["partner_code"]),
            status=g["status"],
            due_date=g.get("due_date"),
        ))
    return tuple(out)


def build_scorecard(settings: Settings, period: str) -> Scorecard:
    """Read the mart for ``period`` and return the disclosure-controlled scorecard model."""
    parse_month(period)
    control = DisclosureControl.from_settings(settings)
    extract = _read_mart(settings, period, control.threshold)
    if not extract.rows:
        latest = f" The latest month in the mart is {extract.latest_period}." if extract.latest_period else ""
        raise ScorecardError(
            f"The KPI mart has no scorecard rows for {period}: no returns for that month have been "
            f"built into it.{latest} Run `pkpi ingest` and `pkpi build` first, or choose a month "
            "that has returns."
        )
    gaps = _gaps(settings, extract)
    rows = tuple(
        _build_row(control, extract, r, period, gaps)
        for r in sorted(extract.rows, key=_sort_key)
    )
    return Scorecard(
        partnership=settings.partnership_name,
        period=period,
        period_label=_month_label(period),
        financial_year=_fy_of(period),
        threshold=control.threshold,
        provisional=bool(gaps) or any(r.provisional for r in rows),
        gaps=gaps,
        rows=rows,
        child_deaths_by_year=_child_death_years(control, extract, period),
    )


# --- writing the files -------------------------------------------------------------------


def write_atomic(path: Path, data: bytes | str) -> Path:
    """Write a file whole or not at all, so a crash never leaves half a scorecard behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
        # mkstemp makes 0600; produce_scorecard then opens the export folder up as far as
        # PKPI_PUBLISHED_ACCESS allows (pkpi.files), so no file is ever more open than that.
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def export_dir(settings: Settings, period: str) -> Path:
    """Where the scorecard files for a month live."""
    return settings.exports_dir / parse_month(period).label


def produce_scorecard(settings: Settings, period: str) -> ScorecardOutput:
    """Produce every scorecard file for ``period`` (``YYYY-MM``); rerunning overwrites them.

    Raises ScorecardError, saying what to run first, when the mart has nothing for the month.
    """
    scorecard = build_scorecard(settings, period)
    out_dir = make_dir(settings, export_dir(settings, period))
    chart_files = charts.draw_scorecard_charts(scorecard, out_dir / "charts")

    html = write_atomic(out_dir / "scorecard.html", rendering.render_html(scorecard, chart_files, mode="file"))
    csv_path = write_atomic(out_dir / "scorecard.csv", rendering.render_csv(scorecard))
    xlsx = write_atomic(out_dir / "scorecard.xlsx", rendering.render_xlsx(scorecard))
    pdf = write_atomic(out_dir / "scorecard.pdf", rendering.render_pdf(scorecard, chart_files))
    email_html = write_atomic(out_dir / "email" / "body.html", rendering.render_html(scorecard, chart_files, mode="email"))
    email_text = write_atomic(out_dir / "email" / "body.txt", rendering.render_text(scorecard))
    manifest = write_atomic(
        out_dir / "manifest.json",
        json.dumps(
            {
                "period": scorecard.period,
                "period_label": scorecard.period_label,
                "partnership": scorecard.partnership,
                "subject": scorecard.subject,
                "provisional": scorecard.provisional,
                "gaps": [g.describe() for g in scorecard.gaps],
                "disclosure_threshold": scorecard.threshold,
                "charts": [
                    {"file": str(c.path.relative_to(out_dir)), "cid": c.cid, "title": c.title}
                    for c in chart_files
                ],
                "email": {"html": "email/body.html", "text": "email/body.txt"},
                # The exported files, and the names they are attached to the email under.
                "attachments": [
                    {"file": "scorecard.pdf", "filename": scorecard.attachment_name("pdf")},
                    {"file": "scorecard.xlsx", "filename": scorecard.attachment_name("xlsx")},
                ],
            },
            indent=2,
        ),
    )
    secure_tree(settings, out_dir)
    return ScorecardOutput(
        period=scorecard.period,
        directory=out_dir,
        html=html,
        pdf=pdf,
        xlsx=xlsx,
        csv=csv_path,
        manifest=manifest,
        email_html=email_html,
        email_text=email_text,
        charts=tuple(c.path for c in chart_files),
        provisional=scorecard.provisional,
        subject=scorecard.subject,
    )
