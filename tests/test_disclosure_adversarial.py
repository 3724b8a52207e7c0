"""Disclosure control holds against linked tables: an attacker recovers no small number.

A partnership is built on purpose with small numbers (tests/support/small_numbers.py: two
partners, one small, child death returns January to May 2025, through the real gate, dbt build,
publish and a scorecard for every month). An auditor that knows nothing of the suppression code
(tests/support/disclosure_audit.py) reads every figure that leaves the warehouse (the published
DuckDB copy and its Parquet files, and each month's scorecard.csv, scorecard.xlsx and
scorecard.html) and every linear relation between them, and tries to recover each small count.
"""

from __future__ import annotations

import csv
from pathlib import Path

import duckdb
import pytest

from pkpi.disclosure import KPI_LINKS, DisclosureControl, Reason
from support.disclosure_audit import JAR, UNDER_1, build_audit
from support.small_numbers import THRESHOLD, built_small_numbers

CATALOGUE = Path(__file__).resolve().parents[1] / "dbt_project" / "catalogue" / "kpi_catalogue.csv"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return built_small_numbers(tmp_path_factory)


@pytest.fixture(scope="module")
def audit(built):
    settings = built.settings
    return build_audit(settings.warehouse_path, settings.published_dir,
                       {month: out.directory for month, out in built.scorecards.items()}, THRESHOLD)


def _report(findings) -> str:
    return "small counts recovered:\n" + "\n".join(f"  {f}" for f in findings)


def test_the_fixture_has_every_kind_of_small_number(audit):
    """The data exercises what the attack needs (a guard against a fixture that proves nothing)."""
    def true(grain, period, partner, dimension="total", value="total"):
        return audit.true(audit.cell(grain, period, partner, dimension, value))

    assert true("month", "2025-01", "ALL", "death_type", "not_known") == 1  # one small cell
    assert true("month", "2025-01", "SML") == 1 and true("month", "2025-01", "ALL") == 11  # small partner
    # 6 of 7 unexpected deaths with a JAR in February: the complement is 1.
    num, den = audit.figure(JAR, "month", "2025-02", "ALL", "total", "total")
    assert (audit.true(num), audit.true(den)) == (6, 7)
    num, den = audit.figure(UNDER_1, "month", "2025-04", "ALL", "total", "total")
    assert audit.true(num) == 1  # small numerator, the sum of two age bands
    assert audit.months_of_year == {"2024-25": ["2025-01", "2025-02", "2025-03"], "2025-26": ["2025-04", "2025-05"]}
    assert len(audit.sensitive()) > 100
    # Every output was read.
    assert {"db", "parquet", "csv", "xlsx", "html"} <= audit.read, audit.read
    assert audit.hidden and audit.labels


def test_no_differencing_route_recovers_a_small_count(audit):
    """Breakdown vs total, numerator/denominator vs breakdowns, percentage vs counts, partner vs
    ALL, year vs months, month vs year to date and consecutive scorecards, one relation at a
    time, repeated until nothing new is learnt."""
    findings = audit.routes()
    assert not findings, _report(findings)


def test_integer_feasibility_recovers_no_small_count(audit):
    """Over all non-negative whole numbers consistent with every published figure, no small
    count has one possible value, and none is shown to lie within 1..threshold-1."""
    findings = audit.feasibility(with_labels=False)
    assert not findings, _report(findings)


def test_reading_less_than_threshold_as_1_to_4_pins_no_count_down(audit):
    """The same, with every "<5" read as what it says (1 to 4): no small count has one value."""
    findings = audit.feasibility(with_labels=True)
    assert not findings, _report(findings)


def test_percentages_hide_their_counts_with_them(built):
    """A hidden percentage publishes neither numerator nor denominator, and 6 of 7 (one case
    left out) is hidden like 1 of 7."""
    con = duckdb.connect(str(built.settings.published_dir / "kpi_mart.duckdb"), read_only=True)
    try:
        rows = con.execute(
            "select kpi_code, period, numerator, denominator, value, suppressed, suppression_reason from kpi_values "
            "where kpi_code like 'CDN_%PCT' and suppressed"
        ).fetchall()
        feb = con.execute(
            "select suppressed, suppression_reason from kpi_values where kpi_code = ? and period = '2025-02' "
            "and partner_code = 'ALL'", [JAR],
        ).fetchone()
    finally:
        con.close()
    assert rows and all(r[2:5] == (None, None, None) for r in rows)
    assert feb == (True, "small_base")
    feb_card = {r["kpi_code"]: r for r in csv.DictReader(
        (built.scorecards["2025-02"].directory / "scorecard.csv").read_text(encoding="utf-8").splitlines())}
    assert feb_card[JAR]["value"] == "[c]"


def test_the_mart_flags_what_the_published_copy_hides(built):
    """One set of decisions: mart.scorecard.suppressed (made at build time) is the published
    scorecard's, and the scorecard files hide the same figures."""
    settings = built.settings
    mart = duckdb.connect(str(settings.warehouse_path), read_only=True)
    pub = duckdb.connect(str(settings.published_dir / "kpi_mart.duckdb"), read_only=True)
    try:
        query = "select period, kpi_code, suppressed, suppression_reason from {}scorecard order by 1, 2"
        assert mart.execute(query.format("mart.")).fetchall() == pub.execute(query.format("")).fetchall()
        published = {(r[0], r[1]): r[2] for r in pub.execute(query.format("")).fetchall()}
    finally:
        mart.close()
        pub.close()
    for month, out in built.scorecards.items():
        for row in csv.DictReader(out.csv.read_text(encoding="utf-8").splitlines()):
            assert (row["suppressed"] == "true") == published[(month, row["kpi_code"])], (month, row["kpi_code"])


