"""The decisions of one build, stored in the warehouse: made once, read by every output.

``pkpi build`` (:func:`pkpi.build.build_mart`) calls :func:`store_decisions` right after dbt has
built the mart, still under the warehouse's exclusive lock, and the decisions are written in one
short transaction, together with ``mart.scorecard.suppressed`` and ``suppression_reason``. The
kpi_values rows are decided by unit, a KPI family in one financial year, which no relation
crosses (:func:`pkpi.disclosure.decisions.unit_rows_sql`): a unit whose fingerprint
(:func:`unit_fingerprints`: its figures, its year's months, the threshold and the rules) is the
one stored with its decisions keeps its stored rows, and only the others are decided again (the
integer audits take seconds a unit); the scorecard's figures are decided again whole, which is
quick. So a monthly build decides the current year's units, not every year of the history; a
full refresh (``reuse=False``) decides every unit. The result equals a decision over the whole
mart from nothing (tests/test_disclosure_stored.py):

- ``mart.disclosure_decisions``: one row per kpi_values row disclosure control applies to
  (``decided_for = 'kpi_values'``, ``figure`` null: the row is shown or hidden whole, and
  ``component`` its unit), and one per hidden scorecard figure (``decided_for = 'scorecard'``,
  ``figure`` value, fytd_value, previous_month_value or same_month_last_year_value, keyed by the
  month and KPI); with ``suppressed`` and ``suppression_reason`` (small_count, small_base or
  complement);
- ``mart.disclosure_decision_units``: each unit and its fingerprint;
- ``mart.disclosure_decisions_made``: one row: the threshold, a fingerprint of the tables the
  decisions were made over, when, how long they took, the figures hidden, and how many units
  were decided and how many kept.

The published copy (:mod:`pkpi.publish`) and every scorecard file and email
(:mod:`pkpi.scorecard`) read them with :func:`load_decisions` (a scorecard only the periods it
shows, :func:`load_shown_decisions`), which refuses (saying to run ``pkpi build``) when there
are none (a mart built by an older version), when they were made with another threshold, or
when the mart has changed since (a build stopped between dbt and this step, or dbt run by hand):
nothing recomputes them silently, so every output hides the same figures.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb

from ..errors import PermanentError
from ..warehouse import transaction
from .decisions import DECISION_TABLES, SCORECARD_FIGURES, Decisions, decide_over, months_sql, reason_text, unit_rows_sql
from .rules import Reason

log = logging.getLogger(__name__)

DECISIONS_TABLE = "disclosure_decisions"
MADE_TABLE = "disclosure_decisions_made"
UNITS_TABLE = "disclosure_decision_units"
_KEY = ("kpi_code", "period_grain", "period", "partner_code", "dimension", "dimension_value")


class DecisionsNotStored(PermanentError, RuntimeError):
    """The warehouse holds no usable disclosure decisions for the mart as it is: run `pkpi build`."""


class DecisionsForAnotherThreshold(DecisionsNotStored):
    """The stored decisions were made with another threshold than the settings' one."""

    def __init__(self, message: str, stored: int, wanted: int):
        super().__init__(message)
        self.stored = stored
        self.wanted = wanted


@dataclass(frozen=True)
class StoredDecisions:
    """What :func:`store_decisions` did: the units it decided and those whose stored decisions
    it kept (their figures had not changed), the figures now hidden, and the seconds taken."""

    decided: tuple[str, ...]
    reused: tuple[str, ...]
    hidden_figures: int
    seconds: float

    def summary(self) -> str:
        return (f"{len(self.decided)} unit(s) decided, {len(self.reused)} reused, "
                f"{self.hidden_figures} figure(s) hidden, in {self.seconds:.2f}s")


