"""Disclosure control of the published copy of the mart.

The mart keeps every figure exactly; ``published/kpi_mart.duckdb`` and its Parquet files leave
the warehouse, so :func:`apply_disclosure_control` runs the rules of :mod:`pkpi.disclosure` over
the copy before it is renamed into place (kpi-mart.md section 5):

- primary: in a disclosive row (:func:`pkpi.disclosure.is_disclosive`: a KPI the catalogue
  marks disclosive, every child death KPI, any breakdown by sex or ethnicity) a count from 1 to
  threshold-1 is hidden, and so is a ratio whose numerator or denominator is from 1 to
  threshold-1;
- complementary: wherever parts add up to a published total (the values of each breakdown and its
  total; the partners and ALL), one hidden part could be worked out by subtraction, so more parts
  are hidden (:meth:`DisclosureControl.protect_parts`), repeated until nothing changes;
- years: a financial year's figure is the last of the year-to-date figures that monthly
  scorecards publish, so once a month is hidden, a year in progress is hidden, and a complete
  year stays shown only if the months from the first hidden one on protect it (_protect_year);
- the scorecard hides its figures where the matching kpi_values row is hidden, and a year to
  date (count or percentage) whenever any month it adds up is hidden (consecutive year-to-date
  figures would otherwise give that month away); a hidden value's RAG reads grey, and its trend
  n/a, since both would hint at the number.

A hidden figure's numerator, denominator and value are set to null, ``suppressed`` is true and
``suppression_reason`` says why (small_count, small_base or complement), so a reader can tell a
hidden figure from a missing one. A scorecard row is ``suppressed`` when any of its figures (value,
fytd_value, previous_month_value, same_month_last_year_value) is hidden; its
``suppression_reason`` names each one ("value: small_count; fytd_value: complement").

:func:`decide` makes the same decisions over an in-memory copy without changing anything. The
dbt model ``int_scorecard_disclosure`` uses it at build time, so ``mart.scorecard.suppressed``
says which figures leave the warehouse hidden while the mart keeps them; :mod:`pkpi.scorecard`
uses it so that the scorecard files and email hide what the published copy hides, decided over
every month and year at once (decided one scorecard at a time, a month hidden in one email could
be worked out from the year-to-date figures of the next).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Mapping

import duckdb

from .disclosure import DisclosureControl, Figure, Reason, is_disclosive
from .periods import shift_month

Key = tuple[str, str, str, str, str, str]  # kpi_code, period_grain, period, partner_code, dimension, dimension_value

_MAX_ROUNDS = 50


def apply_disclosure_control(con: duckdb.DuckDBPyConnection, schema: str, threshold: int) -> int:
    """Hide disclosive small numbers in ``schema.kpi_values`` and ``schema.scorecard``.

    ``con`` is the connection to the publication being written (never the warehouse). Returns
    how many figures were hidden.
    """
    control = DisclosureControl(threshold)
    hidden = _control_kpi_values(con, schema, control)
    hidden_in_scorecard = _control_scorecard(con, schema, control, hidden)
    return len(hidden) + hidden_in_scorecard


# --- kpi_values ---------------------------------------------------------------------------------


def _control_kpi_values(con, schema: str, control: DisclosureControl) -> dict[Key, Reason]:
    con.execute(f"alter table {schema}.kpi_values add column if not exists suppressed boolean default false")
    con.execute(f"alter table {schema}.kpi_values add column if not exists suppression_reason varchar")
    con.execute(f"update {schema}.kpi_values set suppressed = false, suppression_reason = null")
    # Which rows are disclosive is pkpi.disclosure's rule (the catalogue's flag, child death
    # KPIs, breakdowns by sex or ethnicity), the same one the scorecard applies; the mart's own
    # disclosive column is brought into line with it for readers of the copy.
    rows = con.execute(
        f"""
        select v.kpi_code, v.period_grain, v.period, v.partner_code, v.dimension, v.dimension_value,
               v.numerator, v.denominator, v.value, k.unit, m.financial_year,
               coalesce(v.disclosive, false) or coalesce(k.disclosive, false) as marked
        from {schema}.kpi_values as v
        inner join {schema}.dim_kpi as k on k.kpi_code = v.kpi_code
        left join {schema}.dim_month as m on v.period_grain = 'month' and m.month = v.period
        """
    ).fetchall()
    figures: dict[Key, Figure] = {}
    raw: dict[Key, float | None] = {}
    units: dict[Key, str] = {}
    fy_of_month: dict[Key, str | None] = {}
    for *key, numerator, denominator, value, unit, financial_year, marked in rows:
        key = tuple(key)
        if not is_disclosive(key[0], marked, key[4]):
            continue
        figures[key] = control.figure(value, unit, True, numerator, denominator)
        raw[key] = value
        units[key] = unit
        fy_of_month[key] = financial_year

    # Complementary suppression runs over counts: those are what subtraction recovers.
    count_keys = [k for k in figures if units[k] == "count"]
    groups = _additive_groups(count_keys)
    years = _year_groups(list(figures), fy_of_month)
    for _ in range(_MAX_ROUNDS):
        changed = False
        for total_key, part_keys in groups:
            total = figures.get(total_key)
            published = total is not None and not total.hidden and total.value is not None
            parts = {k: figures[k] for k in part_keys}
            protected = control.protect_parts(parts, {k: raw[k] for k in part_keys}, published)
            for k, figure in protected.items():
                if figure.hidden and not figures[k].hidden:
                    figures[k] = figure
                    changed = True
        for total_key, month_keys in years:
            changed |= _protect_year(control, figures, raw, units[total_key], total_key, month_keys)
        if not changed:
            break

    _mark_disclosive(con, schema, list(figures))
    hidden = {k: f.reason for k, f in figures.items() if f.hidden}
    if hidden:
        _mark_hidden(con, schema, hidden)
    return hidden


def _mark_disclosive(con, schema: str, keys: list[Key]) -> None:
    """Set kpi_values.disclosive to exactly the rows disclosure control treated as disclosive."""
    con.execute(f"update {schema}.kpi_values set disclosive = false")
    if not keys:
        return
    con.execute(
        "create temporary table disclosive_figures (kpi_code varchar, period_grain varchar, period varchar, "
        "partner_code varchar, dimension varchar, dimension_value varchar)"
    )
    con.executemany("insert into disclosive_figures values (?, ?, ?, ?, ?, ?)", keys)
    con.execute(
        f"""
        update {schema}.kpi_values as v set disclosive = true
        from disclosive_figures as d
        where v.kpi_code = d.kpi_code and v.period_grain = d.period_grain and v.period = d.period
          and v.partner_code = d.partner_code and v.dimension = d.dimension
          and v.dimension_value = d.dimension_value
        """
    )
    con.execute("drop table disclosive_figures")


def _additive_groups(keys: list[Key]) -> list[tuple[Key, list[Key]]]:
    """(total, parts) for the ways published counts add up within one period: the values of each
    breakdown and its total, the partners and ALL. (Months and their year: _year_groups.)"""
    present = set(keys)
    # Each breakdown adds up to the total on its own (the death types of a month's deaths, and
    # separately their age bands), so each is its own group: pooling them would let the hidden
    # parts of one breakdown count towards protecting another.
    breakdowns: dict[tuple[Key, str], list[Key]] = defaultdict(list)
    partners: dict[Key, list[Key]] = defaultdict(list)
    for key in keys:
        kpi, grain, period, partner, dimension, value = key
        if dimension != "total":
            breakdowns[((kpi, grain, period, partner, "total", "total"), dimension)].append(key)
        if partner != "ALL":
            partners[(kpi, grain, period, "ALL", dimension, value)].append(key)
    candidates = [(total, parts) for (total, _), parts in breakdowns.items()]
    candidates += list(partners.items())
    return [(total, parts) for total, parts in candidates if total in present and parts]


def _year_groups(keys: list[Key], fy_of_month: dict[Key, str | None]) -> list[tuple[Key, list[Key]]]:
    """(financial-year row, its month rows in order) for every disclosive year figure."""
    present = set(keys)
    months: dict[Key, list[Key]] = defaultdict(list)
    for key in keys:
        kpi, grain, period, partner, dimension, value = key
        if grain == "month" and fy_of_month.get(key):
            months[(kpi, "financial_year", fy_of_month[key], partner, dimension, value)].append(key)
    return [(total, sorted(parts, key=lambda k: k[2])) for total, parts in months.items() if total in present]


def _protect_year(control: DisclosureControl, figures: dict[Key, Figure], raw: dict[Key, float | None],
                  unit: str, total_key: Key, month_keys: list[Key]) -> bool:
    """Keep a financial year's figure from giving away a hidden month; True if anything changed.

    Monthly scorecards publish the year to date every month, and the year's figure is the last
    year to date, so differences between releases recover any month whose year to date is shown
    on either side of it. Once any month of the year is hidden:
    - a year still in progress (no March yet) is hidden: it is this month's year to date;
    - a complete year's count stays shown only if the months from the first hidden one onwards
      (the earlier ones are known from the year-to-date figures already published) can protect
      it: at least two hidden, adding up to the threshold or more, hiding more of them if need be
      (:meth:`DisclosureControl.protect_parts`); otherwise the year is hidden too. A complete
      year's percentage is hidden (its counts are the counts of the months).
    """
    hidden_months = [k for k in month_keys if figures[k].hidden]
    total = figures[total_key]
    if not hidden_months or total.hidden:
        return False
    complete = any(k[2].endswith("-03") for k in month_keys)
    if not complete or unit != "count":
        figures[total_key] = control.hidden(unit, Reason.COMPLEMENT)
        return True
    first = hidden_months[0][2]
    tail = [k for k in month_keys if k[2] >= first]
    protected = control.protect_parts({k: figures[k] for k in tail}, {k: raw[k] for k in tail}, True)
    changed = False
    for k, figure in protected.items():
        if figure.hidden and not figures[k].hidden:
            figures[k] = figure
            changed = True
    hidden_tail = [k for k in tail if figures[k].hidden]
    if len(hidden_tail) < 2 or sum(raw[k] or 0 for k in hidden_tail) < control.threshold:
        figures[total_key] = control.hidden(unit, Reason.COMPLEMENT)
        changed = True
    return changed


def _mark_hidden(con, schema: str, hidden: dict[Key, Reason]) -> None:
    con.execute(
        "create temporary table hidden_figures (kpi_code varchar, period_grain varchar, period varchar, "
        "partner_code varchar, dimension varchar, dimension_value varchar, reason varchar)"
    )
    con.executemany(
        "insert into hidden_figures values (?, ?, ?, ?, ?, ?, ?)",
        [(*key, reason.value) for key, reason in hidden.items()],
    )
    con.execute(
        f"""
        update {schema}.kpi_values as v
        set numerator = null, denominator = null, value = null,
            suppressed = true, suppression_reason = h.reason
        from hidden_figures as h
        where v.kpi_code = h.kpi_code and v.period_grain = h.period_grain and v.period = h.period
          and v.partner_code = h.partner_code and v.dimension = h.dimension
          and v.dimension_value = h.dimension_value
        """
    )
    con.execute("drop table hidden_figures")


# --- scorecard ----------------------------------------------------------------------------------


def _control_scorecard(con, schema: str, control: DisclosureControl, hidden: dict[Key, Reason]) -> int:
    # mart.scorecard already carries both (int_scorecard_disclosure runs this same code at build
    # time); they are worked out again here, with this publication's threshold.
    con.execute(f"alter table {schema}.scorecard add column if not exists suppressed boolean default false")
    con.execute(f"alter table {schema}.scorecard add column if not exists suppression_reason varchar")
    con.execute(f"update {schema}.scorecard set suppressed = false, suppression_reason = null")
    decided = _scorecard_reasons(con, schema, control, hidden)
    value_grains = dict(con.execute(f"select distinct kpi_code, value_grain from {schema}.scorecard").fetchall())
    for (period, kpi), reasons in decided.items():
        sets = [f"{column} = null" for column in reasons] + ["suppressed = true"]
        if "value" in reasons:
            # The RAG rating and trend would tell the hidden value's neighbourhood.
            sets += ["numerator = null", "denominator = null", "rag = 'grey'"]
        # Trend compares the value with the previous month, or for a KPI reported only by
        # financial year, with the year before (same_month_last_year_value).
        compared_with = "previous_month_value" if value_grains.get(kpi) == "month" else "same_month_last_year_value"
        if "value" in reasons or compared_with in reasons:
            sets.append("trend = 'n/a'")
        if "fytd_value" in reasons:
            sets += ["fytd_numerator = null", "fytd_denominator = null"]
        con.execute(
            f"update {schema}.scorecard set {', '.join(sets)}, suppression_reason = ? "
            "where period = ? and kpi_code = ?",
            [reason_text(reasons), period, kpi],
        )
    return sum(len(r) for r in decided.values())


def reason_text(reasons: Mapping[str, Reason]) -> str:
    """suppression_reason of a scorecard row: "value: small_count; fytd_value: complement"."""
    return "; ".join(f"{column}: {reason.value}" for column, reason in reasons.items())


def _scorecard_reasons(con, schema: str, control: DisclosureControl,
                       hidden: dict[Key, Reason]) -> dict[tuple[str, str], dict[str, Reason]]:
    """Which figures of each scorecard row are hidden, and why: {(period, kpi): {column: reason}}."""
    rows = [
        r[:-1]
        for r in con.execute(
            f"""
            select s.period, s.kpi_code, s.unit, s.value_grain, s.financial_year,
                   s.fytd_value, s.fytd_numerator, s.fytd_denominator, coalesce(s.disclosive, false)
            from {schema}.scorecard as s
            """
        ).fetchall()
        if is_disclosive(r[1], r[-1])
    ]
    if not rows:
        return {}
    months = dict(con.execute(f"select month, financial_year from {schema}.dim_month").fetchall())
    ordered = sorted(months)
    shown_years = {
        (kpi, period)
        for kpi, period in con.execute(
            f"select kpi_code, period from {schema}.kpi_values where period_grain = 'financial_year' "
            "and partner_code = 'ALL' and dimension = 'total' and value is not null"
        ).fetchall()
        if (kpi, "financial_year", period, "ALL", "total", "total") not in hidden
    }
    out: dict[tuple[str, str], dict[str, Reason]] = {}
    for period, kpi, unit, value_grain, fy, fytd_value, fytd_num, fytd_den in rows:
        def row_reason(month: str | None) -> Reason | None:
            if month is None:
                return None
            if value_grain == "month":
                return hidden.get((kpi, "month", month, "ALL", "total", "total"))
            return hidden.get((kpi, "financial_year", months.get(month, ""), "ALL", "total", "total"))

        previous = shift_month(period, -1)
        last_year = shift_month(period, -12)
        reasons: dict[str, Reason] = {}
        for column, month in (("value", period), ("previous_month_value", previous), ("same_month_last_year_value", last_year)):
            reason = row_reason(month)
            if reason is not None:
                reasons[column] = reason
        # Year to date: its own counts, and every month it adds up. Consecutive year-to-date
        # figures give a month away by subtraction (counts), or bound it (two equal percentages
        # mean the month between had that percentage too), so a year to date is hidden once
        # any month it covers is.
        # March's year to date is the whole year, shown when the year's figure is
        # (_protect_year has made sure the months after the last safe year to date protect it).
        fytd = control.figure(fytd_value, unit, True, fytd_num, fytd_den)
        whole_year_shown = period.endswith("-03") and (kpi, fy) in shown_years
        if fytd.hidden:
            reasons["fytd_value"] = fytd.reason
        elif value_grain == "month" and not whole_year_shown and any(
            row_reason(m) is not None for m in ordered if months[m] == fy and m <= period
        ):
            reasons["fytd_value"] = Reason.COMPLEMENT
        if reasons:
            out[(period, kpi)] = reasons
    return out


# --- the same decisions, without a publication ------------------------------------------------


@dataclass(frozen=True)
class Decisions:
    """What disclosure control hides, worked out over a copy of the mart (nothing is changed).

    ``kpi_values`` maps each hidden kpi_values row (:data:`Key`) to its reason; ``scorecard``
    maps each scorecard row (period, kpi_code) with a hidden figure to {column: reason}. The
    scorecard files and mart.scorecard.suppressed use these so that they hide exactly what the
    published copy hides, across every month and year rather than one scorecard at a time.
    """

    threshold: int
    kpi_values: dict[Key, Reason]
    scorecard: dict[tuple[str, str], dict[str, Reason]]

    def kpi(self, kpi_code: str, grain: str, period: str, dimension: str = "total",
            dimension_value: str = "total") -> Reason | None:
        """Why a partnership-level (ALL) kpi_values figure is hidden; None when it is shown."""
        return self.kpi_values.get((kpi_code, grain, period, "ALL", dimension, dimension_value))

    def row(self, period: str, kpi_code: str) -> dict[str, Reason]:
        return self.scorecard.get((period, kpi_code), {})


# The columns disclosure control reads from each mart table.
DECISION_TABLES = {
    "kpi_values": ("kpi_code", "period_grain", "period", "partner_code", "dimension", "dimension_value",
                   "numerator", "denominator", "value", "disclosive"),
    "dim_kpi": ("kpi_code", "unit", "disclosive"),
    "dim_month": ("month", "financial_year"),
    "scorecard": ("period", "kpi_code", "unit", "value_grain", "financial_year", "fytd_value",
                  "fytd_numerator", "fytd_denominator", "disclosive"),
}


def decide(tables: Mapping[str, object], threshold: int) -> Decisions:
    """Run disclosure control over copies of ``tables`` (kpi_values, dim_kpi, dim_month and
    scorecard, each a pandas DataFrame or anything DuckDB can scan) in a private in-memory
    database, and return what it hides."""
    control = DisclosureControl(threshold)
    scratch = duckdb.connect()
    try:
        scratch.execute("create schema controlled")
        for name in DECISION_TABLES:
            scratch.register("incoming", tables[name])
            scratch.execute(f"create table controlled.{name} as select * from incoming")
            scratch.unregister("incoming")
        hidden = _control_kpi_values(scratch, "controlled", control)
        return Decisions(threshold, hidden, _scorecard_reasons(scratch, "controlled", control, hidden))
    finally:
        scratch.close()


def decide_from_mart(con: duckdb.DuckDBPyConnection, threshold: int, schema: str = "mart") -> Decisions:
    """:func:`decide` over the mart tables a connection can read (the warehouse, read-only)."""
    return decide(
        {
            name: con.execute(f"select {', '.join(columns)} from {schema}.{name}").df()
            for name, columns in DECISION_TABLES.items()
        },
        threshold,
    )
