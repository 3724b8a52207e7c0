"""The decisions of disclosure control over the whole mart: which figures leave it hidden, and why.

The rules for one figure are :mod:`pkpi.disclosure.rules`; this module applies them to every
figure of the mart at once, because figures are differenced against each other. :func:`decide`
reads kpi_values, dim_kpi, dim_month and the scorecard rows (:data:`DECISION_TABLES`) and returns
:class:`Decisions`, changing nothing. ``pkpi build`` makes them once per build, right after dbt
(:mod:`pkpi.disclosure.stored`); the published copy, ``mart.scorecard.suppressed`` and every
scorecard file and email take them from there (docs/mart.md, disclosure control):

- cells: every figure is made of counts of categories ("cells"), linked once per KPI in
  :data:`pkpi.disclosure.rules.KPI_LINKS`: a percentage's numerator and denominator are the same
  cells as the breakdown rows they count (the under-1 numerator is two age bands, the JAR
  denominator the unexpected deaths), and a nested percentage implies a third cell, denominator
  minus numerator. The relations between cells (a breakdown adds up to its total, the partners
  to ALL, the months to their financial year, a numerator and its rest to the denominator) are
  what a reader can difference;
- primary: in a disclosive row (:func:`pkpi.disclosure.rules.is_disclosive`) a count from 1 to
  threshold-1 is hidden, and so is a ratio whose numerator, denominator or (nested) rest is;
- complementary: wherever a relation's total is published and a part that must stay unknown is
  hidden, more parts are hidden (the smallest first) until at least two are and they add up to
  the threshold or more;
- years: a financial year's figure is the last of the year-to-date figures that monthly
  scorecards publish, so once a month is hidden, a year in progress is hidden, and a complete
  year's months can only be protected by the months from the first hidden one on;
- the guarantee (_Model._audit): for every small count that must stay unknown, an integer
  feasibility audit over all the relations (scipy's HiGHS) finds its least and greatest value
  consistent with what is published, with and without reading "<5" as 1 to 4; while any is
  pinned down (least = greatest) or shown to be small by the numbers alone, the smallest
  published count that mends it is hidden too (as a last resort, "<5" becomes [c]);
- the scorecard hides its figures where the matching kpi_values row is hidden, and a year to
  date (count or percentage) whenever any month it adds up is hidden (consecutive year-to-date
  figures would otherwise give that month away); a hidden value's RAG reads grey, and its trend
  n/a, since both would hint at the number (:mod:`pkpi.disclosure.applied`).

Decided one scorecard at a time, a month hidden in one email could be worked out from the
year-to-date figures of the next: hence one set of decisions over every month and year. No
relation crosses a KPI family's financial year, though, so each such unit is decided on its own
(:func:`unit_rows_sql`), with the same result, and ``pkpi build`` decides again only the units
whose figures changed (:mod:`pkpi.disclosure.stored`).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Collection, Mapping

import duckdb

from ..periods import shift_month
from .rules import COUNT_UNITS, KPI_LINKS, Count, DisclosureControl, Reason, _number, is_disclosive, link_of

Key = tuple[str, str, str, str, str, str]  # kpi_code, period_grain, period, partner_code, dimension, dimension_value

_MAX_ROUNDS = 50

# The columns disclosure control reads from each mart table.
DECISION_TABLES = {
    "kpi_values": ("kpi_code", "period_grain", "period", "partner_code", "dimension", "dimension_value",
                   "numerator", "denominator", "value", "disclosive"),
    "dim_kpi": ("kpi_code", "unit", "disclosive"),
    "dim_month": ("month", "financial_year"),
    "scorecard": ("period", "kpi_code", "unit", "value_grain", "financial_year", "fytd_value",
                  "fytd_numerator", "fytd_denominator", "disclosive"),
}

SCORECARD_FIGURES = ("value", "previous_month_value", "same_month_last_year_value", "fytd_value")
"""The figures of a scorecard row that disclosure control may hide, in the order
``suppression_reason`` names them."""


@dataclass(frozen=True)
class Decisions:
    """What disclosure control hides, worked out over the whole mart (nothing is changed).

    ``kpi_values`` maps each hidden kpi_values row (:data:`Key`) to its reason; ``scorecard``
    maps each scorecard row (period, kpi_code) with a hidden figure to {column: reason}, in the
    order of :data:`SCORECARD_FIGURES`; ``disclosive`` lists the kpi_values rows disclosure
    control applies to (every hidden row is one of them), and ``components`` the unit each of
    them was decided in (:func:`unit_rows_sql`; empty for decisions read back from storage).
    """

    threshold: int
    kpi_values: dict[Key, Reason]
    scorecard: dict[tuple[str, str], dict[str, Reason]]
    disclosive: tuple[Key, ...] = ()
    components: Mapping[Key, str] = field(default_factory=dict)

    def kpi(self, kpi_code: str, grain: str, period: str, dimension: str = "total",
            dimension_value: str = "total") -> Reason | None:
        """Why a partnership-level (ALL) kpi_values figure is hidden; None when it is shown."""
        return self.kpi_values.get((kpi_code, grain, period, "ALL", dimension, dimension_value))

    def row(self, period: str, kpi_code: str) -> dict[str, Reason]:
        """The hidden figures of one scorecard row and why ({} when all are shown)."""
        return self.scorecard.get((period, kpi_code), {})

    @property
    def hidden_figures(self) -> int:
        """How many figures are hidden: kpi_values rows plus scorecard figures."""
        return len(self.kpi_values) + sum(len(r) for r in self.scorecard.values())


def decide(tables: Mapping[str, object], threshold: int) -> Decisions:
    """Run disclosure control over copies of ``tables`` (kpi_values, dim_kpi, dim_month and
    scorecard with at least the columns of :data:`DECISION_TABLES`, each a pandas DataFrame or
    anything DuckDB can scan) in a private in-memory database, and return what it hides.

    The audit behind the decisions takes seconds over a real mart: ``pkpi build`` runs it once
    and stores the result, deciding again only the units whose figures changed
    (:func:`pkpi.disclosure.stored.store_decisions`).
    """
    scratch = duckdb.connect()
    try:
        scratch.execute("create schema controlled")
        for name in DECISION_TABLES:
            scratch.register("incoming", tables[name])
            scratch.execute(f"create table controlled.{name} as select * from incoming")
            scratch.unregister("incoming")
        return decide_over(scratch, "controlled", threshold)
    finally:
        scratch.close()


def decide_over(con: duckdb.DuckDBPyConnection, schema: str, threshold: int,
                units: Collection[str] | None = None,
                hidden_elsewhere: Mapping[Key, Reason] | None = None) -> Decisions:
    """:func:`decide` over the tables of ``schema`` that ``con`` can read (nothing is changed).

    ``units``: decide the kpi_values rows of these units alone (:func:`unit_rows_sql`; None:
    every unit). The scorecard's figures are always decided over the whole scorecard, with the
    hidden rows of the other units given in ``hidden_elsewhere`` (the stored decisions of units
    whose figures have not changed; only the partnership totals, ALL and total, are read).
    """
    control = DisclosureControl(threshold)
    hidden, disclosive, components = _control_kpi_values(con, schema, control, units)
    everything = {**(hidden_elsewhere or {}), **hidden}
    return Decisions(threshold, hidden, _scorecard_reasons(con, schema, control, everything),
                     tuple(disclosive), components)


def reason_text(reasons: Mapping[str, Reason]) -> str:
    """suppression_reason of a scorecard row: "value: small_count; fytd_value: complement"."""
    return "; ".join(f"{column}: {reason.value}" for column, reason in reasons.items())


# --- which kpi_values rows are hidden -------------------------------------------------------------


def _control_kpi_values(con, schema: str, control: DisclosureControl, units: Collection[str] | None,
                        by_unit: bool = True) -> tuple[dict[Key, Reason], list[Key], dict[Key, str]]:
    """(hidden rows and why, the rows treated as disclosive, the unit of each) of
    ``schema.kpi_values``, for the rows of ``units`` (None: all), one unit at a time (with
    ``by_unit`` False, in one model: the same decisions, which a test checks, only slower)."""
    if units is not None and not units:
        return {}, [], {}
    months = dict(con.execute(months_sql(schema)).fetchall())
    # Whether a financial year is complete (its March is in the mart) is read over every KPI,
    # as it always was; the fingerprint of a unit includes it (pkpi.disclosure.stored).
    present = {m for (m,) in con.execute(
        f"select distinct v.period from {schema}.kpi_values as v inner join {schema}.dim_kpi as k "
        "on k.kpi_code = v.kpi_code where v.period_grain = 'month'").fetchall()} & set(months)
    # Which rows are disclosive is pkpi.disclosure's rule (the catalogue's flag, child death
    # KPIs, breakdowns by sex or ethnicity), the same one the scorecard applies; the mart's own
    # disclosive column is brought into line with it for readers of the copy.
    # In key order, so that the decisions never depend on the order DuckDB returns rows in.
    rows = con.execute(
        f"""
        select component, kpi_code, period_grain, period, partner_code, dimension, dimension_value,
               numerator, denominator, value, unit,
               coalesce(disclosive, false) or coalesce(kpi_disclosive, false) as marked
        from ({unit_rows_sql(schema)})
        {"where list_contains(?, component)" if units is not None else ""}
        order by component, kpi_code, period_grain, period, partner_code, dimension, dimension_value
        """,
        [sorted(units)] if units is not None else [],
    ).fetchall()
    hidden: dict[Key, Reason] = {}
    disclosive: list[Key] = []
    components: dict[Key, str] = {}
    model, component = None, None
    for row in rows:
        if model is None or (by_unit and row[0] != component):
            if model is not None:
                hidden.update(model.decide())
            model, component = _Model(control, months, present), row[0]
        key, (numerator, denominator, value, unit, marked) = tuple(row[1:7]), row[7:]
        is_it = is_disclosive(key[0], marked, key[4])
        if is_it:
            disclosive.append(key)
            components[key] = row[0]
        model.add_row(key, unit, numerator, denominator, value, is_it)
    if model is not None:
        hidden.update(model.decide())
    return hidden, disclosive, components


# --- units: what can be decided apart -------------------------------------------------------------
#
# Every relation a reader can difference (_Model._add_relations, _Model.category, the nested rest)
# is between the cells of one KPI family (KPIs whose counts KPI_LINKS links) in one period, or
# between a month and its financial year; the scorecard's year to date adds up months of its
# own year, and its trend figures are the published months themselves. So a KPI family in one
# financial year (a "unit") shares no relation with any other, and is decided on its own: the
# decisions over the whole mart are the union of those of its units
# (tests/test_disclosure_adversarial.py checks every relation of a real mart).


def _kpi_families() -> dict[str, str]:
    """KPI code (upper case) -> its family, named by the family's first code in sorted order."""
    parent: dict[str, str] = {}

    def find(code: str) -> str:
        while parent.setdefault(code, code) != code:
            code = parent[code]
        return code

    for code, link in KPI_LINKS.items():
        for count in (link.same_as, link.numerator, link.denominator, link.rest):
            if count is not None:
                parent[find(count.kpi_code.upper())] = find(code.upper())
    members: dict[str, list[str]] = defaultdict(list)
    for code in list(parent):
        members[find(code)].append(code)
    return {code: min(group) for group in members.values() for code in group}


