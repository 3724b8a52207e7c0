"""pkpi.gx_duckdb: the gate's changes to Great Expectations' SQL engine, pinned and checked.

The gate's verdicts come from GX's SQL engine on an in-memory DuckDB. If a GX upgrade moves what
the changes rely on, these fail loudly instead of the gate losing query results, reading a
stale table or running a regular expression with another meaning.
"""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pkpi import gx_duckdb, gx_pandas
from pkpi.contracts import ID_REGEX
from pkpi.rules import DECIMAL_REGEX, FORMULA_REGEX, INTEGER_REGEX, ISO_DATE_REGEX


def test_gx_still_keeps_one_connection_only_for_the_listed_dialects():
    from great_expectations.execution_engine import sqlalchemy_execution_engine as engine

    source = inspect.getsource(engine.SqlAlchemyExecutionEngine.get_connection)
    assert "_PERSISTED_CONNECTION_DIALECTS" in source and "self._connection" in source
    source = inspect.getsource(engine.ExecutionEngine._process_direct_and_bundled_metric_computation_configurations)
    assert "_metric_cache" in source
    # The runner's close empties what the dialect keeps of DuckDB's type objects (see gate).
    from duckdb_engine import Dialect

    assert hasattr(Dialect()._type_memos, "clear")


def test_an_unchecked_gx_version_is_refused_with_what_to_do(monkeypatch):
    monkeypatch.setattr(gx_pandas, "gx_version", lambda: (1, 99))  # the one check (require_checked_gx)
    with pytest.raises(RuntimeError, match="widen SUPPORTED_GX"):
        gx_duckdb.install()


def test_re2_refuses_look_around_rather_than_change_a_rule():
    with pytest.raises(ValueError, match="look-ahead"):
        gx_duckdb.re2(r"^(?!0000)[0-9]{4}\Z")


VALUES = ["7", "-7", "7\n", "07", "1.5", "1.25", "1e3", "", " 7", "=SUM(A1)", "+44", "@x", "-1",
          "2025-03-05", "2024-02-29", "2025-02-29", "0000-01-01", "0400-02-29", "1900-02-29",
          "2000-02-29", "2025-3-5", "2025-03-05\n", "NCT-00001", "Zoë-1", "K\u0663", "a b", "é/1"]


@pytest.mark.parametrize("pattern", [ISO_DATE_REGEX, INTEGER_REGEX, DECIMAL_REGEX, FORMULA_REGEX, ID_REGEX])
def test_every_suite_pattern_means_the_same_in_duckdb(pattern):
    import duckdb

    con = duckdb.connect()
    try:
        translated = gx_duckdb.re2(pattern)
        for value in VALUES:
            found = con.execute("select regexp_matches(?, ?)", [value, translated]).fetchone()[0]
            assert found == bool(re.search(pattern, value)), (pattern, value)
    finally:
        con.close()


def test_a_suite_on_duckdb_returns_results_rows_and_fresh_tables():
    import duckdb
    import duckdb_engine
    import great_expectations as gx
    import great_expectations.expectations as gxe
    import pandas as pd

    gx_duckdb.install()
    con = duckdb.connect()
    context = gx.get_context(mode="ephemeral")
    source = context.data_sources.add_sql("duckdb_check", connection_string="duckdb:///:memory:",
                                          kwargs={"creator": lambda: duckdb_engine.ConnectionWrapper(con.cursor())})
    try:
        con.execute("create table t (row_id bigint, n varchar)")
        batch = source.add_table_asset("t", table_name="t").add_batch_definition_whole_table("whole")
        suite = context.suites.add(gx.ExpectationSuite(name="duckdb_check", expectations=[
            gxe.ExpectColumnValuesToMatchRegex(column="n", regex=INTEGER_REGEX)]))
        definition = context.validation_definitions.add(gx.ValidationDefinition(name="duckdb_check", data=batch, suite=suite))
        result_format = {"result_format": "COMPLETE", "unexpected_index_column_names": ["row_id"],
                         "return_unexpected_index_query": False}
        for values, bad in ((["1", "x", "7\n"], [1, 2]), (["2", "3"], []), (["y"], [0])):
            con.register("frame", pd.DataFrame({"row_id": range(len(values)), "n": values}))
            con.execute("create or replace table t as select * from frame")
            gx_duckdb.fresh_run(source.get_execution_engine())
            result = definition.run(result_format=result_format).results[0]
            assert result.success == (not bad)
            assert sorted(row["row_id"] for row in result.result.get("unexpected_index_list") or []) == bad
    finally:
        gx_duckdb.close_source(source, con)
        gx_duckdb.close_at_exit(lambda: None)  # this test process exits quietly too


# Builds the DuckDB runner and judges one file, in a process of its own (argv[1]: a folder).
_JUDGE_ON_DUCKDB = """
import sys
from pathlib import Path
import pkpi.gate as gate
from pkpi.reference import load_reference
from pkpi.settings import Settings
from support.returns import MONTH, TODAY, csv_bytes, drop_file, make_reference, table
base = Path(sys.argv[1])
settings = Settings.from_env({"PKPI_DATA_DIR": str(base / "data"),
                              "PKPI_REFERENCE_DIR": str(make_reference(base / "reference"))})
gate.DUCKDB_FROM_ROWS = 0
content = csv_bytes(table("contacts"))
path = drop_file(settings.landing_dir, f"contacts/NCT/{MONTH}/one.csv", content)
verdict = gate.judge(path, content, settings.landing_dir, load_reference(settings), today=TODAY)
assert verdict.accepted and gate._duckdb_runner.cache_info().currsize == 1, verdict.problems
print("judged")
"""


def test_a_process_that_validated_on_duckdb_exits_without_leak_reports(tmp_path):
    """Without close_at_exit, every such process (an ingest task) ends with about forty lines of
    nanobind "leaked" reports on stderr, which read like a fault in the task's log."""
    tests = Path(__file__).resolve().parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tests), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", _JUDGE_ON_DUCKDB, str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "judged"
    assert "leaked" not in done.stderr, done.stderr[:2000]