def store_decisions(con: duckdb.DuckDBPyConnection, threshold: int, schema: str = "mart",
                    reuse: bool = True) -> StoredDecisions:
    """Decide over the mart in ``schema`` and store the decisions (module docstring), in one
    transaction. ``con`` is a writable connection to the warehouse, whose exclusive lock the
    caller holds. With ``reuse``, a unit whose fingerprint is the one stored with its decisions
    keeps them; every other unit is decided again (without, every unit is)."""
    import pandas as pd  # here, not at the top: pkpi query reads the published copy without pandas

    started = time.monotonic()
    units = unit_fingerprints(con, threshold, schema)
    previous = _stored_fingerprints(con, schema) if reuse else {}
    reused = sorted(u for u, fp in units.items() if previous.get(u) == fp)
    decided = sorted(set(units) - set(reused))
    # The scorecard is decided again whole (it is quick): it needs the kept units' hidden
    # partnership totals.
    kept_hidden = {
        tuple(key): Reason(reason)
        for *key, reason in con.execute(
            f"select {', '.join(_KEY)}, suppression_reason from {schema}.{DECISIONS_TABLE} "
            "where decided_for = 'kpi_values' and suppressed and partner_code = 'ALL' and dimension = 'total' "
            "and list_contains(?, component)", [reused],
        ).fetchall()
    } if reused else {}
    decisions = decide_over(con, schema, threshold, units=decided, hidden_elsewhere=kept_hidden)
    fingerprint = mart_fingerprint(con, schema)
    rows = pd.DataFrame(
        [("kpi_values", *key, None, key in decisions.kpi_values,
          decisions.kpi_values[key].value if key in decisions.kpi_values else None, decisions.components[key])
         for key in decisions.disclosive]
        + [("scorecard", kpi, "month", period, "ALL", "total", "total", figure, True, reason.value, None)
           for (period, kpi), reasons in decisions.scorecard.items() for figure, reason in reasons.items()],
        columns=["decided_for", *_KEY, "figure", "suppressed", "suppression_reason", "component"],
        dtype="object",
    )
    flags = pd.DataFrame(
        [(period, kpi, reason_text(reasons)) for (period, kpi), reasons in decisions.scorecard.items()],
        columns=["period", "kpi_code", "suppression_reason"],
        dtype="object",
    )
    fingerprints = pd.DataFrame(sorted(units.items()), columns=["component", "fingerprint"], dtype="object")
    con.register("decided_rows", rows)
    con.register("decided_flags", flags)
    con.register("unit_fingerprints", fingerprints)
    try:
        with transaction(con):
            if reused:
                # Set-based: the kept units' rows stay, everything else is written again.
                con.execute(f"delete from {schema}.{DECISIONS_TABLE} "
                            "where decided_for <> 'kpi_values' or component is null or not list_contains(?, component)",
                            [reused])
            else:
                con.execute(
                    f"""
                    create or replace table {schema}.{DECISIONS_TABLE} (
                        decided_for varchar not null, kpi_code varchar not null, period_grain varchar not null,
                        period varchar not null, partner_code varchar not null, dimension varchar not null,
                        dimension_value varchar not null, figure varchar, suppressed boolean not null,
                        suppression_reason varchar, component varchar)
                    """
                )
            con.execute(
                f"insert into {schema}.{DECISIONS_TABLE} select "
                + ", ".join(f"cast({c} as varchar)" for c in ("decided_for", *_KEY, "figure"))
                + ", cast(suppressed as boolean), cast(suppression_reason as varchar), "
                "cast(component as varchar) from decided_rows"
            )
            con.execute(
                f"create or replace table {schema}.{UNITS_TABLE} as select cast(component as varchar) as component, "
                "cast(fingerprint as varchar) as fingerprint from unit_fingerprints"
            )
            hidden_figures = con.execute(
                f"select count(*) from {schema}.{DECISIONS_TABLE} where suppressed").fetchone()[0]
            seconds = time.monotonic() - started
            con.execute(
                f"""
                create or replace table {schema}.{MADE_TABLE} as
                select cast(? as integer) as threshold, cast(? as varchar) as mart_fingerprint,
                       cast(current_timestamp as timestamp) as decided_at, cast(? as double) as seconds,
                       cast(? as integer) as hidden_figures, cast(? as integer) as units_decided,
                       cast(? as integer) as units_reused
                """,
                [threshold, fingerprint, seconds, hidden_figures, len(decided), len(reused)],
            )
            # The mart keeps every figure; its scorecard says which ones leave it hidden.
            con.execute(f"alter table {schema}.scorecard add column if not exists suppressed boolean")
            con.execute(f"alter table {schema}.scorecard add column if not exists suppression_reason varchar")
            con.execute(f"update {schema}.scorecard set suppressed = false, suppression_reason = null")
            con.execute(
                f"""
                update {schema}.scorecard as s
                set suppressed = true, suppression_reason = cast(f.suppression_reason as varchar)
                from decided_flags as f
                where s.period = cast(f.period as varchar) and s.kpi_code = cast(f.kpi_code as varchar)
                """
            )
    finally:
        con.unregister("decided_rows")
        con.unregister("decided_flags")
        con.unregister("unit_fingerprints")
    stored = StoredDecisions(tuple(decided), tuple(reused), hidden_figures, time.monotonic() - started)
    log.info("Disclosure decisions stored at threshold %d: %s", threshold, stored.summary())
    return stored