KPI_FAMILIES = _kpi_families()
"""Every linked KPI's family (a KPI not listed is a family of its own)."""

def months_sql(schema: str) -> str:
    """SQL: each month of dim_month and its financial year (month, financial_year)."""
    return f"select month, max(financial_year) as financial_year from {schema}.dim_month group by month"


def unit_rows_sql(schema: str) -> str:
    """SQL: the kpi_values rows disclosure control reads (joined to dim_kpi: ``unit``,
    ``kpi_disclosive``) with ``component``, the unit each is decided in: its KPI family and
    financial year ("CDN_NOTIFICATIONS 2025-26"; a month without a financial year, or another
    grain, is a unit of its own), and ``financial_year`` (null then)."""
    families = " ".join(f"when '{code}' then '{family}'" for code, family in sorted(KPI_FAMILIES.items())
                        if code != family)
    family = f"case upper(v.kpi_code) {families} else upper(v.kpi_code) end" if families else "upper(v.kpi_code)"
    year = ("case when v.period_grain = 'financial_year' then v.period "
            "when v.period_grain = 'month' then m.financial_year end")
    columns = ", ".join(f"v.{c}" for c in DECISION_TABLES["kpi_values"])
    return f"""
        select {family} || ' ' || coalesce({year}, v.period_grain || ' ' || v.period) as component,
               {year} as financial_year, {columns}, k.unit, k.disclosive as kpi_disclosive
        from {schema}.kpi_values as v
        inner join {schema}.dim_kpi as k on k.kpi_code = v.kpi_code
        left join ({months_sql(schema)}) as m (month, financial_year)
          on v.period_grain = 'month' and m.month = v.period
    """


