"""Hide the decided figures in a copy of the mart's tables (the published copy).

:func:`apply_decisions` takes :class:`~pkpi.disclosure.decisions.Decisions` (normally those
``pkpi build`` stored, :mod:`pkpi.disclosure.stored`) and applies them to ``schema.kpi_values``
and ``schema.scorecard`` of a publication being written, never the warehouse: a hidden figure's
numerator, denominator and value are set to null, ``suppressed`` is true and
``suppression_reason`` says why (small_count, small_base or complement), so a reader can tell a
hidden figure from a missing one. A scorecard row is ``suppressed`` when any of its figures
(value, fytd_value, previous_month_value, same_month_last_year_value) is hidden; its
``suppression_reason`` names each one ("value: small_count; fytd_value: complement"), and a
hidden value's RAG reads grey and its trend n/a, since both would hint at the number.
"""

from __future__ import annotations

import duckdb

from .decisions import SCORECARD_FIGURES, Decisions, Key, decide_over, reason_text
from .rules import Reason


def apply_decisions(con: duckdb.DuckDBPyConnection, schema: str, decisions: Decisions) -> int:
    """Hide what ``decisions`` hide in ``schema.kpi_values`` and ``schema.scorecard``, and set
    ``kpi_values.disclosive`` to the rows disclosure control applies to. ``con`` is the
    connection to the publication being written (never the warehouse). Returns how many
    figures were hidden."""
    con.execute(f"alter table {schema}.kpi_values add column if not exists suppressed boolean default false")
    con.execute(f"alter table {schema}.kpi_values add column if not exists suppression_reason varchar")
    con.execute(f"update {schema}.kpi_values set suppressed = false, suppression_reason = null")
    _mark_disclosive(con, schema, list(decisions.disclosive))
    if decisions.kpi_values:
        _mark_hidden(con, schema, decisions.kpi_values)
    _control_scorecard(con, schema, decisions.scorecard)
    return decisions.hidden_figures


def apply_disclosure_control(con: duckdb.DuckDBPyConnection, schema: str, threshold: int) -> int:
    """Decide over ``schema``'s own tables (:func:`~pkpi.disclosure.decisions.decide_over`) and
    apply the decisions there: for tables that no build has decided (tests, a hand-made copy).
    Returns how many figures were hidden."""
    return apply_decisions(con, schema, decide_over(con, schema, threshold))


_KEY = ("kpi_code", "period_grain", "period", "partner_code", "dimension", "dimension_value")
_MATCH = " and ".join(f"v.{c} = cast(d.{c} as varchar)" for c in _KEY)


def _mark_disclosive(con, schema: str, keys: list[Key]) -> None:
    """Set kpi_values.disclosive to exactly the rows disclosure control treated as disclosive."""
    con.execute(f"update {schema}.kpi_values set disclosive = false")
    if keys:
        _update_from(con, f"update {schema}.kpi_values as v set disclosive = true from decided as d where {_MATCH}",
                     keys, _KEY)


def _mark_hidden(con, schema: str, hidden: dict[Key, Reason]) -> None:
    _update_from(
        con,
        f"""
        update {schema}.kpi_values as v
        set numerator = null, denominator = null, value = null,
            suppressed = true, suppression_reason = cast(d.reason as varchar)
        from decided as d where {_MATCH}
        """,
        [(*key, reason.value) for key, reason in hidden.items()], (*_KEY, "reason"),
    )


def _update_from(con, sql: str, rows: list[tuple], columns: tuple[str, ...]) -> None:
    """Run ``sql`` with the table ``decided`` holding ``rows``: one set-based update, not a
    statement a row."""
    import pandas as pd  # here, not at the top: pkpi query reads the published copy without pandas

    con.register("decided", pd.DataFrame(rows, columns=list(columns), dtype="object"))
    try:
        con.execute(sql)
    finally:
        con.unregister("decided")


# --- scorecard ----------------------------------------------------------------------------------


def _control_scorecard(con, schema: str, decided: dict[tuple[str, str], dict[str, Reason]]) -> int:
    # mart.scorecard carries both already (pkpi build stored them); set again from the decisions.
    con.execute(f"alter table {schema}.scorecard add column if not exists suppressed boolean default false")
    con.execute(f"alter table {schema}.scorecard add column if not exists suppression_reason varchar")
    con.execute(f"update {schema}.scorecard set suppressed = false, suppression_reason = null")
    if not decided:
        return 0
    figures = SCORECARD_FIGURES

    def hides(*columns: str) -> str:
        return " or ".join(f"cast(d.{c} as boolean)" for c in columns)

    def cleared(column: str, *when: str) -> str:
        return f"{column} = case when {hides(*when)} then null else s.{column} end"

    # Trend compares the value with the previous month, or for a KPI reported only by financial
    # year, with the year before (same_month_last_year_value); the RAG rating and trend would
    # tell a hidden value's neighbourhood.
    _update_from(
        con,
        f"""
        update {schema}.scorecard as s set
            {", ".join(cleared(c, c) for c in figures)},
            {cleared("numerator", "value")}, {cleared("denominator", "value")},
            {cleared("fytd_numerator", "fytd_value")}, {cleared("fytd_denominator", "fytd_value")},
            rag = case when {hides("value")} then 'grey' else s.rag end,
            trend = case when {hides("value")} or (case when k.value_grain = 'month' then {hides("previous_month_value")}
                                          else {hides("same_month_last_year_value")} end) then 'n/a' else s.trend end,
            suppressed = true, suppression_reason = cast(d.reason as varchar)
        from decided as d,
             (select kpi_code, max(value_grain) as value_grain from {schema}.scorecard group by kpi_code) as k
        where s.period = cast(d.period as varchar) and s.kpi_code = cast(d.kpi_code as varchar)
          and k.kpi_code = s.kpi_code
        """,
        [(period, kpi, *(c in reasons for c in figures), reason_text(reasons)) for (period, kpi), reasons in decided.items()],
        ("period", "kpi_code", *figures, "reason"),
    )
    return sum(len(r) for r in decided.values())