# --- the rules ------------------------------------------------------------------------------


def test_a_percentage_that_leaves_out_a_small_number_is_hidden():
    control = DisclosureControl(5)
    for numerator in (5, 6, 7, 8):  # 5 of 6 ... 8 of 9: one case left out
        figure = control.figure(100 * numerator / (numerator + 1), "percent", True, numerator, numerator + 1, nested=True)
        assert figure.hidden and figure.reason is Reason.SMALL_BASE
    assert not control.figure(50.0, "percent", True, 5, 10, nested=True).hidden
    assert not control.figure(100.0, "percent", True, 6, 6, nested=True).hidden  # none left out
    # Completions over courses commenced are not a subset: 6 of 7 leaves out no one.
    assert not control.figure(600 / 7, "percent", True, 6, 7, nested=False).hidden


def test_every_catalogue_kpi_states_its_links_once():
    with CATALOGUE.open(encoding="utf-8") as fh:
        codes = {r["kpi_code"] for r in csv.DictReader(fh)}
    assert codes == set(KPI_LINKS), sorted(codes ^ set(KPI_LINKS))
    # The links the issue names.
    assert KPI_LINKS["CDN_UNDER_1_PCT"].numerator.values == ("under_28_days", "28_to_364_days")
    assert KPI_LINKS["CDN_UNEXPECTED_JAR_PCT"].denominator.values == ("unexpected",)
    assert KPI_LINKS["CON_REFERRALS"].same_as.values == ("referral",)
    assert KPI_LINKS["CON_CONVERSION_PCT"].numerator == KPI_LINKS["CON_REFERRALS"].same_as



# --- units: decided apart, so that a build decides again only what changed -------------------


@pytest.fixture(scope="module")
def unit_marts(built, tmp_path_factory):
    """The small-numbers mart (child deaths, two partners, two financial years) and the
    hand-made one of support.mart_fixture (every KPI family, linked percentages, 24 months)."""
    from support.mart_fixture import build_mart, make_settings

    fixture = make_settings(tmp_path_factory.mktemp("units"))
    build_mart(fixture)
    return [built.settings.warehouse_path, fixture.warehouse_path]


def test_no_relation_crosses_a_unit(unit_marts):
    """Every relation between counts that disclosure control protects (breakdown vs total,
    partner vs ALL, month vs financial year, numerator/denominator vs breakdowns, a nested
    percentage's rest), and the scorecard's year to date, stays within one KPI family and one
    financial year: a relation across two units would let a reader difference across them."""
    from pkpi.disclosure.decisions import KPI_FAMILIES, _Model, months_sql, unit_rows_sql

    for path in unit_marts:
        con = duckdb.connect(str(path), read_only=True)
        try:
            months = dict(con.execute(months_sql("mart")).fetchall())
            model = _Model(DisclosureControl(THRESHOLD), months)
            units = set()
            for unit_of_row, _, *key, numerator, denominator, value, kpi_unit, disclosive, kpi_disclosive in con.execute(
                    unit_rows_sql("mart")).fetchall():
                units.add(unit_of_row)
                model.add_row(tuple(key), kpi_unit, numerator, denominator, value, bool(disclosive or kpi_disclosive))
            model._add_relations()
            scorecard = con.execute("select period, financial_year, fytd_value from mart.scorecard").fetchall()
        finally:
            con.close()

        def unit(cell):
            kpi, grain, period = (cell[1], cell[3], cell[4]) if cell[0] == "n" else (cell[1], cell[4], cell[5])
            year = period if grain == "financial_year" else months.get(period) if grain == "month" else None
            return f"{KPI_FAMILIES.get(kpi.upper(), kpi.upper())} {year or grain + ' ' + period}"

        assert len(model.relations) > 50 and len(units) > 3, (path, len(model.relations), units)
        kinds = {kind for kind, _, _ in model.relations.values()}
        assert {"breakdown vs total", "year vs months", "numerator/denominator vs breakdowns"} <= kinds
        crossing = [r for r in model.relations.values() if len({unit(c) for c in (r[1], *r[2])}) > 1]
        assert not crossing, crossing[:3]
        assert {unit(c) for c in model.carriers} <= units  # the test's units are the decisions'
        # A year to date adds up the months of its own financial year (the unit's year).
        assert all(months[period] == year for period, year, fytd in scorecard if fytd is not None)


def test_the_units_decide_as_one_model_over_the_whole_mart(unit_marts):
    """Decided unit by unit, the decisions are those of one model over every figure at once."""
    from pkpi.disclosure.decisions import _control_kpi_values

    for path in unit_marts:
        con = duckdb.connect(str(path), read_only=True)
        try:
            control = DisclosureControl(THRESHOLD)
            by_unit = _control_kpi_values(con, "mart", control, None)
            whole = _control_kpi_values(con, "mart", control, None, by_unit=False)
        finally:
            con.close()
        assert by_unit[0] and by_unit[:2] == whole[:2]