# --- the counts behind the published figures, and how they add up ---------------------------
#
# A cell is one count of a category: a count KPI's row, or a ratio's numerator, denominator or
# (for a nested ratio) denominator minus numerator, identified through KPI_LINKS so that the
# same count published by two rows is one cell (the JAR denominator is the death_type unexpected
# row's count). A row is published or hidden as a whole; a cell is known when any row carrying
# it is published, or when a relation (a total and the parts that add up to it) gives it away.

Cell = tuple


def _period(cell: Cell) -> str:
    return cell[4] if cell[0] == "n" else cell[5]


class _Model:
    """The cells, the rows that publish them and the relations between them, and the decisions."""

    def __init__(self, control: DisclosureControl, months: Mapping[str, str], present_months=None):
        self.control = control
        self.t = control.threshold
        self.months = dict(months)  # month -> financial year
        # The months the mart has figures for (of any KPI, not only this model's): None, this
        # model's own.
        self.present_months = None if present_months is None else set(present_months)
        self.value: dict[Cell, float] = {}
        self.cells: dict[Key, dict[str, Cell]] = {}  # row -> {role: cell} (role: count/numerator/...)
        self.published: dict[Key, tuple[Cell, ...]] = {}  # the cells a row shows when published
        self.carriers: dict[Cell, list[Key]] = defaultdict(list)
        self.disclosive: set[Key] = set()
        self.unit: dict[Key, str] = {}
        self.row_values: dict[Key, tuple] = {}
        self.sensitive: set[Cell] = set()
        self.relations: dict[tuple[Cell, frozenset], tuple[str, Cell, tuple[Cell, ...]]] = {}
        self.hidden: dict[Key, Reason] = {}
        self._known: set[Cell] | None = None  # known_cells(), kept up to date by hide_cell
        self.labelled: set[Cell] = set()
        self.safe: set[frozenset] = set()  # components the audit found safe
        self._exposure: dict[tuple, bool] = {}  # _is_exposed's answers, by what they depend on
        self._is_consistent: bool | None = None  # _consistent(), once the model is built

    # --- building ----------------------------------------------------------------------

    def _relation(self, kind: str, total: Cell, parts) -> None:
        parts = tuple(parts)
        if parts:
            self.relations.setdefault((total, frozenset(parts)), (kind, total, parts))

    def count_cell(self, kpi: str, grain: str, period: str, partner: str, dimension: str, value: str) -> Cell:
        link = KPI_LINKS.get(kpi)
        if link is not None and link.same_as is not None and dimension == "total":
            return self.category(link.same_as, grain, period, partner)
        return ("n", kpi, "", grain, period, partner, dimension, value)

    def category(self, count: Count, grain: str, period: str, partner: str) -> Cell:
        if len(count.values) == 1:
            return self.count_cell(count.kpi_code, grain, period, partner, count.dimension, count.values[0])
        cell = ("sum", count.kpi_code, count.dimension, count.values, grain, period, partner)
        self._relation("numerator/denominator vs breakdowns", cell,
                       (self.count_cell(count.kpi_code, grain, period, partner, count.dimension, v) for v in count.values))
        return cell

    def _set(self, cell: Cell, value) -> None:
        value = _number(value)
        if value is not None and cell not in self.value:
            self.value[cell] = value

    def add_row(self, key: Key, unit: str, numerator, denominator, value, disclosive: bool) -> None:
        kpi, grain, period, partner, dimension, dimension_value = key
        link = link_of(kpi, unit)
        self.unit[key] = unit
        self.row_values[key] = (numerator, denominator, value)
        if disclosive:
            self.disclosive.add(key)
        if not link.counted:
            self.cells[key] = {}
            self.published[key] = ()
            return
        own = lambda role: ("n", kpi, role, grain, period, partner, dimension, dimension_value)  # noqa: E731
        linked = dimension == "total"  # links are between totals; a breakdown's cells are its own
        if unit in COUNT_UNITS:
            cells = {"count": self.count_cell(*key)}
            self._set(cells["count"], value)
        else:
            cells = {"numerator": self.category(link.numerator, grain, period, partner)
                     if link.numerator and linked else own("numerator")}
            self._set(cells["numerator"], numerator)
            if link.denominator_counted:
                cells["denominator"] = (self.category(link.denominator, grain, period, partner)
                                        if link.denominator and linked else own("denominator"))
                self._set(cells["denominator"], denominator)
                if link.nested:
                    cells["rest"] = (self.category(link.rest, grain, period, partner)
                                     if link.rest and linked else own("rest"))
                    num, den = _number(numerator), _number(denominator)
                    if num is not None and den is not None:
                        self._set(cells["rest"], den - num)
                    self._relation("numerator/denominator vs breakdowns", cells["denominator"],
                                   (cells["numerator"], cells["rest"]))
        self.cells[key] = cells
        # A ratio's row shows its numerator and denominator; the rest is only implied.
        self.published[key] = tuple(c for role, c in cells.items() if role != "rest")
        for cell in self.published[key]:
            self.carriers[cell].append(key)
        if disclosive:
            self.sensitive.update(cells.values())

    def _add_relations(self) -> None:
        """Breakdowns add up to their total, partners to ALL, months to their financial year."""
        groups: dict[tuple[str, Cell, str], list[Cell]] = defaultdict(list)
        for key, cells in self.cells.items():
            kpi, grain, period, partner, dimension, value = key
            related = []
            if dimension != "total":
                related.append(("breakdown vs total", (kpi, grain, period, partner, "total", "total"), dimension))
            if partner != "ALL":
                related.append(("partner vs ALL", (kpi, grain, period, "ALL", dimension, value), ""))
            if grain == "month" and period in self.months:
                related.append(("year vs months", (kpi, "financial_year", self.months[period], partner, dimension, value), ""))
            for kind, total_key, by in related:
                total_cells = self.cells.get(total_key)
                if not total_cells:
                    continue
                for role, cell in cells.items():
                    if role in total_cells and total_cells[role] != cell:
                        groups[(kind, total_cells[role], by)].append(cell)
        for (kind, total, _), parts in groups.items():
            self._relation(kind, total, sorted(set(parts), key=str))

    # --- what a reader can know -------------------------------------------------------

    def carried_known(self, cell: Cell) -> bool:
        return any(k not in self.hidden for k in self.carriers.get(cell, ()))

    def known_cells(self) -> set[Cell]:
        """The cells some published row carries, as a new set (callers keep it as a snapshot).
        Worked out once, then kept up to date as rows are hidden: recomputing it over every
        cell after each hidden row was most of the decisions' time."""
        if self._known is None:
            self._known = {c for c in self.carriers if self.carried_known(c)}
        return set(self._known)

    def hideable(self, cell: Cell) -> bool:
        carriers = self.carriers.get(cell, ())
        return bool(carriers) and all(k in self.disclosive for k in carriers)

    def v(self, cell: Cell) -> float:
        return self.value.get(cell) or 0.0

    def hide_cell(self, cell: Cell, reason: Reason = Reason.COMPLEMENT) -> bool:
        changed = False
        for key in self.carriers.get(cell, ()):
            if key not in self.hidden and key in self.disclosive:
                self.hidden[key] = reason
                changed = True
                if self._known is not None:
                    self._known.difference_update(
                        c for c in self.published[key] if not self.carried_known(c))
        return changed

    # --- deciding ------------------------------------------------------------------------

    def decide(self) -> dict[Key, Reason]:
        if self.present_months is None:
            self.present_months = set(self.months) & {k[2] for k in self.cells if k[1] == "month"}
        self._add_relations()
        self._primary()
        self.protect = {c for c in self.sensitive if self.control.is_small(self.value.get(c))}
        # Each round hides at least one more row, so this ends; the bound is only a backstop.
        for _ in range(len(self.cells) + _MAX_ROUNDS):
            changed = self._years()
            changed |= self._complementary()
            if not changed:
                changed = self._audit()
            if not changed:
                break
        return dict(self.hidden)

    def _primary(self) -> None:
        for key in self.disclosive:
            cells = self.cells.get(key)
            unit = self.unit[key]
            numerator, denominator, value = self.row_values[key]
            nested = link_of(key[0], unit).nested
            figure = self.control.figure(value, unit, True, numerator, denominator, nested=nested)
            if figure.hidden:
                self.hidden[key] = figure.reason
            elif cells and any(self.control.is_small(self.value.get(c)) for c in cells.values()):
                self.hidden[key] = Reason.SMALL_COUNT if unit in COUNT_UNITS else Reason.SMALL_BASE
        # A count shown as "<t" tells the reader it is from 1 to t-1.
        self.labelled = {self.cells[k]["count"] for k, r in self.hidden.items()
                         if r is Reason.SMALL_COUNT and "count" in self.cells.get(k, {})}
        self._known = None

    def _complementary(self) -> bool:
        """Where a relation's total is known and a part that must stay unknown is not, hide more
        parts (the smallest first) until at least two are hidden and they add up to t or more."""
        changed = False
        # Published cells only: one worked out from this very relation is what is at stake.
        known = self.known_cells()
        for kind, total, parts in list(self.relations.values()):
            if total not in known:
                continue
            hidden = [p for p in parts if p not in known]
            if not any(p in self.protect for p in hidden):
                continue
            if kind == "year vs months" and self._in_progress(total):
                continue  # the year rule hides the year itself (_years)
            first = self._first_hidden_month(parts, known) if kind == "year vs months" else None
            while len(hidden) < 2 or sum(self.v(p) for p in hidden) < self.t:
                candidates = sorted(
                    (p for p in parts if p not in hidden and self.carried_known(p) and self.hideable(p)
                     and self.v(p) > 0 and (first is None or _period(p) >= first)),
                    key=lambda p: (self.v(p), str(p)),
                )
                if not candidates:
                    # The parts cannot protect it (a complete year whose last months are all
                    # hidden already): the total goes instead.
                    if self.hideable(total) and self.hide_cell(total):
                        self.protect.add(total)
                        changed = True
                        known = self.known_cells()
                    break
                self.hide_cell(candidates[0])
                self.protect.add(candidates[0])
                changed = True
                known = self.known_cells()
                hidden = [p for p in parts if p not in known]
        return changed

    def _in_progress(self, year_cell: Cell) -> bool:
        """True for a financial year whose March is not in the mart yet."""
        year = _period(year_cell)
        return not any(self.months.get(m) == year and m.endswith("-03") for m in self.present_months)

    @staticmethod
    def _first_hidden_month(parts, known) -> str | None:
        # Earlier months' years to date were published month by month before the first hidden
        # one, so only the months from it on can protect the year.
        hidden = [_period(p) for p in parts if p not in known]
        return min(hidden) if hidden else None

    def _years(self) -> bool:
        """A financial year still in progress is this month's year to date, and next month's
        would give this month away: it is hidden once any month it adds up is unknown."""
        changed = False
        known = self.known_cells()
        for kind, total, parts in list(self.relations.values()):
            if kind != "year vs months":
                continue
            if not self._in_progress(total) or total not in known or all(p in known for p in parts):
                continue
            if not any(p in self.protect for p in parts if p not in known):
                continue
            changed |= self.hide_cell(total)
            self.protect.add(total)
            known = self.known_cells()
        return changed

    # --- the guarantee: an integer feasibility audit ------------------------------------

    def _audit(self) -> bool:
        """For each small count that must stay unknown, its least and greatest value over all
        non-negative whole numbers consistent with what is published; when they are equal, or
        the published numbers alone put it within 1..t-1, hide one more figure beside it.
        Returns True when anything was hidden (the caller runs the rules again)."""
        known_cells = self.known_cells()
        relations = [(kind, total, parts) for kind, total, parts in self.relations.values()
                     if any(c not in known_cells for c in (total, *parts))]
        # Components of unknown cells joined by a relation: each is audited on its own.
        parent: dict[Cell, Cell] = {}

        def find(c):
            while parent.setdefault(c, c) != c:
                parent[c] = parent[parent[c]]
                c = parent[c]
            return c

        for _, total, parts in relations:
            unknown = [c for c in (total, *parts) if c not in known_cells]
            for c in unknown[1:]:
                parent[find(c)] = find(unknown[0])
        components: dict[Cell, list] = defaultdict(list)
        for relation in relations:
            first = next(c for c in (relation[1], *relation[2]) if c not in known_cells)
            components[find(first)].append(relation)
        targets = {c for c in self.protect if c not in known_cells and self.control.is_small(self.value.get(c))}
        changed = False
        for root, rels in components.items():
            cells = sorted({c for _, total, parts in rels for c in (total, *parts) if c not in known_cells}, key=str)
            mine = [c for c in cells if c in targets]
            # A component is the same system of equations as long as the same cells are unknown
            # in it (hiding anything adds a cell), so one found safe stays safe.
            signature = frozenset(cells)
            if not mine or signature in self.safe:
                continue
            # One more figure beside each exposed count, then the rules and the audit run again.
            mended = False
            for exposed in _exposed(cells, rels, known_cells, self.v, self.labelled, mine, self.t):
                if mended and not self._is_exposed(exposed):
                    continue  # mended by what was hidden for another count of this pass
                known_now = self.known_cells()
                if self._mend(exposed, known_now) or self._hide_beside(exposed, known_now) \
                        or self._hide_in(rels, known_now) or self._unlabel(exposed, rels):
                    mended = True
            if mended:
                changed = True
            else:
                self.safe.add(signature)
        return changed

    def _component(self, cell: Cell, known_cells):
        """The unknown cells joined to ``cell`` by relations, and those relations."""
        if not hasattr(self, "_by_cell"):
            self._by_cell: dict[Cell, list] = defaultdict(list)
            for relation in self.relations.values():
                for c in (relation[1], *relation[2]):
                    self._by_cell[c].append(relation)
        by_cell = self._by_cell
        seen, todo, rels = {cell}, [cell], {}
        while todo:
            for relation in by_cell.get(todo.pop(), ()):
                key = (relation[1], relation[2])
                if key in rels:
                    continue
                rels[key] = relation
                for c in (relation[1], *relation[2]):
                    if c not in known_cells and c not in seen:
                        seen.add(c)
                        todo.append(c)
        return sorted(seen, key=str), list(rels.values())

    def _is_exposed(self, cell: Cell) -> bool:
        known_cells = self.known_cells()
        cells, rels = self._component(cell, known_cells)
        # The answer depends only on the component's unknown cells (they fix its relations and
        # the published values in them) and on which of them are labelled "<t".
        key = (cell, frozenset(cells), frozenset(self.labelled.intersection(cells)))
        hit = self._exposure.get(key)
        if hit is None:
            hit = self._exposure[key] = any(
                True for _ in _exposed(cells, rels, known_cells, self.v, self.labelled, [cell], self.t))
        return hit

    def _exposed_hiding(self, cell: Cell, candidates) -> bool:
        """Whether ``cell`` is still exposed with all of ``candidates`` hidden (nothing changes)."""
        before, known_before = dict(self.hidden), self.known_cells()
        for candidate in candidates:
            self.hide_cell(candidate)
        try:
            return self._is_exposed(cell)
        finally:
            self.hidden, self._known = before, known_before

    def _mend(self, cell: Cell, known_cells, tries: int = 24) -> bool:
        """Hide the smallest published count whose hiding protects ``cell``, trying the counts of
        its component in order of size (a few at most); False when none does on its own."""
        _, rels = self._component(cell, known_cells)
        candidates = sorted(
            {c for _, total, parts in rels for c in (total, *parts)
             if c in known_cells and self.hideable(c) and self.v(c) > 0},
            key=lambda c: (self.v(c), str(c)),
        )
        # Hiding more only adds unknowns (every solution stays one, with the new unknowns at
        # their true values), so a cell still exposed with several candidates hidden at once is
        # exposed with each of them alone: the first candidate that protects ``cell`` on its own
        # is found with group tests over the candidates after each one that fails.
        candidates = candidates[:tries]
        if not self._consistent():
            for candidate in candidates:  # no group tests: one candidate at a time
                if not self._exposed_hiding(cell, [candidate]):
                    self.hide_cell(candidate)
                    self.protect.add(candidate)
                    return True
            return False
        i = 0
        while i < len(candidates):
            if not self._exposed_hiding(cell, candidates[i:i + 1]):
                self.hide_cell(candidates[i])
                self.protect.add(candidates[i])
                return True
            rest = candidates[i + 1:]
            if not rest or self._exposed_hiding(cell, rest):
                return False
            # The shortest prefix of ``rest`` that protects ``cell`` together (all of it does):
            # every candidate before its last one fails alone.
            low, high = 0, len(rest)  # prefix of length low exposed (or empty), of length high safe
            while high - low > 1:
                mid = (low + high) // 2
                if self._exposed_hiding(cell, rest[:mid]):
                    low = mid
                else:
                    high = mid
            i = i + 1 + high - 1
        return False

    def _consistent(self) -> bool:
        """Whether the true counts are a solution of every relation (whole, non-negative): what
        the group tests of :meth:`_mend` rely on."""
        if self._is_consistent is None:
            values = [self.v(c) for r in self.relations.values() for c in (r[1], *r[2])]
            self._is_consistent = all(v >= 0 and v == int(v) for v in values) and all(
                self.v(total) == sum(self.v(p) for p in parts) for _, total, parts in self.relations.values())
        return self._is_consistent

    def _unlabel(self, cell: Cell, relations) -> bool:
        """When nothing more can be hidden, withhold "<t" from a small count that, read as 1 to
        t-1, pins a count down (the exposed one, else the largest labelled one beside it): it is
        shown as [c] instead, which says nothing about its size."""
        candidates = [cell] if cell in self.labelled else sorted(
            {c for _, total, parts in relations for c in (total, *parts) if c in self.labelled},
            key=lambda c: (-self.v(c), str(c)),
        )
        for candidate in candidates:
            self.labelled.discard(candidate)
            for key in self.carriers.get(candidate, ()):
                if self.hidden.get(key) is Reason.SMALL_COUNT:
                    self.hidden[key] = Reason.COMPLEMENT
            return True
        return False

    def _hide_in(self, relations, known_cells) -> bool:
        """Hide the smallest published count of any relation of a component (a last resort when
        nothing next to the exposed count can be hidden)."""
        candidates = sorted(
            {c for _, total, parts in relations for c in (total, *parts)
             if c in known_cells and self.hideable(c) and self.v(c) > 0},
            key=lambda c: (self.v(c), str(c)),
        )
        if not candidates:
            return False
        self.hide_cell(candidates[0])
        self.protect.add(candidates[0])
        return True

    def _hide_beside(self, cell: Cell, known_cells) -> bool:
        """Hide the smallest published count in a relation with ``cell`` (fewest unknowns first)."""
        beside = sorted(
            (r for r in self.relations.values() if cell in (r[1], *r[2])),
            key=lambda r: sum(1 for c in (r[1], *r[2]) if c not in known_cells),
        )
        for kind, total, parts in beside:
            first = self._first_hidden_month(parts, known_cells) if kind == "year vs months" else None
            candidates = sorted(
                (c for c in (*parts, total) if c in known_cells and self.hideable(c) and self.v(c) > 0
                 and (first is None or c is total or _period(c) >= first)),
                key=lambda c: (self.v(c), str(c)),
            )
            if candidates:
                self.hide_cell(candidates[0])
                self.protect.add(candidates[0])
                return True
        return False


