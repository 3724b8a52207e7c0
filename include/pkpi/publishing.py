"""Disclosure control of the published copy of the mart.

The mart keeps every figure exactly; ``published/kpi_mart.duckdb`` and its Parquet files leave
the warehouse, so :func:`apply_disclosure_control` runs the rules of :mod:`pkpi.disclosure` over
the copy before it is renamed into place (kpi-mart.md section 5):

- primary: in a disclosive row (:func:`pkpi.disclosure.is_disclosive`: a KPI the catalogue
  marks disclosive, every child death KPI, any breakdown by sex or ethnicity) a count from 1 to
  threshold-1 is hidden, and so is a ratio whose numerator or denominator is from 1 to
  threshold-1;
- complementary: wherever parts add up to a published total (the values of each breakdown and its
  total; the partners and ALL; the months of a financial year and the year), one hidden part
  could be worked out by subtraction, so more parts are hidden
  (:meth:`DisclosureControl.protect_parts`), repeated until nothing changes;
- the scorecard hides its figures where the matching kpi_values row is hidden, and a year-to-date
  count whenever any month it adds up is hidden (consecutive year-to-date figures would
  otherwise give that month away); a hidden value's RAG reads grey, and its trend n/a, since
  both would hint at the number.

A hidden figure's numerator, denominator and value are set to null, ``suppressed`` is true and
``suppression_reason`` says why (small_count, small_base or complement), so a reader can tell a
hidden figure from a missing one. A scorecard row is ``suppressed`` when any of its figures (value,
fytd_value, previous_month_value, same_month_last_year_value) is hidden; its
``suppression_reason`` names each one ("value: small_count; fytd_value: complement").

The dbt model ``int_scorecard_disclosure`` runs this module over an in-memory copy at build time,
so ``mart.scorecard.suppressed`` says which figures leave the warehouse hidden while the mart
keeps them.
"""

from __future__ import annotations

from collections import defaultdict
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
    groups = _additive_groups(count_keys, fy_of_month)
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


def _additive_groups(keys: list[Key], fy_of_month: dict[Key, str | None]) -> list[tuple[Key, list[Key]]]:
    """(total, parts) for every way published counts add up."""
    present = set(keys)
    # Each breakdown adds up to the total on its own (the death types of a month's deaths, and
    # separately their age bands), so each is its own group: pooling them would let the hidden
    # parts of one breakdown count towards protecting another.
    breakdowns: dict[tuple[Key, str], list[Key]] = defaultdict(list)
    partners: dict[Key, list[Key]] = defaultdict(list)
    months: dict[Key, list[Key]] = defaultdict(list)
    for key in keys:
        kpi, grain, period, partner, dimension, value = key
        if dimension != "total":
            breakdowns[((kpi, grain, period, partner, "total", "total"), dimension)].append(key)
        if partner != "ALL":
            partners[(kpi, grain, period, "ALL", dimension, value)].append(key)
        if grain == "month" and fy_of_month.get(key):
            months[(kpi, "financial_year", fy_of_month[key], partner, dimension, value)].append(key)
    candidates = [(total, parts) for (total, _), parts in breakdowns.items()]
    candidates += list(partners.items()) + list(months.items())
    return [(total, parts) for total, parts in candidates if total in present and parts]


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
        return 0
    months = dict(con.execute(f"select month, financial_year from {schema}.dim_month").fetchall())
    ordered = sorted(months)
    updates = []
    count = 0
    # The figure trend compares the value with: the previous month, or for a KPI reported only
    # by financial year, the year before (same_month_last_year_value).
    compared_with = {
        kpi: "previous_month_value" if value_grain == "month" else "same_month_last_year_value"
        for _, kpi, _, value_grain, *_ in rows
    }
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
        # Year to date: its own counts, and every month it adds up.
        fytd = control.figure(fytd_value, unit, True, fytd_num, fytd_den)
        if fytd.hidden:
            reasons["fytd_value"] = fytd.reason
        elif value_grain == "month" and unit == "count" and any(
            row_reason(m) is not None for m in ordered if months[m] == fy and m <= period
        ):
            reasons["fytd_value"] = Reason.COMPLEMENT
        if reasons:
            count += len(reasons)
            updates.append((period, kpi, reasons))
    for period, kpi, reasons in updates:
        sets = [f"{column} = null" for column in reasons] + ["suppressed = true"]
        if "value" in reasons:
            # The RAG rating and trend would tell the hidden value's neighbourhood.
            sets += ["numerator = null", "denominator = null", "rag = 'grey'"]
        if "value" in reasons or compared_with[kpi] in reasons:
            sets.append("trend = 'n/a'")
        if "fytd_value" in reasons:
            sets += ["fytd_numerator = null", "fytd_denominator = null"]
        text = "; ".join(f"{column}: {reason.value}" for column, reason in reasons.items())
        con.execute(
            f"update {schema}.scorecard set {', '.join(sets)}, suppression_reason = ? "
            "where period = ? and kpi_code = ?",
            [text, period, kpi],
        )
    return count