def unit_fingerprints(con: duckdb.DuckDBPyConnection, threshold: int, schema: str = "mart") -> dict[str, str]:
    """{unit: a digest of everything its decisions are made from}: its kpi_values rows and their
    dim_kpi columns, the months of its financial year and which of them the mart has figures
    for, the threshold, and the rules themselves (the source of rules.py and decisions.py), so
    that a unit is decided again whenever anything its decisions depend on changes."""
    years = {
        year: f"{months}/{present}"
        for year, months, present in con.execute(
            f"""
            select m.financial_year, string_agg(m.month, ',' order by m.month),
                   string_agg(case when p.period is not null then m.month end, ',' order by m.month)
            from ({months_sql(schema)}) as m (month, financial_year)
            left join (select distinct v.period from {schema}.kpi_values as v inner join {schema}.dim_kpi as k
                       on k.kpi_code = v.kpi_code where v.period_grain = 'month') as p on p.period = m.month
            group by m.financial_year
            """
        ).fetchall()
    }
    columns = [*DECISION_TABLES["kpi_values"], "unit", "kpi_disclosive"]
    rules = _rules_digest()
    return {
        component: hashlib.sha256(
            f"{rules};{threshold};{count};{total};{years.get(year, '') if year else ''}".encode()
        ).hexdigest()
        for component, year, count, total in con.execute(
            f"select component, any_value(financial_year), count(*), sum(hash({', '.join(columns)})) "
            f"from ({unit_rows_sql(schema)}) group by component"
        ).fetchall()
    }


@functools.cache
def _rules_digest() -> str:
    here = Path(__file__).resolve().parent
    return hashlib.sha256(b"".join((here / name).read_bytes() for name in ("rules.py", "decisions.py"))).hexdigest()


def _stored_fingerprints(con: duckdb.DuckDBPyConnection, schema: str) -> dict[str, str]:
    """The units' fingerprints stored with the last decisions; {} when there are none to reuse
    (a first build, or decisions stored by a version without units)."""
    catalog, _, bare = schema.rpartition(".")
    if not (_has_table(con, catalog, bare, UNITS_TABLE) and _has_table(con, catalog, bare, MADE_TABLE)
            and "component" in _columns(con, schema, DECISIONS_TABLE)):
        return {}
    return dict(con.execute(f"select component, fingerprint from {schema}.{UNITS_TABLE}").fetchall())