def _exposed(cells, relations, known_cells, value, labelled, targets, threshold):
    """Yield each of ``targets`` an attacker could pin down (see _Model._audit), lazily.

    A target is safe when some whole-number solution of the published relations gives it
    another value than its true one (with the ``<t`` labels as bounds), and some solution (with
    the published numbers alone) gives it 0 or t or more. Solutions are looked for first for all
    targets at once (pushing them all down, then all up), then one target at a time.
    """
    import numpy as np
    from scipy.optimize import Bounds, LinearConstraint, linprog, milp
    from scipy.sparse import csr_array, hstack

    index = {c: i for i, c in enumerate(cells)}
    rows, columns, coefficients, rhs = [], [], [], []
    for r, (_, total, parts) in enumerate(relations):
        constant = 0.0
        for c, sign in ((total, 1.0), *((p, -1.0) for p in parts)):
            if c in index:
                rows.append(r)
                columns.append(index[c])
                coefficients.append(sign)
            else:
                constant += sign * value(c)
        rhs.append(-constant)
    a = csr_array((coefficients, (rows, columns)), shape=(len(relations), len(cells)))
    rhs = np.array(rhs)
    n = len(cells)
    integrality = np.ones(n)
    labels = (np.array([1.0 if c in labelled else 0.0 for c in cells]),
              np.array([threshold - 1.0 if c in labelled else np.inf for c in cells]))
    plain = (np.zeros(n), np.full(n, np.inf))
    true = np.array([value(c) for c in cells])

    relaxations = _Relaxations(a, rhs, {"labels": labels, "plain": plain})
    both_ways, shift = hstack([a, -a]), rhs - a @ true  # feasible()'s nearest solution: x = true + up - down

    def relaxed_solve(objective, which: str):
        """The relaxation's optimum: (solution, whether it is whole), _UNBOUNDED, or None."""
        relaxed = relaxations.solve(objective, which)
        if relaxed is _UNBOUNDED or relaxed is None:
            return relaxed
        return relaxed, bool(np.all(np.abs(relaxed - np.round(relaxed)) < 1e-7))

    def feasible(bounds, i: int, lower: float, upper: float):
        """A whole-number solution with ``lower <= x[i] <= upper`` (within ``bounds``): the
        solution, False when there is none, or None when the solver gave no answer."""
        lo, hi = bounds[0].copy(), bounds[1].copy()
        lo[i], hi[i] = max(lo[i], lower), min(hi[i], upper)
        if lo[i] > hi[i]:
            return False
        # First the relaxed solution nearest the true counts (x = true + up - down, least
        # up + down): over these relations it is nearly always whole, a solution found in a few
        # milliseconds where the integer solver takes a second. Only a whole one that satisfies
        # every relation and bound exactly is taken; otherwise the integer solver decides.
        up_lo, up_hi = np.maximum(lo - true, 0.0), np.maximum(hi - true, 0.0)
        down_lo, down_hi = np.maximum(true - hi, 0.0), np.maximum(true - lo, 0.0)
        near = linprog(np.ones(2 * n), A_eq=both_ways, b_eq=shift,
                       bounds=np.column_stack([np.concatenate([up_lo, down_lo]),
                                               np.concatenate([up_hi, down_hi])]), method="highs")
        if near.status == 0:
            x = np.round(true + near.x[:n] - near.x[n:])
            if np.all(np.abs(true + near.x[:n] - near.x[n:] - x) < 1e-7) and np.all(a @ x == rhs) \
                    and np.all(x >= lo) and np.all(x <= hi):
                return x
        result = milp(np.zeros(n), constraints=LinearConstraint(a, rhs, rhs), bounds=Bounds(lo, hi),
                      integrality=integrality)
        if result.status == 0:
            return np.round(result.x)
        return False if result.status == 2 else None

    moved: set[int] = set()  # targets some labelled solution gives another value
    escaped: set[int] = set()  # targets some plain solution gives 0 or t or more
    wanted = [index[t] for t in targets]
    weights = np.zeros(n)
    weights[wanted] = 1.0

    def note(solution, into_moved: bool, into_escaped: bool) -> None:
        if solution is None:
            return
        for i in wanted:
            if into_moved and solution[i] != true[i]:
                moved.add(i)
            if into_escaped and (solution[i] <= 0 or solution[i] >= threshold):
                escaped.add(i)

    # A solution within the labels is a solution of the plain relations too, not the reverse.
    # Pushing all targets at once only finds witnesses (whole relaxed optima), for speed.
    for sign in ((1.0, -1.0) if len(wanted) > 1 else ()):
        for which in ("labels", "plain"):
            got = relaxed_solve(sign * weights, which)
            if isinstance(got, tuple) and got[1]:
                note(np.round(got[0]), which == "labels", True)

    def probe(i: int, sign: float, which: str, bounds, beyond: float):
        """Is there a whole-number solution (within ``bounds``) with sign * x[i] < sign * beyond
        (sign 1: below it, -1: above it)? The relaxation bounds x[i]; only when it leaves room
        past ``beyond`` is a whole-number solution looked for there."""
        objective = np.zeros(n)
        objective[i] = sign
        got = relaxed_solve(objective, which)
        if got is _UNBOUNDED:
            return True
        if got is None:  # no relaxed optimum: the integer solver decides, as before
            result = milp(objective, constraints=LinearConstraint(a, rhs, rhs), bounds=Bounds(*bounds),
                          integrality=integrality)
            if result.status != 0:
                return None
            got = (result.x, True)
        solution, whole = got
        if sign > 0 and np.ceil(solution[i] - 1e-6) >= beyond or sign < 0 and np.floor(solution[i] + 1e-6) <= beyond:
            return False  # the whole-number optimum is no better than the relaxed one
        if whole:
            note(np.round(solution), which == "labels", True)
            return True
        found = feasible(bounds, i, -np.inf, beyond - 1) if sign > 0 else feasible(bounds, i, beyond + 1, np.inf)
        if found is None or found is False:
            return found
        note(found, which == "labels", True)
        return True

    for target in targets:
        i = index[target]
        for sign in (1.0, -1.0):
            if i not in moved:
                answer = probe(i, sign, "labels", labels, true[i])
                if answer is None or answer:
                    moved.add(i)  # (None: no optimum, as before: unbounded or no answer)
            if i not in escaped:
                answer = probe(i, sign, "plain", plain, 1.0 if sign > 0 else threshold - 1.0)
                if answer is None or answer:
                    escaped.add(i)
        if i not in moved or i not in escaped:
            yield target



