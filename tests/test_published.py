"""What leaves the warehouse for the quality sub-group: the published copy of the mart and the
dbt documentation site.

The copy is made from the hand-made partnership of tests/support/catalogue.py (built once per
session, shared with tests/test_kpi_catalogue.py). It is read the way an analyst would, with the
DuckDB Python API opened read-only, as ``duckdb -readonly data/published/kpi_mart.duckdb`` does.
"""

from __future__ import annotations

import json
import shutil

import duckdb
import pytest

from pkpi.build import docs_dir, generate_docs
from pkpi.publish import PUBLISHED_TABLES, publish
from pkpi.disclosure import DisclosureControl, is_disclosive
from pkpi.query import query_published
from pkpi.warehouse import connect
from support.catalogue import built_catalogue
from support.numbers import close

RECORD_LEVEL_COLUMNS = {"child_id", "contact_id", "notification_id", "record_id", "load_id", "source_row",
                        "record_key", "referral_date", "notification_date", "contact_date", "event_date"}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return built_catalogue(tmp_path_factory)


@pytest.fixture(scope="module")
def published_path(built):
    return built.settings.published_dir / "kpi_mart.duckdb"


def read_only(path):
    return duckdb.connect(str(path), read_only=True)


def test_tables_are_queried_without_a_schema_and_with_mart(published_path):
    con = read_only(published_path)
    try:
        # As in: duckdb -readonly data/published/kpi_mart.duckdb -c "select count(*) from kpi_values"
        for table in PUBLISHED_TABLES:
            plain = con.execute(f"select count(*) from {table}").fetchone()[0]
            assert plain > 0, table
            # SQL copied from the warehouse, where the tables live in schema mart, works too.
            assert con.execute(f"select count(*) from mart.{table}").fetchone()[0] == plain, table
        assert con.execute(
            "select value from kpi_values where kpi_code = 'CON_CONTACTS' and period = '2025-04' "
            "and partner_code = 'ALL' and dimension = 'total'"
        ).fetchone() == (9.0,)
        # The mart.* names are views of the same tables, columns included.
        assert [d[0] for d in con.execute("select * from mart.kpi_values limit 0").description] == \
            [d[0] for d in con.execute("select * from kpi_values limit 0").description]
        with pytest.raises(duckdb.Error):
            con.execute("delete from kpi_values")
        # Stored in DuckDB 1.0's format, so an older DuckDB command line opens it too.
        tags = con.execute("select tags from duckdb_databases() where not internal").fetchone()[0]
        assert tags["storage_version"].startswith("v1.0.0")
    finally:
        con.close()


def test_only_aggregate_tables_are_published(built, published_path):
    con = read_only(published_path)
    try:
        objects = set(con.execute(
            "select table_schema, table_name, table_type from information_schema.tables"
        ).fetchall())
        columns = {r[0] for r in con.execute("select column_name from information_schema.columns").fetchall()}
    finally:
        con.close()
    assert objects == {("main", t, "BASE TABLE") for t in PUBLISHED_TABLES} | {
        ("mart", t, "VIEW") for t in PUBLISHED_TABLES
    }
    assert not {"fct_contacts", "fct_training_events", "fct_child_death_notifications",
                "fct_finance_contributions"} & {name for _, name, _ in objects}
    assert not RECORD_LEVEL_COLUMNS & columns
    # One Parquet file per table, with the same rows; nothing else in published/.
    parquet = built.settings.published_dir / "parquet"
    assert sorted(p.name for p in parquet.iterdir()) == sorted(f"{t}.parquet" for t in PUBLISHED_TABLES)
    con = duckdb.connect()
    try:
        for table in PUBLISHED_TABLES:
            assert con.execute(f"select count(*) from '{parquet / (table + '.parquet')}'").fetchone()[0] == \
                built.build.published.row_counts[table]
    finally:
        con.close()
    # One release, and the stable names are links into it (tests/test_published_release.py).
    assert sorted(p.name for p in built.settings.published_dir.iterdir()) == \
        ["current", "kpi_mart.duckdb", "parquet", "releases"]
    (release,) = (built.settings.published_dir / "releases").iterdir()
    assert sorted(p.name for p in release.iterdir()) == ["kpi_mart.duckdb", "parquet"]