def _columns(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> set[str]:
    catalog, _, bare = schema.rpartition(".")
    if not _has_table(con, catalog, bare, table):
        return set()
    return {row[0] for row in con.execute(f"describe {schema}.{table}").fetchall()}


def load_decisions(con: duckdb.DuckDBPyConnection, threshold: int, schema: str = "mart") -> Decisions:
    """The decisions the last ``pkpi build`` stored for the mart in ``schema`` (``mart``, or
    ``<catalog>.mart`` for an attached warehouse).

    Raises :class:`DecisionsNotStored` (:class:`DecisionsForAnotherThreshold` when only the
    threshold differs) rather than deciding again: see the module docstring.
    """
    _check_made(con, threshold, schema)
    kpi_values: dict = {}
    disclosive = []
    scorecard: dict = {}
    rows = con.execute(
        f"select decided_for, {', '.join(_KEY)}, figure, suppressed, suppression_reason "
        f"from {schema}.{DECISIONS_TABLE}"
    ).fetchall()
    for decided_for, *rest in rows:
        key, (figure, suppressed, reason) = tuple(rest[:6]), rest[6:]
        if decided_for == "kpi_values":
            disclosive.append(key)
            if suppressed:
                kpi_values[key] = Reason(reason)
        else:
            scorecard.setdefault((key[2], key[0]), {})[figure] = Reason(reason)
    scorecard = _in_figure_order(scorecard)
    _check_flags(con, schema, scorecard, f"select period, kpi_code, suppression_reason from {schema}.scorecard "
                 "where suppressed", [])
    return Decisions(threshold, kpi_values, scorecard, tuple(sorted(disclosive)))


def load_shown_decisions(con: duckdb.DuckDBPyConnection, threshold: int, period: str, months: list[str],
                         years: list[str], schema: str = "mart") -> Decisions:
    """The stored decisions that hide a partnership-wide figure in the periods one scorecard
    shows: its month's scorecard row, ``months`` and ``years``; checked as
    :func:`load_decisions` checks them, the scorecard flags for ``period`` only.

    ``load_decisions`` reads every decision of every partner over the whole history into Python,
    which grows with both; this filters the same table in DuckDB.
    """
    _check_made(con, threshold, schema)
    kpi_values: dict = {}
    scorecard: dict = {}
    for decided_for, *key, figure, reason in con.execute(
        f"""
        SELECT decided_for, {', '.join(_KEY)}, figure, suppression_reason
        FROM {schema}.{DECISIONS_TABLE}
        WHERE suppressed AND partner_code = 'ALL' AND (
              (decided_for = 'scorecard' AND period = ?)
           OR (decided_for = 'kpi_values' AND period_grain = 'month' AND list_contains(?, period))
           OR (decided_for = 'kpi_values' AND period_grain = 'financial_year' AND list_contains(?, period)))
        """,
        [period, months, years],
    ).fetchall():
        if decided_for == "kpi_values":
            kpi_values[tuple(key)] = Reason(reason)
        else:
            scorecard.setdefault((key[2], key[0]), {})[figure] = Reason(reason)
    scorecard = _in_figure_order(scorecard)
    _check_flags(con, schema, scorecard, f"select period, kpi_code, suppression_reason from {schema}.scorecard "
                 "where suppressed and period = ?", [period])
    return Decisions(threshold, kpi_values, scorecard)


def _check_made(con: duckdb.DuckDBPyConnection, threshold: int, schema: str) -> None:
    """Refuse decisions that are missing, made at another threshold, or over another mart."""
    catalog, _, bare = schema.rpartition(".")
    if not all(_has_table(con, catalog, bare, t) for t in (DECISIONS_TABLE, MADE_TABLE)):
        raise DecisionsNotStored(
            "The KPI mart has no stored disclosure decisions: it was built by an older version of "
            "pkpi, or its last build stopped before they were made. Run `pkpi build`, then try again."
        )
    made = con.execute(f"select threshold, mart_fingerprint from {schema}.{MADE_TABLE}").fetchall()
    if len(made) != 1:
        raise DecisionsNotStored(
            f"The KPI mart's {MADE_TABLE} table should hold one row and holds {len(made)}: "
            "run `pkpi build` to make the disclosure decisions again."
        )
    stored_threshold, fingerprint = made[0]
    if stored_threshold != threshold:
        raise DecisionsForAnotherThreshold(
            f"The KPI mart's disclosure decisions were made with threshold {stored_threshold}, but "
            f"PKPI_DISCLOSURE_THRESHOLD is {threshold}: run `pkpi build` so that the mart, the "
            "published copy and every scorecard follow the new threshold.",
            stored_threshold, threshold,
        )
    if fingerprint != mart_fingerprint(con, schema):
        raise DecisionsNotStored(
            "The KPI mart has changed since its disclosure decisions were made (a build stopped "
            "before it finished, or dbt was run by hand): run `pkpi build`, then try again."
        )


def _in_figure_order(scorecard: dict) -> dict:
    """suppression_reason names a row's figures in one order, whatever the order of storage."""
    return {k: {f: r[f] for f in SCORECARD_FIGURES if f in r} for k, r in sorted(scorecard.items())}


def _check_flags(con: duckdb.DuckDBPyConnection, schema: str, scorecard: dict, flagged_sql: str,
                 parameters: list) -> None:
    """dbt rebuilds mart.scorecard with nothing flagged: flags that disagree with the decisions
    mean a build stopped between dbt and storing them, over figures that happen to be the same."""
    flagged = {(period, kpi): reason for period, kpi, reason in con.execute(flagged_sql, parameters).fetchall()}
    if flagged != {k: reason_text(r) for k, r in scorecard.items()}:
        raise DecisionsNotStored(
            "The KPI mart's scorecard flags do not match its stored disclosure decisions (a build "
            "stopped before it finished): run `pkpi build`, then try again."
        )


def mart_fingerprint(con: duckdb.DuckDBPyConnection, schema: str = "mart") -> str:
    """A digest of exactly what the decisions are made from (the columns of
    :data:`~pkpi.disclosure.decisions.DECISION_TABLES`): it changes whenever any of those
    values do, whatever the order of the rows."""
    parts = []
    for name, columns in DECISION_TABLES.items():
        count, total = con.execute(
            f"select count(*), coalesce(sum(hash({', '.join(columns)})), 0) from {schema}.{name}"
        ).fetchall()[0]
        parts.append(f"{name}:{count}:{total}")
    return hashlib.sha256(";".join(parts).encode()).hexdigest()


def _has_table(con: duckdb.DuckDBPyConnection, catalog: str, schema: str, table: str) -> bool:
    return bool(con.execute(
        "select count(*) from duckdb_tables() where schema_name = ? and table_name = ?"
        + (" and database_name = ?" if catalog else ""),
        [schema, table, *([catalog] if catalog else [])],
    ).fetchall()[0][0])