_UNBOUNDED = object()
_COLD_FROM = 1000
"""Components of this many cells or more solve each relaxation from a fresh start (see _Relaxations.solve)."""


class _Relaxations:
    """The linear relaxations of one system of relations, solved for objective after objective.

    Only the objective changes between the solves of :func:`_exposed`, so each set of bounds
    (the labels, or none) is one HiGHS model, built once and solved again from its last basis
    (from a fresh start from :data:`_COLD_FROM` cells, where HiGHS is faster that way): several
    times faster than :func:`scipy.optimize.linprog`, which builds the model every time. The
    optimum is the same either way, and only optima are used (a fractional one goes on to the
    nearest-solution check and then the integer solver), so the decisions are too. Without scipy's HiGHS bindings (``scipy.optimize._highspy``, an
    internal module: a scipy upgrade may move it), ``linprog`` is used.

    :meth:`solve` returns the solution, :data:`_UNBOUNDED`, or None (no optimum found).
    """

    def __init__(self, a, rhs, bounds: dict):
        self.a, self.rhs, self.bounds = a, rhs, bounds
        self.models: dict = {}
        try:
            from scipy.optimize._highspy import _core as highs

            highs.HighsLp, highs._Highs, highs.HighsModelStatus.kOptimal  # noqa: B018 (present?)
            self.highs = highs
        except (ImportError, AttributeError):
            self.highs = None

    def solve(self, objective, which: str):
        import numpy as np

        if self.highs is None:
            from scipy.optimize import linprog

            result = linprog(objective, A_eq=self.a, b_eq=self.rhs, bounds=np.column_stack(self.bounds[which]),
                             method="highs")
            return _UNBOUNDED if result.status == 3 else result.x if result.status == 0 else None
        model = self.models.get(which) or self._model(which)
        status = self.highs.HighsModelStatus
        model.changeColsCost(len(objective), np.arange(len(objective), dtype=np.int32),
                             np.asarray(objective, dtype=float))
        if len(objective) >= _COLD_FROM:
            # From the last basis, a new objective takes HiGHS more iterations than presolve
            # and a fresh start do once components have a thousand cells or so (~25 ms
            # against ~65 ms at 1,600 cells); the optimum is the same.
            model.clearSolver()
        model.run()
        outcome = model.getModelStatus()
        if outcome in (status.kUnbounded, status.kUnboundedOrInfeasible):  # the true counts are feasible
            return _UNBOUNDED
        return np.array(model.getSolution().col_value) if outcome == status.kOptimal else None

    def _model(self, which: str):
        import numpy as np

        highs, (lower, upper) = self.highs, self.bounds[which]
        columns = self.a.tocsc()
        lp = highs.HighsLp()
        lp.num_col_, lp.num_row_ = self.a.shape[1], self.a.shape[0]
        lp.col_cost_ = np.zeros(self.a.shape[1])
        lp.col_lower_ = np.asarray(lower, dtype=float)
        lp.col_upper_ = np.where(np.isinf(upper), highs.kHighsInf, upper).astype(float)
        lp.row_lower_ = lp.row_upper_ = np.asarray(self.rhs, dtype=float)
        matrix = lp.a_matrix_
        matrix.format_ = highs.MatrixFormat.kColwise
        matrix.num_col_, matrix.num_row_ = self.a.shape[1], self.a.shape[0]
        matrix.start_ = columns.indptr.astype(np.int32)
        matrix.index_ = columns.indices.astype(np.int32)
        matrix.value_ = columns.data.astype(float)
        model = highs._Highs()
        model.setOptionValue("output_flag", False)
        model.passModel(lp)
        self.models[which] = model
        return model


# --- which scorecard figures are hidden ----------------------------------------------------------


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
    months = dict(con.execute(months_sql(schema)).fetchall())
    months_of_year: dict[str, list[str]] = defaultdict(list)
    for month in sorted(months):
        months_of_year[months[month]].append(month)
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
        # March's year to date is the whole year, shown when the year's figure is (the year
        # rule of _Model._years and the audit have made sure the months protect it).
        fytd = control.figure(fytd_value, unit, True, fytd_num, fytd_den, nested=link_of(kpi, unit).nested)
        whole_year_shown = period.endswith("-03") and (kpi, fy) in shown_years
        if fytd.hidden:
            reasons["fytd_value"] = fytd.reason
        elif value_grain == "month" and not whole_year_shown and any(
            row_reason(m) is not None for m in months_of_year.get(fy, ()) if m <= period
        ):
            reasons["fytd_value"] = Reason.COMPLEMENT
        if reasons:
            out[(period, kpi)] = reasons
    return out

