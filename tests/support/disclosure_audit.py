"""An attacker's audit of everything that leaves the warehouse, for small numbers.

It knows nothing of the suppression code. It knows what an analyst or a lead can know: how each
child death figure is counted (the KPI definitions in the catalogue), and every figure the
platform publishes: the published DuckDB copy and its Parquet files (kpi_values, scorecard),
and for every month the scorecard's CSV, its spreadsheet (13-month series and the year to date)
and the HTML (the chart descriptions carry the split of deaths by type for each year).

The unknowns are the counts of notifications in each partner and month by each breakdown value
(the atoms); every published figure is a sum of atoms (ALL is the sum of the partners, a year
or a year to date the sum of its months, a percentage's numerator and denominator are counts
of categories: under 1 = the two youngest age bands, the JAR denominator = the unexpected
deaths). A breakdown's values add up to the partner-month's total, and the unexpected deaths
split into those with a JAR within 72 hours and the rest.

Two attacks:

- :meth:`Audit.routes`: the named differencing routes, one linear relation at a time, repeated
  until nothing new is learnt (breakdown vs total, numerator/denominator vs breakdowns,
  percentage vs counts, partner vs ALL, year vs months, month vs year to date, consecutive
  scorecards);
- :meth:`Audit.feasibility`: for each small count (1 to threshold-1, published hidden or never
  published, such as denominator minus numerator), its minimum and maximum over all non-negative
  integer atoms consistent with every published figure (scipy milp). It is exposed when
  min == max, or when the published numbers alone put it within 1..threshold-1; with the ``<5``
  labels added as what they say (1..threshold-1), it is exposed when min == max.
"""

from __future__ import annotations

import csv
import html as html_lib
import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import openpyxl
from scipy.optimize import Bounds, LinearConstraint, milp

Atom = tuple[str, str, str, str]  # partner, month, dimension, value
Expr = tuple[tuple[Atom, int], ...]  # sorted (atom, coefficient) pairs

CDN = "CDN_NOTIFICATIONS"
UNDER_1 = "CDN_UNDER_1_PCT"
JAR = "CDN_UNEXPECTED_JAR_PCT"
UNDER_1_BANDS = ("under_28_days", "28_to_364_days")
BREAKDOWNS = ("death_type", "age_band", "sex", "ethnicity")
JAR_SPLIT = "jar_split"  # the attacker's own sub-breakdown of the unexpected deaths: yes / other
RATIOS = (UNDER_1, JAR)
PERCENT_ROUNDING = {"db": 1e-9, "csv": 1e-6, "xlsx": 1e-9, "html": 0.05}


def _expr(terms: dict[Atom, int]) -> Expr:
    return tuple(sorted((a, c) for a, c in terms.items() if c))


def _add(*exprs: Expr, signs: tuple[int, ...] | None = None) -> Expr:
    out: dict[Atom, int] = defaultdict(int)
    for i, e in enumerate(exprs):
        s = signs[i] if signs else 1
        for a, c in e:
            out[a] += s * c
    return _expr(out)


@dataclass
class Fact:
    """Something a reader learns: ``lo <= sum(coef * quantity) <= hi`` over quantities (Exprs),
    or for a percentage, ``100 * num / den`` within ``value`` +- ``tol``."""

    source: str
    route: str
    terms: tuple[tuple[Expr, float], ...]
    lo: float
    hi: float


@dataclass
class Finding:
    route: str
    what: str
    true_value: int
    detail: str

    def __str__(self) -> str:
        return f"[{self.route}] {self.what} (true value {self.true_value}): {self.detail}"