def _mart_and_published(settings, path):
    with connect(settings, read_only=True) as con:
        mart = {
            tuple(r[:6]): r[6:]
            for r in con.execute(
                "select v.kpi_code, v.period_grain, v.period, v.partner_code, v.dimension, v.dimension_value, "
                "v.numerator, v.denominator, v.value, k.unit, k.disclosive "
                "from mart.kpi_values as v join mart.dim_kpi as k using (kpi_code)"
            ).fetchall()
        }
    con = read_only(path)
    try:
        published = {
            tuple(r[:6]): r[6:]
            for r in con.execute(
                "select kpi_code, period_grain, period, partner_code, dimension, dimension_value, "
                "numerator, denominator, value, disclosive, suppressed, suppression_reason from kpi_values"
            ).fetchall()
        }
    finally:
        con.close()
    return mart, published


def assert_controlled_as_pkpi_disclosure_says(mart, published, threshold):
    """The published kpi_values follow pkpi.disclosure exactly: its rule decides which rows are
    disclosive; every figure its primary rule hides is hidden; nothing non-disclosive changes."""
    control = DisclosureControl(threshold)
    assert set(mart) == set(published)
    for key, (numerator, denominator, value, unit, kpi_disclosive) in mart.items():
        p_num, p_den, p_value, p_disclosive, suppressed, reason = published[key]
        disclosive = is_disclosive(key[0], kpi_disclosive, key[4])
        assert p_disclosive == disclosive, key
        primary = control.figure(value, unit, disclosive, numerator, denominator)
        if primary.hidden:
            # A small count reads [c] (complement) instead of <t where "<t" itself, read as 1 to
            # t-1 beside the other figures, would pin a count down (pkpi.disclosure.decisions._Model._unlabel).
            assert suppressed and reason in (primary.reason.value, "complement"), key
        if suppressed:
            assert disclosive and (p_num, p_den, p_value) == (None, None, None), key
            assert reason in ("small_count", "small_base", "complement"), key
        else:
            assert reason is None, key
            assert close(p_num, numerator) and close(p_den, denominator) and close(p_value, value), key


def test_published_figures_follow_pkpi_disclosure(built, published_path):
    mart, published = _mart_and_published(built.settings, published_path)
    assert_controlled_as_pkpi_disclosure_says(mart, published, built.settings.disclosure_threshold)

    def row(kpi, grain, period, partner="ALL", dim="total", value="total"):
        return published[(kpi, grain, period, partner, dim, value)]

    # Four child deaths in March 2025 (exact in the mart): hidden once published, like the
    # three unexpected ones; none of death type not_known: zero is not disclosive.
    assert mart[("CDN_NOTIFICATIONS", "month", "2025-03", "ALL", "total", "total")][2] == 4
    # Shown as [c] rather than <5: its four age bands are <5 each, so "<5" would say 4.
    assert row("CDN_NOTIFICATIONS", "month", "2025-03")[2:] == (None, True, True, "complement")
    assert row("CDN_NOTIFICATIONS", "month", "2025-03", dim="death_type", value="unexpected")[4:] == (True, "small_count")
    assert row("CDN_NOTIFICATIONS", "month", "2025-03", dim="death_type", value="not_known")[:5] == (0, None, 0, True, False)
    # 2 of 3 unexpected deaths with a JAR: the percentage rests on counts below 5.
    assert row("CDN_UNEXPECTED_JAR_PCT", "month", "2025-03")[4:] == (True, "small_base")
    # Counts that are not disclosive are published as they are, however small.
    assert row("RET_REJECTED", "month", "2025-04", "LAA")[2:5] == (1, False, False)
    assert row("CON_CONTACTS", "month", "2025-04", "PFF", "contact_source", "anonymous")[2:5] == (1, False, False)
    assert built.build.published.suppressed_figures == sum(1 for r in published.values() if r[4]) + _hidden_in_scorecard(published_path)


def _hidden_in_scorecard(path):
    con = read_only(path)
    try:
        texts = [r[0] for r in con.execute(
            "select suppression_reason from scorecard where suppression_reason is not null"
        ).fetchall()]
    finally:
        con.close()
    return sum(len(t.split("; ")) for t in texts)


