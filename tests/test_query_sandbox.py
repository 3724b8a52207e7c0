"""The analyst's query (``pkpi query``) reads the published tables and nothing else.

A real published copy (the hand-made partnership of tests/support/catalogue.py, built once per
session and shared with tests/test_published.py) is copied into a data folder of its own, beside
a real warehouse.duckdb that holds record-level rows plus a recognisable child record
(:data:`CANARY`), and a partner file in landing holding another (:data:`FILE_CANARY`). Every
attack below is first shown to work on a plain read-only DuckDB connection (so each test fails if
the sandbox is removed), then refused by the sandbox: by the statement check and, with that
check switched off, by DuckDB's own locks on the connection.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import duckdb
import pytest

import pkpi.query as sandbox
from pkpi.publish import PUBLISHED_TABLES
from pkpi.query import (ALLOWED, QueryFailed, QueryRefused, QueryTimedOut, check_query, open_sandbox,
                        query_published)
from pkpi.warehouse import connect
from support.catalogue import built_catalogue

CANARY = "CANARY-CHILD-Q7X2"
FILE_CANARY = "CANARY-FILE-8Z3K"
RUNAWAY = "select count(*) from kpi_values a, kpi_values b, kpi_values c, kpi_values d, kpi_values e"


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    """A data folder with the published copy, the live warehouse (plus a canary) and a landing file."""
    built = built_catalogue(tmp_path_factory)
    settings = built.settings.with_overrides(data_dir=tmp_path_factory.mktemp("sandbox") / "data")
    settings.data_dir.mkdir(parents=True)
    with connect(built.settings, read_only=True):  # the shared lock while copying the file
        shutil.copy(built.settings.warehouse_path, settings.warehouse_path)
    shutil.copytree(built.settings.published_dir, settings.published_dir, symlinks=True)  # the release links
    con = duckdb.connect(str(settings.warehouse_path))
    try:
        con.execute("create table raw.canary_children (child_id varchar, date_of_birth date, postcode varchar)")
        con.execute("insert into raw.canary_children values (?, date '2015-06-01', 'NN1 1AA')", [CANARY])
        assert con.execute("select count(*) from raw.contacts").fetchone()[0] > 0  # record-level rows
    finally:
        con.close()
    landing = settings.landing_dir / "contacts" / "LAA" / "2026-03"
    landing.mkdir(parents=True)
    (landing / "contacts.csv").write_text(f"child_id,postcode\n{FILE_CANARY},NN1 1AA\n", encoding="utf-8")
    return settings


@pytest.fixture
def published(settings):
    return settings.published_dir / "kpi_mart.duckdb"


def attacks(settings, out: Path) -> dict[str, str]:
    """Every way out of the published tables, by name. ``out`` is where a write would land."""
    wh = str(settings.warehouse_path)
    csv = str(settings.landing_dir / "contacts" / "LAA" / "2026-03" / "contacts.csv")
    parquet = str(settings.published_dir / "parquet" / "kpi_values.parquet")
    return {
        "attach_warehouse": f"attach '{wh}' as wh (read_only)",
        "attach_memory": "attach ':memory:' as scratch",
        "attach_other_path": f"attach '{out / 'new.duckdb'}' as other",
        "read_csv": f"select * from read_csv('{csv}')",
        "read_csv_auto": f"select * from read_csv_auto('{csv}')",
        "read_text": f"select content from read_text('{csv}')",
        "read_blob": f"select content from read_blob('{csv}')",
        "read_parquet": f"select * from read_parquet('{parquet}')",
        "parquet_scan": f"select * from parquet_scan('{parquet}')",
        "read_json": f"select * from read_json('{csv}')",
        "glob": f"select * from glob('{settings.data_dir}/**')",
        "path_in_from": f"select * from '{csv}'",
        "path_in_from_quoted_identifier": f'select * from "{csv}"',
        "path_in_subquery": f"select (select count(*) from '{csv}') as n from kpi_values limit 1",
        "path_in_cte": f"with x as (select * from '{csv}') select * from x",
        "describe_path": f"describe '{csv}'",
        "summarize_read_csv": f"summarize select * from read_csv('{csv}')",
        "query_function": f"select * from query('select * from read_text(''{csv}'')')",
        "sniff_csv": f"select * from sniff_csv('{csv}')",
        "duckdb_databases": "select path from duckdb_databases()",
        "copy_to": f"copy kpi_values to '{out / 'copy.csv'}'",
        "copy_select_to": f"copy (select * from kpi_values) to '{out / 'copy2.csv'}'",
        "export_database": f"export database '{out / 'export'}'",
        "install": "install httpfs",
        "load": "load httpfs",
        "set": "set threads = 8",
        "set_external_access": "set enable_external_access = true",
        "unlock": "set lock_configuration = false",
        "reset": "reset threads",
        "pragma": "pragma threads = 8",
        "create_table": "create table stolen as select 1 as x",
        "create_temp_table": "create temp table stolen as select 1 as x",
        "create_temp_macro": "create temp macro stolen(x) as x",
        "create_view": "create temp view stolen as select 1 as x",
        "drop": "drop table kpi_values",
        "delete": "delete from kpi_values",
        "alter": "alter table kpi_values rename to gone",
        "getenv": "select getenv('HOME')",
        "current_setting": "select current_setting('home_directory')",
        "two_statements": "select 1; select 2",
        "select_then_attach": f"select 1; attach '{wh}' as wh",
        "use": "use memory",
        "checkpoint": "checkpoint",
        "detach": "detach kpi_mart",
        "call": "call pragma_database_list()",
        "pivot_statement": "pivot kpi_values on period_grain using count(*)",
        "explain_analyze": f"explain analyze select * from read_csv('{csv}')",
        "system_view": "select * from duckdb_tables",
        "other_catalog": "select * from system.main.duckdb_settings",
        "empty": "  ",
    }


# Attacks that reach the warehouse or a file, and what a plain read-only connection gets from
# them: they are real, so the sandbox is what stops them.
REACHING = {
    "attach_warehouse": CANARY,
    "read_csv": FILE_CANARY,
    "read_text": FILE_CANARY,
    "path_in_from": FILE_CANARY,
    "path_in_cte": FILE_CANARY,
    "query_function": FILE_CANARY,
    "glob": "contacts.csv",
}

# What DuckDB's own locks on the connection refuse, with the statement check switched off.
# (Temporary objects, one of several statements, SHOW/CALL and the like are refused by the
# statement check only: DuckDB itself allows them on a read-only file, and they reach nothing.)
LOCKED_BY_DUCKDB = [
    "attach_warehouse", "attach_memory", "attach_other_path", "read_csv", "read_csv_auto",
    "read_text", "read_blob", "read_parquet", "parquet_scan", "read_json", "glob", "path_in_from",
    "path_in_from_quoted_identifier", "path_in_subquery", "path_in_cte", "describe_path",
    "summarize_read_csv", "query_function", "sniff_csv", "copy_to", "copy_select_to",
    "export_database", "install", "load", "set", "set_external_access", "unlock", "reset", "pragma",
    "create_table", "drop", "delete", "alter", "getenv", "explain_analyze",
]


def _plain_run(published: Path, sql: str) -> str:
    con = duckdb.connect(str(published), read_only=True)
    try:
        if sql.startswith("attach"):
            con.execute(sql)
            return str(con.execute("select * from wh.raw.canary_children").fetchall())
        return str(con.execute(sql).fetchall())
    finally:
        con.close()


@pytest.mark.parametrize("name", sorted(REACHING))
def test_the_attacks_are_real_without_the_sandbox(settings, published, tmp_path, name):
    assert REACHING[name] in _plain_run(published, attacks(settings, tmp_path)[name])


def _no_trace(settings, out: Path) -> None:
    assert not any(out.iterdir()), sorted(p.name for p in out.iterdir())
    published = settings.published_dir
    assert sorted(p.name for p in published.iterdir()) == ["current", "kpi_mart.duckdb", "parquet", "releases"]
    for release in (published / "releases").iterdir():
        assert sorted(p.name for p in release.iterdir()) == ["kpi_mart.duckdb", "parquet"]
        assert all(p.suffix == ".parquet" for p in (release / "parquet").iterdir())


_ANYWHERE = SimpleNamespace(warehouse_path=Path("w"), landing_dir=Path("l"), published_dir=Path("p"), data_dir=Path("d"))
ATTACK_NAMES = sorted(attacks(_ANYWHERE, Path("o")))


@pytest.mark.parametrize("name", ATTACK_NAMES)
def test_every_attack_is_refused_in_a_plain_sentence(settings, tmp_path, name):
    sql = attacks(settings, tmp_path)[name]
    with pytest.raises(QueryRefused) as refused:
        query_published(settings, sql)
    message = str(refused.value)
    assert message.startswith(ALLOWED + "; it refused this query because ") and message.endswith(".")
    assert "\n" not in message and "Traceback" not in message
    assert CANARY not in message and FILE_CANARY not in message
    _no_trace(settings, tmp_path)


def test_the_check_alone_refuses_every_attack(settings, tmp_path):
    # On a connection without any of DuckDB's locks: the statement check holds by itself.
    plain = duckdb.connect()
    try:
        for name, sql in attacks(settings, tmp_path).items():
            with pytest.raises(QueryRefused):
                check_query(plain, sql)
    finally:
        plain.close()


@pytest.mark.parametrize("name", LOCKED_BY_DUCKDB)
def test_duckdb_itself_refuses_what_slips_past_the_check(settings, published, tmp_path, name):
    sql = attacks(settings, tmp_path)[name]
    con = open_sandbox(published)
    try:
        with pytest.raises(duckdb.Error) as caught:
            con.execute(sql).fetchall()
        assert CANARY not in str(caught.value) and FILE_CANARY not in str(caught.value)
        # The locks still hold after the attempt.
        assert con.execute("select current_setting('enable_external_access')").fetchone()[0] is False
        assert con.execute("select current_setting('lock_configuration')").fetchone()[0] is True
        assert con.execute("select count(*) from kpi_values").fetchone()[0] > 0
    finally:
        con.close()
    _no_trace(settings, tmp_path)


@pytest.mark.parametrize("name", LOCKED_BY_DUCKDB)
def test_query_published_without_the_check_still_refuses(settings, tmp_path, monkeypatch, name):
    monkeypatch.setattr(sandbox, "check_query", lambda con, sql: None)
    with pytest.raises((QueryRefused, QueryFailed)) as caught:
        query_published(settings, attacks(settings, tmp_path)[name])
    assert CANARY not in str(caught.value) and FILE_CANARY not in str(caught.value)
    _no_trace(settings, tmp_path)


def test_the_warehouse_is_out_of_reach_even_by_its_catalog_name(settings):
    # Whatever the analyst calls it, the only catalog there is the published file.
    for sql in ("select * from warehouse.raw.canary_children", "select * from raw.canary_children",
                "select * from raw.contacts", "select * from main.canary_children"):
        with pytest.raises(QueryRefused):
            query_published(settings, sql)
    names = query_published(settings, "select distinct table_catalog, table_schema, table_name "
                                      "from information_schema.tables order by all").rows
    assert {(c, s) for c, s, _ in names} == {("kpi_mart", "main"), ("kpi_mart", "mart")}
    assert {t for _, _, t in names} == set(PUBLISHED_TABLES)


@pytest.mark.parametrize("sql, expected", [
    ("select value from kpi_values where kpi_code = 'CON_CONTACTS' and period = '2025-04' "
     "and partner_code = 'ALL' and dimension = 'total'", [(9.0,)]),
    ("SELECT VALUE FROM MART.KPI_VALUES WHERE KPI_CODE = 'CON_CONTACTS' AND PERIOD = '2025-04' "
     "AND PARTNER_CODE = 'ALL' AND DIMENSION = 'total';", [(9.0,)]),
    ("from kpi_mart.main.kpi_values select value where kpi_code = 'CON_CONTACTS' and period = '2025-04' "
     "and partner_code = 'ALL' and dimension = 'total'  -- FROM-first, fully qualified", [(9.0,)]),
    ("from kpi_mart.kpi_values select value where kpi_code = 'CON_CONTACTS' and period = '2025-04' "
     "and partner_code = 'ALL' and dimension = 'total'", [(9.0,)]),
    ("with c as (select * from kpi_values where kpi_code = 'CON_CONTACTS') "
     "select value from c where period = '2025-04' and partner_code = 'ALL' and dimension = 'total'", [(9.0,)]),
    ("with recursive n(i) as (select 1 union all select i + 1 from n where i < 3) select sum(i) from n", [(6,)]),
    ("select count(*) from dim_kpi k join (select distinct kpi_code from mart.kpi_values) v using (kpi_code)", [(23,)]),
    ("select count(*) from range(3)", [(3,)]),
    ("select * from (values (1), (2)) t(x) order by x", [(1,), (2,)]),
    ("select count(*) from information_schema.columns where table_name = 'dim_kpi' and table_schema = 'main'", None),
    ("describe kpi_values", None),
    ("summarize dim_month", None),
    ("show tables", None),
])
def test_selects_on_the_published_tables_run(settings, sql, expected):
    result = query_published(settings, sql)
    assert result.columns and result.rows and not result.truncated
    if expected is not None:
        assert result.rows == expected


def _in_thread(target, seconds=120):
    outcome = {}

    def run():
        try:
            outcome["result"] = target()
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "the query was not stopped"
    return outcome


@pytest.mark.parametrize("sql", [RUNAWAY, "select sum(range) from range(1000000000000)"])
def test_a_runaway_query_stops_at_the_timeout(settings, sql):
    quick = settings.with_overrides(query_timeout_seconds=0.5)
    outcome = _in_thread(lambda: query_published(quick, sql))
    assert isinstance(outcome.get("error"), QueryTimedOut), outcome
    assert str(outcome["error"]) == (
        "The query was stopped after 0.5 seconds, the longest a query may run (PKPI_QUERY_TIMEOUT); "
        "narrow it with a WHERE, fewer joins or a LIMIT and run it again."
    )
    # The sandbox is closed behind it: the next query runs.
    assert query_published(quick, "select count(*) from dim_kpi").rows == [(23,)]


def test_results_are_capped_with_a_note(settings):
    capped = settings.with_overrides(query_max_rows=10)
    result = query_published(capped, "select * from kpi_values order by all")
    assert len(result.rows) == 10 and result.truncated
    everything = query_published(settings, "select * from kpi_values order by all")
    assert result.rows == everything.rows[:10] and not everything.truncated
    assert "Only the first 10 rows are shown" in result.note and "PKPI_QUERY_MAX_ROWS" in result.note
    exact = query_published(capped, "select * from range(10)")
    assert len(exact.rows) == 10 and not exact.truncated and exact.note is None
    # The cap is applied inside DuckDB, so an endless result is never built.
    endless = _in_thread(lambda: query_published(capped, "select * from range(1000000000000)"))
    assert endless["result"].rows == [(i,) for i in range(10)] and endless["result"].truncated


def test_check_query_reads_the_text_as_duckdb_does(published):
    con = open_sandbox(published)
    try:
        check_query(con, "select 'attach; copy' as words, 1 as x -- ; drop table kpi_values")
        with pytest.raises(QueryRefused, match="it holds 2 statements"):
            check_query(con, "select 1; drop table kpi_values")
        with pytest.raises(QueryRefused, match="it is an ATTACH statement, not a SELECT"):
            check_query(con, "attach 'x.duckdb'")
        with pytest.raises(QueryFailed, match="DuckDB could not read the query"):
            check_query(con, "selec 1")
    finally:
        con.close()


# --- pkpi query, as an analyst runs it ---------------------------------------------------------


def _pkpi(settings, *args, **env):
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PKPI_")}
    environment.update(PKPI_DATA_DIR=str(settings.data_dir), PKPI_REFERENCE_DIR=str(settings.reference_dir), **env)
    return subprocess.run([sys.executable, "-m", "pkpi.cli", "query", *args], capture_output=True, text=True,
                          env=environment, timeout=180)


def test_pkpi_query_refuses_with_exit_status_2_and_one_sentence(settings):
    done = _pkpi(settings, f"attach '{settings.warehouse_path}' as wh")
    assert done.returncode == 2, done
    assert done.stdout == ""
    assert done.stderr == (
        f"pkpi: {ALLOWED}; it refused this query because it is an ATTACH statement, not a SELECT.\n"
    )
    assert ALLOWED.startswith("pkpi query runs one SELECT on the published tables: kpi_values, scorecard, ")


def test_pkpi_query_times_out_with_exit_status_2(settings):
    done = _pkpi(settings, RUNAWAY, PKPI_QUERY_TIMEOUT="0.5")
    assert done.returncode == 2, done
    assert done.stderr.startswith("pkpi: The query was stopped after 0.5 seconds") and "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1


def test_pkpi_query_csv_and_the_row_cap(settings):
    done = _pkpi(settings, "--csv", "select kpi_code, name from dim_kpi order by kpi_code", PKPI_QUERY_MAX_ROWS="3")
    assert done.returncode == 0, done
    lines = done.stdout.splitlines()
    assert lines[0] == "kpi_code,name" and len(lines) == 4
    assert done.stderr.startswith("pkpi: Only the first 3 rows are shown") and "PKPI_QUERY_MAX_ROWS" in done.stderr
    table = _pkpi(settings, "select count(*) as n from mart.dim_kpi")
    assert table.returncode == 0 and table.stdout.splitlines() == ["n ", "--", "23", "(1 row)"], table


def test_pkpi_query_errors_exit_2_with_the_databases_message_and_csv_writes_booleans_as_published(settings):
    for sql in ("select no_such_column from kpi_values", "select cast(kpi_code as integer) from dim_kpi"):
        failed = _pkpi(settings, sql)
        assert failed.returncode == 2, failed
        assert failed.stdout == "" and "Traceback" not in failed.stderr and failed.stderr.count("\n") == 1
        assert failed.stderr.startswith("pkpi: The query failed (") and "Error: " in failed.stderr
    done = _pkpi(settings, "--csv", "select kpi_code, disclosive, on_scorecard from dim_kpi "
                 "where kpi_code in ('CDN_NOTIFICATIONS', 'CON_CONTACTS') order by kpi_code")
    assert done.returncode == 0, done
    # As the scorecard's CSV export writes them, so one reader parses both.
    assert done.stdout.splitlines() == ["kpi_code,disclosive,on_scorecard", "CDN_NOTIFICATIONS,true,true",
                                        "CON_CONTACTS,false,true"]