@dataclass
class Audit:
    threshold: int
    partners: list[str]
    months_of_year: dict[str, list[str]]  # financial year -> its months in the data, in order
    partner_months: set[tuple[str, str]]
    values: dict[str, list[str]]  # breakdown -> its values
    truth: dict[Atom, int]
    facts: list[Fact] = field(default_factory=list)
    labels: list[tuple[Expr, str]] = field(default_factory=list)  # "<t": 1..t-1
    read: set[str] = field(default_factory=set)  # the kinds of output read (db, csv, html, ...)
    hidden: dict[Expr, str] = field(default_factory=dict)  # withheld quantities -> where
    named: dict[Expr, str] = field(default_factory=dict)

    # --- the attacker's model of the mart ------------------------------------------------

    @property
    def months(self) -> list[str]:
        return sorted({m for p, m in self.partner_months})

    def year_of(self, month: str) -> str | None:
        return next((fy for fy, ms in self.months_of_year.items() if month in ms), None)

    def cell(self, grain: str, period: str, partner: str, dimension: str, value: str) -> Expr:
        """A count of notifications: one breakdown value (or the total) for a partner or ALL, a
        month or a financial year."""
        months = [period] if grain == "month" else self.months_of_year.get(period, [])
        partners = self.partners if partner == "ALL" else [partner]
        terms = {(p, m, dimension, value): 1 for p in partners for m in months if (p, m) in self.partner_months}
        expr = _expr(terms)
        self.named.setdefault(expr, f"{CDN} {grain} {period} {partner} {dimension}={value}")
        return expr

    def ytd(self, month: str, dimension: str = "total", value: str = "total", partner: str = "ALL") -> Expr:
        fy = self.year_of(month)
        months = [m for m in self.months_of_year.get(fy, []) if m <= month]
        expr = _add(*(self.cell("month", m, partner, dimension, value) for m in months)) if months else ()
        self.named.setdefault(expr, f"{CDN} year to date {month} {partner} {dimension}={value}")
        return expr

    def ratio(self, kpi: str, cell) -> tuple[Expr, Expr]:
        """(numerator, denominator) of a percentage, given ``cell(dimension, value)``."""
        if kpi == UNDER_1:
            return _add(*(cell("age_band", b) for b in UNDER_1_BANDS)), cell("total", "total")
        if kpi == JAR:
            return cell(JAR_SPLIT, "yes"), cell("death_type", "unexpected")
        raise KeyError(kpi)

    def figure(self, kpi: str, grain: str, period: str, partner: str, dimension: str, value: str):
        """A kpi_values row as (count,) or (numerator, denominator)."""
        if kpi == CDN:
            return (self.cell(grain, period, partner, dimension, value),)
        return self.ratio(kpi, lambda d, v: self.cell(grain, period, partner, d, v))

    def true(self, expr: Expr) -> int:
        return sum(c * self.truth.get(a, 0) for a, c in expr)

    def describe(self, expr: Expr) -> str:
        return self.named.get(expr) or " + ".join(f"{c}*{'/'.join(a)}" for a, c in expr)

    # --- what a reader learns ----------------------------------------------------------

    def learn_count(self, expr: Expr, value: float, source: str, route: str) -> None:
        self.read.add(source.split(":")[0])
        self.facts.append(Fact(source, route, ((expr, 1.0),), value, value))

    def learn_percent(self, num: Expr, den: Expr, value: float, tol: float, source: str, route: str) -> None:
        # 100*num - (value+tol)*den <= 0 <= 100*num - (value-tol)*den
        self.facts.append(Fact(source, route, ((num, 100.0), (den, -(value + tol))), -math.inf, 0.0))
        self.facts.append(Fact(source, route, ((num, 100.0), (den, -(value - tol))), 0.0, math.inf))
        self.facts.append(Fact(source, route, ((num, 100.0), (den, -value)), -tol * 1000, tol * 1000))

    def learn_text(self, quantity, text: str, source: str, route: str, unit: str) -> None:
        """A published figure as text: a number, ``<t``, ``[c]``, or blank (no value)."""
        text = (text or "").strip()
        name = f"{source}"
        self.read.add(source.split(":")[0])
        if text in ("", "–", "None"):
            if unit == "percent":
                num, den = quantity
                if num or den:  # no value and not hidden: the denominator is 0
                    self.learn_count(den, 0.0, source, route)
            return
        if text.startswith("<") or text == "[c]":
            for q in quantity:
                self.hidden.setdefault(q, name)
            if text.startswith("<") and unit == "count":
                self.labels.append((quantity[0], name))
            return
        number = float(text.rstrip("%").replace(",", "").replace("£", ""))
        if unit == "count":
            self.learn_count(quantity[0], number, source, route)
        else:
            tol = PERCENT_ROUNDING["html"] if text.endswith("%") else PERCENT_ROUNDING[source.split(":")[0]]
            self.learn_percent(quantity[0], quantity[1], number, tol, source, route)

    # --- attack 1: named differencing routes ---------------------------------------------

    def relations(self) -> list[tuple[str, tuple[tuple[Expr, int], ...]]]:
        """The linear relations a reader can write down, each named by its route."""
        out = []
        periods = [("month", m) for m in self.months] + [("financial_year", fy) for fy in self.months_of_year]
        scopes = self.partners + ["ALL"]
        for grain, period in periods:
            for partner in scopes:
                total = self.cell(grain, period, partner, "total", "total")
                for dim in BREAKDOWNS:
                    parts = [self.cell(grain, period, partner, dim, v) for v in self.values[dim]]
                    out.append(("breakdown vs total", ((total, 1), *((p, -1) for p in parts))))
                unexpected = self.cell(grain, period, partner, "death_type", "unexpected")
                yes, other = (self.cell(grain, period, partner, JAR_SPLIT, v) for v in ("yes", "other"))
                out.append(("numerator/denominator vs breakdowns", ((unexpected, 1), (yes, -1), (other, -1))))
                under = _add(*(self.cell(grain, period, partner, "age_band", b) for b in UNDER_1_BANDS))
                out.append(("numerator/denominator vs breakdowns",
                            ((under, 1), *((self.cell(grain, period, partner, "age_band", b), -1) for b in UNDER_1_BANDS))))
                out.append(("numerator/denominator vs breakdowns", ((total, 1), (under, -1),
                            (_add(total, under, signs=(1, -1)), -1))))
            for dim, value in [("total", "total"), *((d, v) for d in (*BREAKDOWNS, JAR_SPLIT) for v in self.values[d])]:
                whole = self.cell(grain, period, "ALL", dim, value)
                out.append(("partner vs ALL", ((whole, 1), *((self.cell(grain, period, p, dim, value), -1) for p in self.partners))))
        for fy, months in self.months_of_year.items():
            for partner in scopes:
                for dim, value in [("total", "total"), *((d, v) for d in (*BREAKDOWNS, JAR_SPLIT) for v in self.values[d])]:
                    year = self.cell("financial_year", fy, partner, dim, value)
                    out.append(("year vs months", ((year, 1), *((self.cell("month", m, partner, dim, value), -1) for m in months))))
                    for i, m in enumerate(months):
                        here = self.ytd(m, dim, value, partner)
                        before = self.ytd(months[i - 1], dim, value, partner) if i else ()
                        month = self.cell("month", m, partner, dim, value)
                        out.append(("month vs year to date", ((here, 1), (before, -1), (month, -1))))
        return out

    def known_values(self) -> dict[Expr, tuple[float, str, str]]:
        known = {}
        for f in self.facts:
            if len(f.terms) == 1 and f.lo == f.hi:
                (q, c), = f.terms
                known.setdefault(q, (f.lo / c, f.source, f.route))
        return known

    def routes(self) -> list[Finding]:
        """Differencing, one relation at a time, until nothing new is learnt."""
        known = {q: v for q, (v, _, _) in self.known_values().items()}
        how: dict[Expr, str] = {q: r for q, (_, _, r) in self.known_values().items()}
        known[()] = 0.0
        findings: list[Finding] = []
        # Percentages: a shown percentage with a known denominator (or numerator) gives the other.
        ratio_facts = [f for f in self.facts if len(f.terms) == 2 and f.lo == -f.hi]
        relations = self.relations()
        changed = True
        while changed:
            changed = False
            for route, terms in relations:
                unknown = [(q, c) for q, c in terms if q not in known]
                if len(unknown) == 1:
                    (q, c), = unknown
                    value = -sum(cc * known[qq] for qq, cc in terms if qq in known) / c
                    known[q], how[q] = value, route
                    changed = True
            for f in ratio_facts:
                (num, a), (den, b) = f.terms  # a*num + b*den ~ 0
                if num in known and den not in known and b:
                    known[den], how[den] = round(-a * known[num] / b), "percentage vs counts"
                    changed = True
                elif den in known and num not in known:
                    known[num], how[num] = round(-b * known[den] / a), "percentage vs counts"
                    changed = True
        for q in self.sensitive():
            x = self.true(q)
            if q in known and round(known[q]) == x:
                findings.append(Finding(how.get(q, "published"), self.describe(q), x,
                                        f"worked out exactly as {known[q]:g}"))
        return findings

    # --- attack 2: integer feasibility ---------------------------------------------------

    def sensitive(self) -> list[Expr]:
        """Every count of a category that is small (1..threshold-1): the figures published
        hidden, and the categories a percentage implies (its numerator, denominator and their
        difference) whether or not published."""
        quantities = set(self.hidden)
        for grain, period in [("month", m) for m in self.months] + [("financial_year", fy) for fy in self.months_of_year]:
            for partner in self.partners + ["ALL"]:
                for dim in BREAKDOWNS:
                    quantities |= {self.cell(grain, period, partner, dim, v) for v in self.values[dim]}
                quantities.add(self.cell(grain, period, partner, "total", "total"))
                for kpi in RATIOS:
                    num, den = self.figure(kpi, grain, period, partner, "total", "total")
                    quantities |= {num, den, _add(den, num, signs=(1, -1))}
        for m in self.months:
            for kpi in RATIOS:
                num, den = self.ratio(kpi, lambda d, v: self.ytd(m, d, v))
                quantities |= {num, den, _add(den, num, signs=(1, -1))}
        return sorted((q for q in quantities if q and 0 < self.true(q) < self.threshold), key=self.describe)

    def _system(self, with_labels: bool):
        atoms = sorted({a for p, m in self.partner_months
                        for a in [(p, m, "total", "total"), *((p, m, d, v) for d in (*BREAKDOWNS, JAR_SPLIT) for v in self.values[d])]})
        index = {a: i for i, a in enumerate(atoms)}
        rows, lo, hi = [], [], []

        def add_row(terms: dict[int, float], low: float, high: float) -> None:
            row = np.zeros(len(atoms))
            for i, c in terms.items():
                row[i] += c
            rows.append(row)
            lo.append(low)
            hi.append(high)

        # What every reader knows: each breakdown adds up to the total, the JAR split to the
        # unexpected deaths.
        for p, m in self.partner_months:
            for dim in BREAKDOWNS:
                terms = {index[(p, m, "total", "total")]: 1.0}
                for v in self.values[dim]:
                    terms[index[(p, m, dim, v)]] = terms.get(index[(p, m, dim, v)], 0) - 1.0
                add_row(terms, 0, 0)
            add_row({index[(p, m, "death_type", "unexpected")]: 1.0, index[(p, m, JAR_SPLIT, "yes")]: -1.0,
                     index[(p, m, JAR_SPLIT, "other")]: -1.0}, 0, 0)
        for f in self.facts:
            terms: dict[int, float] = defaultdict(float)
            for q, c in f.terms:
                for a, k in q:
                    terms[index[a]] += c * k
            add_row(terms, f.lo, f.hi)
        if with_labels:
            for q, _ in self.labels:
                add_row({index[a]: float(k) for a, k in q}, 1, self.threshold - 1)
        return atoms, index, LinearConstraint(np.array(rows), lo, hi)

    def feasibility(self, with_labels: bool = False) -> list[Finding]:
        atoms, index, constraint = self._system(with_labels)
        n = len(atoms)
        bounds = Bounds(np.zeros(n), np.full(n, np.inf))
        integrality = np.ones(n)
        truth = np.array([self.truth.get(a, 0) for a in atoms], dtype=float)
        # The true data must satisfy everything the reader learnt, or the model is wrong.
        A = constraint.A
        assert np.all(A @ truth >= np.array(constraint.lb) - 1e-6) and np.all(A @ truth <= np.array(constraint.ub) + 1e-6), \
            "the attacker's model does not fit the true data: a published figure was misread"
        findings = []
        route = "integer feasibility" + (" with <5 labels" if with_labels else "")
        for q in self.sensitive():
            c = np.zeros(n)
            for a, k in q:
                c[index[a]] = k
            ends = []
            for sign in (1, -1):
                res = milp(sign * c, constraints=constraint, bounds=bounds, integrality=integrality)
                if res.status == 0:
                    ends.append(round(sign * res.fun))
                else:  # the true counts are a solution, so the problem is unbounded
                    assert "unbounded" in res.message.lower(), res.message
                    ends.append(sign * -math.inf)
            low, high = ends[0], ends[1]
            x = self.true(q)
            if low == high:
                findings.append(Finding(route, self.describe(q), x, f"min = max = {low}"))
            elif not with_labels and 1 <= low and high <= self.threshold - 1:
                findings.append(Finding(route, self.describe(q), x, f"between {low} and {high}: shown to be small"))
        return findings


