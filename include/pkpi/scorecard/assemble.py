"""Building the disclosure-controlled scorecard from what :mod:`.mart` read.

Each figure goes through the primary rule of :mod:`pkpi.disclosure`, and is hidden as well
wherever the decisions over the whole mart, made once by ``pkpi build`` and stored
(:func:`pkpi.disclosure.load_decisions`), hide it in the published copy (complementary suppression across months, years and breakdowns; a year to
date once any month it covers is hidden). So every month's scorecard hides the same figures, and
no figure hidden in one can be worked out from another. What leaves this module is a
:class:`~pkpi.scorecard.model.Scorecard` of :class:`~pkpi.disclosure.Figure` objects only.
"""

from __future__ import annotations

from ..contracts import load_contracts
from ..disclosure import Decisions, DisclosureControl, Figure, Reason, is_disclosive, link_of
from ..periods import months_between, parse_financial_year, parse_month, shift_month
from ..reference import ReferenceDataError, load_reference
from ..settings import Settings
from .mart import MartExtract, Observation, read_mart
from .model import (
    DEATH_TYPES,
    FIVE_YEARS,
    TREND_MONTHS,
    ChildDeathYear,
    ReturnGap,
    Scorecard,
    ScorecardError,
    ScorecardRow,
    SeriesPoint,
    fy_of,
    fy_shift,
    month_label,
    short_month,
)


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


def _fytd_observation(extract: MartExtract, code: str, period: str, fytd_value) -> Observation:
    """FYTD numerator and denominator: the sum of the months April..period, else the FY row."""
    fy = fy_of(period)
    start = parse_financial_year(fy).start.strftime("%Y-%m")
    months = [extract.months[(code, m)] for m in months_between(start, period) if (code, m) in extract.months]
    if months:
        return Observation(fytd_value, _sum([m.numerator for m in months]), _sum([m.denominator for m in months]))
    year = extract.years.get((code, fy))
    return Observation(fytd_value, year.numerator if year else None, year.denominator if year else None)


def _source_of(row: dict) -> str | None:
    """The return type a KPI is counted from (dim_kpi.source); None for KPIs about every
    expected return (return compliance, source "returns")."""
    source = row["kpi_source"]
    return source if source in load_contracts() else None


def _build_row(control: DisclosureControl, extract: MartExtract, row: dict, period: str,
               gaps: tuple[ReturnGap, ...] = ()) -> ScorecardRow:
    code, unit = row["kpi_code"], row["unit"]
    disclosive = is_disclosive(code, bool(row.get("kpi_disclosive")))
    nested = link_of(code, unit).nested  # denominator minus numerator is a count too
    fy = fy_of(period)
    previous, last_year = shift_month(period, -1), shift_month(period, -12)
    window = months_between(shift_month(period, -(TREND_MONTHS - 1)), period)
    has_months = any((code, m) in extract.months for m in window)

    # The scorecard's own figures win over kpi_values for the months it reports, so the table
    # and the chart always agree.
    observations = {m: extract.months.get((code, m), Observation()) for m in window}
    for month, column in ((period, "value"), (previous, "previous_month_value"), (last_year, "same_month_last_year_value")):
        base = observations[month]
        observations[month] = Observation(row.get(column), base.numerator, base.denominator)
    # The mart's scorecard carries the month's own counts (beyond docs/mart.md, section 5); prefer them.
    observations[period] = Observation(
        row.get("value"),
        _first(row.get("numerator"), observations[period].numerator),
        _first(row.get("denominator"), observations[period].denominator),
    )

    decisions = extract.decisions
    decided = decisions.row(period, code) if decisions else {}

    def controlled(obs: Observation, grain: str | None = None, at: str | None = None) -> Figure:
        """The primary rule here, then whatever the mart-wide decisions hide as well."""
        figure = control.figure(obs.value, unit, disclosive, obs.numerator, obs.denominator, nested=nested)
        if not disclosive or decisions is None or grain is None:
            return figure
        return _also_hidden(control, figure, decisions.kpi(code, grain, at))

    fytd_obs = _fytd_observation(extract, code, period, row.get("fytd_value"))
    fytd = controlled(Observation(
        fytd_obs.value,
        _first(row.get("fytd_numerator"), fytd_obs.numerator),
        _first(row.get("fytd_denominator"), fytd_obs.denominator),
    ))
    # Hidden once any month it adds up is (consecutive scorecards would give the month away).
    fytd = _also_hidden(control, fytd, decided.get("fytd_value"))
    monthly = {m: controlled(o, "month", m) for m, o in observations.items()}

    if has_months:
        grain = "month"
        series = tuple(SeriesPoint(m, short_month(m), monthly[m]) for m in window)
    else:
        # Financial-year KPIs (finance) have no monthly figures: trend them over five years.
        grain = "financial_year"
        fys = [fy_shift(fy, -i) for i in range(FIVE_YEARS - 1, -1, -1)]
        series = tuple(
            SeriesPoint(y, y, controlled(extract.years.get((code, y), Observation()), "financial_year", y))
            for y in fys
        )
    # The row's own figures: hidden wherever the published scorecard hides them.
    for column, month in (("value", period), ("previous_month_value", previous), ("same_month_last_year_value", last_year)):
        monthly[month] = _also_hidden(control, monthly[month], decided.get(column))

    value = monthly[period]
    previous_figure = monthly[previous]
    rag, trend = row["rag"], row["trend"]  # never null (mart.scorecard's contract)
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
    # The returns to name in the KPI's provisional note; whether it is provisional at all is
    # mart.scorecard.provisional's to say (the same rule, decided once in the mart).
    source = _source_of(row)
    row_gaps = tuple(g for g in gaps if source is None or g.return_type == source)
    return ScorecardRow(
        period=period,
        kpi_code=code,
        kpi_name=row["kpi_name"],
        theme=row["theme"],
        unit=unit,
        polarity=row["polarity"],
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


def _child_death_years(control: DisclosureControl, extract: MartExtract, period: str) -> tuple[ChildDeathYear, ...]:
    fy = fy_of(period)
    decisions = extract.decisions
    out = []
    for i in range(FIVE_YEARS - 1, -1, -1):
        year = fy_shift(fy, -i)
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
        label = f"{year} (to {short_month(period)})" if end == period and not period.endswith("-03") else year
        out.append(ChildDeathYear(year, label, parts, total, has_data))
    return tuple(out)


def _gaps(settings: Settings, extract: MartExtract) -> tuple[ReturnGap, ...]:
    names = _partner_names(settings) if extract.gaps else {}
    contracts = load_contracts()
    out = []
    for g in extract.gaps:
        out.append(ReturnGap(
            return_type=g["return_type"],
            return_title=contracts[g["return_type"]].title,  # the schedule names contracts only
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
    extract = read_mart(settings, period, control.threshold)
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
        for r in extract.rows
    )
    return Scorecard(
        partnership=settings.partnership_name,
        period=period,
        period_label=month_label(period),
        financial_year=fy_of(period),
        threshold=control.threshold,
        provisional=bool(gaps) or any(r.provisional for r in rows),
        gaps=gaps,
        rows=rows,
        child_deaths_by_year=_child_death_years(control, extract, period),
    )