def test_published_scorecard_hides_the_same_figures(published_path):
    con = read_only(published_path)
    try:
        rows = {
            (r[0], r[1]): r[2:]
            for r in con.execute(
                "select period, kpi_code, value, suppressed, rag, suppression_reason from scorecard"
            ).fetchall()
        }
    finally:
        con.close()
    value, suppressed, rag, reason = rows[("2025-03", "CDN_NOTIFICATIONS")]
    assert (value, suppressed, rag) == (None, True, "grey") and "value: complement" in reason  # see above
    assert rows[("2025-03", "CDN_UNEXPECTED_JAR_PCT")][:3] == (None, True, "grey")
    # Not disclosive: shown.
    assert rows[("2025-03", "RET_ON_TIME_PCT")][:3] == (50.0, False, "green")


def test_disclosure_threshold_is_configurable(built, tmp_path):
    """Published with threshold 3 (counts 1 and 2 hidden) from a copy of the same warehouse."""
    settings = built.settings.with_overrides(data_dir=tmp_path / "data", disclosure_threshold=3)
    settings.data_dir.mkdir(parents=True)
    with connect(built.settings, read_only=True):  # the shared lock while copying the file
        shutil.copy(built.settings.warehouse_path, settings.warehouse_path)
    publish(settings)
    mart, published = _mart_and_published(settings, settings.published_dir / "kpi_mart.duckdb")
    assert_controlled_as_pkpi_disclosure_says(mart, published, 3)
    # March 2025's four deaths are shown now; of its death types, expected (1) is hidden and so
    # is unexpected (3), which would otherwise give it away as 4 - 3.
    march = ("CDN_NOTIFICATIONS", "month", "2025-03", "ALL")
    # March 2025's four deaths are not small at threshold 3, but they are in four age bands, each
    # shown as <3 (1 or 2): beside a total of 4, each band would be 1, so the total is withheld;
    # of its death types, expected (1) is hidden and so is unexpected (3), which would otherwise
    # give it away as 4 - 3.
    assert published[(*march, "total", "total")][2:] == (None, True, True, "complement")
    assert published[(*march, "death_type", "expected")][4:] == (True, "small_count")
    assert published[(*march, "death_type", "unexpected")][4:] == (True, "complement")
    assert published[(*march, "death_type", "not_known")][2:5] == (0, True, False)


def test_pkpi_query_reads_the_published_copy(built):
    result = query_published(
        built.settings,
        "select partner_code, value from kpi_values where kpi_code = 'FIN_CONTRIBUTIONS_GBP' "
        "and period = '2025-26' and dimension = 'total' order by partner_code",
    )
    assert result.columns == ["partner_code", "value"]
    assert result.rows == [("ALL", 19501.0), ("HBB", 4500.0), ("LAA", 15001.0)]
    assert query_published(built.settings, "select count(*) from mart.dim_kpi").rows == [(23,)]


def test_dbt_docs_site(built):
    site = generate_docs(built.settings)
    assert site == docs_dir(built.settings) == built.settings.data_dir / "dbt" / "docs"
    assert sorted(p.name for p in site.iterdir()) == ["catalog.json", "index.html", "manifest.json"]
    # index.html is dbt's static page: the manifest and catalogue are inside it, so it opens
    # from disk without a server.
    html = (site / "index.html").read_text(encoding="utf-8")
    assert "model.pkpi.kpi_values" in html and "The KPI, unrounded" in html
    manifest = json.loads((site / "manifest.json").read_text(encoding="utf-8"))
    catalog = json.loads((site / "catalog.json").read_text(encoding="utf-8"))
    node = manifest["nodes"]["model.pkpi.kpi_values"]
    assert node["description"] and node["columns"]["value"]["description"]
    # The catalogue read the real tables from the warehouse.
    columns = catalog["nodes"]["model.pkpi.kpi_values"]["columns"]
    assert {"kpi_code", "period_grain", "period", "partner_code", "dimension", "dimension_value",
            "numerator", "denominator", "value"} <= {c.lower() for c in columns}