# --- reading every output ---------------------------------------------------------------


def _published_tables(published_dir: Path) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    con = duckdb.connect(str(published_dir / "kpi_mart.duckdb"), read_only=True)
    try:
        for table in ("kpi_values", "scorecard", "dim_month"):
            cur = con.execute(f"select * from {table}")
            names = [d[0] for d in cur.description]
            out[f"db:{table}"] = [dict(zip(names, r)) for r in cur.fetchall()]
    finally:
        con.close()
    con = duckdb.connect()
    try:
        for table in ("kpi_values", "scorecard"):
            cur = con.execute(f"select * from read_parquet('{published_dir / 'parquet' / (table + '.parquet')}')")
            names = [d[0] for d in cur.description]
            out[f"parquet:{table}"] = [dict(zip(names, r)) for r in cur.fetchall()]
    finally:
        con.close()
    return out


def _is_null(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def build_audit(warehouse: Path, published_dir: Path, exports: dict[str, Path], threshold: int) -> Audit:
    """Read every output into an :class:`Audit`; the warehouse is read only for the true counts
    (to judge what the attacker recovers), never for what the attacker knows."""
    tables = _published_tables(published_dir)
    kv = [r for r in tables["db:kpi_values"] if r["kpi_code"].startswith("CDN_")]
    months_of_year: dict[str, list[str]] = defaultdict(list)
    partner_months = {(r["partner_code"], r["period"]) for r in kv
                      if r["period_grain"] == "month" and r["partner_code"] != "ALL"}
    data_months = {m for _, m in partner_months}
    for r in sorted(tables["db:dim_month"], key=lambda r: r["month"]):
        if r["month"] in data_months:
            months_of_year[r["financial_year"]].append(r["month"])
    values: dict[str, list[str]] = defaultdict(list)
    for r in kv:
        if r["kpi_code"] == CDN and r["dimension"] != "total" and r["dimension_value"] not in values[r["dimension"]]:
            values[r["dimension"]].append(r["dimension_value"])
    values[JAR_SPLIT] = ["yes", "other"]
    truth: dict[Atom, int] = defaultdict(int)
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        for p, m, age, sex, eth, dt, jar in con.execute(
            "select partner_code, month, age_band, sex, ethnicity, death_type, jar_within_72h "
            "from mart.fct_child_death_notifications"
        ).fetchall():
            truth[(p, m, "total", "total")] += 1
            for dim, v in (("age_band", age), ("sex", sex), ("ethnicity", eth), ("death_type", dt)):
                truth[(p, m, dim, v)] += 1
            if dt == "unexpected":
                truth[(p, m, JAR_SPLIT, "yes" if jar == "yes" else "other")] += 1
    finally:
        con.close()
    audit = Audit(threshold, sorted({p for p, _ in partner_months}), dict(months_of_year), partner_months,
                  dict(values), dict(truth))

    # kpi_values, from the DuckDB copy and the Parquet files.
    for source in ("db:kpi_values", "parquet:kpi_values"):
        for r in tables[source]:
            if not r["kpi_code"].startswith("CDN_"):
                continue
            key = (r["kpi_code"], r["period_grain"], r["period"], r["partner_code"], r["dimension"], r["dimension_value"])
            quantity = audit.figure(*key)
            where = f"{source} {' '.join(key)}"
            if r["suppressed"]:
                for q in quantity:
                    audit.hidden.setdefault(q, where)
                if r["suppression_reason"] == "small_count" and r["kpi_code"] == CDN:
                    audit.labels.append((quantity[0], where))
                continue
            if r["kpi_code"] == CDN:
                audit.learn_count(quantity[0], r["value"], source, "published")
            else:
                num, den = quantity
                for q, v in ((num, r["numerator"]), (den, r["denominator"])):
                    if not _is_null(v):
                        audit.learn_count(q, v, source, "published")
                if not _is_null(r["value"]):
                    audit.learn_percent(num, den, r["value"], PERCENT_ROUNDING["db"], source, "published")

    # The published scorecard table, every month.
    for source in ("db:scorecard", "parquet:scorecard"):
        for r in tables[source]:
            if r["kpi_code"] not in (CDN, JAR):
                continue
            _learn_scorecard_row(audit, r, source, {c: r[c] for c in
                                 ("value", "fytd_value", "previous_month_value", "same_month_last_year_value")},
                                 counts={k: r.get(k) for k in ("numerator", "denominator", "fytd_numerator", "fytd_denominator")})

    for month, folder in exports.items():
        # scorecard.csv
        for r in csv.DictReader((folder / "scorecard.csv").read_text(encoding="utf-8").splitlines()):
            if r["kpi_code"] in (CDN, JAR):
                _learn_scorecard_row(audit, r, f"csv:{month}", {c: r[c] for c in
                                     ("value", "fytd_value", "previous_month_value", "same_month_last_year_value")}, text=True)
        # scorecard.xlsx: every theme sheet's series and year to date.
        wb = openpyxl.load_workbook(folder / "scorecard.xlsx")
        sheet = wb["Child deaths"]
        # A withheld figure is an empty cell whose Status column says why: read it as the
        # scorecard's other outputs print it ("<5" or "[c]"), so the labels count as learned.
        for kpi, _, unit, period, value, status, _ in sheet.iter_rows(min_row=2, values_only=True):
            if kpi not in (CDN, JAR):
                continue
            if value is None:
                status = status or ""
                if not status.startswith("withheld"):
                    continue
                text = "<5" if "fewer than" in status else "[c]"
            else:
                text = value if isinstance(value, str) else repr(float(value) * (100 if unit == "percent" else 1))
            if " to " in str(period):
                _, _, upto = period.partition(" to ")
                quantity = _ytd_quantity(audit, kpi, upto)
            else:
                if period not in data_months:
                    continue
                quantity = audit.figure(kpi, "month", period, "ALL", "total", "total")
            audit.learn_text(quantity, text, f"xlsx:{month}", "consecutive scorecards", unit)
        # scorecard.html: the chart descriptions (the split of deaths by type for each year).
        page = html_lib.unescape((folder / "scorecard.html").read_text(encoding="utf-8"))
        for alt in re.findall(r'alt="(Child death notifications by financial year[^"]*)"', page):
            for part in alt.split(": ", 1)[1].rstrip(".").split("; "):
                m = re.match(r"(\d{4}-\d{2})(?: \(to (\w{3} \d{2})\))?: (.*)", part)
                if not m:
                    continue
                fy, upto, rest = m.groups()
                upto_month = _month_of_short(upto) if upto else (audit.months_of_year.get(fy) or [None])[-1]
                if upto_month is None:
                    continue
                if rest.endswith("in total, split by type not shown"):
                    audit.learn_text((audit.ytd(upto_month),), rest.split(" in total")[0], f"html:{month}",
                                     "consecutive scorecards", "count")
                    continue
                for item in rest.split(", "):
                    label, _, text = item.rpartition(" ")
                    death_type = label.replace(" ", "_")
                    audit.learn_text((audit.ytd(upto_month, "death_type", death_type),), text, f"html:{month}",
                                     "consecutive scorecards", "count")
    return audit


def _month_of_short(text: str) -> str:
    from datetime import datetime

    return datetime.strptime(text, "%b %y").strftime("%Y-%m")


def _ytd_quantity(audit: Audit, kpi: str, month: str):
    if kpi == CDN:
        return (audit.ytd(month),)
    return audit.ratio(kpi, lambda d, v: audit.ytd(month, d, v))


def _learn_scorecard_row(audit: Audit, r: dict, source: str, figures: dict, counts: dict | None = None,
                         text: bool = False) -> None:
    from pkpi.periods import shift_month  # month arithmetic only

    period, kpi = r["period"], r["kpi_code"]
    unit = "count" if kpi == CDN else "percent"
    route = "consecutive scorecards"
    at = {"value": period, "previous_month_value": shift_month(period, -1),
          "same_month_last_year_value": shift_month(period, -12)}
    for column, value in figures.items():
        if column == "fytd_value":
            quantity = _ytd_quantity(audit, kpi, period)
        elif at[column] in {m for _, m in audit.partner_months}:
            quantity = audit.figure(kpi, "month", at[column], "ALL", "total", "total")
        else:
            continue
        if text:
            audit.learn_text(quantity, value, source, route, unit)
        elif _is_null(value):
            reasons = {part.split(":")[0].strip() for part in (r.get("suppression_reason") or "").split(";")}
            if column in reasons:
                for q in quantity:
                    audit.hidden.setdefault(q, f"{source} {period} {kpi} {column}")
            elif unit == "percent" and any(quantity):
                audit.learn_count(quantity[1], 0.0, source, route)
        elif unit == "count":
            audit.learn_count(quantity[0], value, source, route)
        else:
            audit.learn_percent(*quantity, value, PERCENT_ROUNDING["db"], source, route)
    if counts and unit == "percent":
        num, den = audit.figure(kpi, "month", period, "ALL", "total", "total")
        ynum, yden = _ytd_quantity(audit, kpi, period)
        for q, column in ((num, "numerator"), (den, "denominator"), (ynum, "fytd_numerator"), (yden, "fytd_denominator")):
            if not _is_null(counts.get(column)):
                audit.learn_count(q, counts[column], source, route)
    # RAG and trend say on which side of the target or the previous month a figure lies.
    if text:
        return
    if r.get("trend") in ("up", "down", "flat") and unit == "count":
        cur = audit.figure(kpi, "month", period, "ALL", "total", "total")[0]
        prev_month = shift_month(period, -1)
        if prev_month in {m for _, m in audit.partner_months}:
            prev = audit.figure(kpi, "month", prev_month, "ALL", "total", "total")[0]
            lo, hi = {"up": (1, math.inf), "down": (-math.inf, -1), "flat": (0, 0)}[r["trend"]]
            audit.facts.append(Fact(source, "trend", ((cur, 1.0), (prev, -1.0)), lo, hi))
    if r.get("rag") in ("green", "amber", "red") and unit == "percent" and not _is_null(r.get("target")):
        num, den = audit.figure(kpi, "month", period, "ALL", "total", "total")
        target, tolerance = float(r["target"]), float(r.get("amber_tolerance") or 0)
        # higher_is_better: green >= target; amber >= target - tolerance; red below.
        bands = {"green": (target, math.inf), "amber": (target - tolerance, target), "red": (-math.inf, target - tolerance)}
        low, high = bands[r["rag"]]
        if r.get("polarity") == "higher_is_better":
            if low > -math.inf:
                audit.facts.append(Fact(source, "rag", ((num, 100.0), (den, -low)), 0.0, math.inf))
            if high < math.inf:
                audit.facts.append(Fact(source, "rag", ((num, 100.0), (den, -high)), -math.inf, 1e-9))
