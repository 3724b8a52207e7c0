"""A build never takes the whole machine: DuckDB's memory_limit and threads inside dbt are the
settings PKPI_DUCKDB_MEMORY_LIMIT and PKPI_DUCKDB_THREADS (safe defaults when unset)."""

from __future__ import annotations

import subprocess
import sys

import duckdb
import pytest

from pkpi.build import dbt_args, run_dbt
from pkpi.settings import Settings, SettingsError, default_duckdb_memory_limit, default_duckdb_threads

LIMITS_SQL = "select current_setting('memory_limit') as memory_limit, current_setting('threads') as threads"


def _limits_inside_dbt(settings: Settings) -> tuple[str, int]:
    """What DuckDB reports from inside a real dbt invocation against the warehouse."""
    result = run_dbt(settings, dbt_args(settings, command="show", extra=["--inline", LIMITS_SQL]))
    assert result.success, result.exception
    (row,) = [tuple(r) for r in result.result.results[0].agate_table.rows]
    return str(row[0]), int(row[1])


def _as_duckdb_reports(limit: str) -> str:
    with duckdb.connect() as con:
        con.execute(f"set memory_limit = '{limit}'")
        return con.execute("select current_setting('memory_limit')").fetchone()[0]


def test_duckdb_limits_inside_dbt_are_the_settings(settings):
    chosen = Settings.from_env({"PKPI_DATA_DIR": str(settings.data_dir),
                                "PKPI_REFERENCE_DIR": str(settings.reference_dir),
                                "PKPI_DUCKDB_MEMORY_LIMIT": "300MiB", "PKPI_DUCKDB_THREADS": "1"})
    assert _limits_inside_dbt(chosen) == (_as_duckdb_reports("300MiB"), 1)


def test_unset_limits_are_bounded_defaults_not_duckdbs(settings):
    # DuckDB alone would take 80 % of the machine's memory and every core.
    default = Settings.from_env({"PKPI_DATA_DIR": str(settings.data_dir),
                                 "PKPI_REFERENCE_DIR": str(settings.reference_dir)})
    assert default.duckdb_memory_limit == default_duckdb_memory_limit()
    assert default.duckdb_threads == default_duckdb_threads() <= 2
    memory, threads = _limits_inside_dbt(default)
    assert memory == _as_duckdb_reports(default.duckdb_memory_limit)
    assert threads == default.duckdb_threads
    assert _parse_size(memory) <= 4 * 1024 ** 3


def test_after_dbt_the_warehouse_is_closed_for_other_processes(settings):
    """dbt keeps the database open for its whole run (keep_open); once it returns, pkpi has
    closed it, or a reader or the next writer in another process would find the file locked."""
    _limits_inside_dbt(settings)
    opened = subprocess.run([sys.executable, "-c", "import duckdb, sys; duckdb.connect(sys.argv[1]).close()",
                             str(settings.warehouse_path)], capture_output=True, text=True, timeout=120)
    assert opened.returncode == 0, opened.stderr


def _parse_size(shown: str) -> int:
    """DuckDB shows sizes such as '4.0 GiB'."""
    number, unit = shown.split()
    scale = {"KiB": 1024, "MiB": 1024 ** 2, "GiB": 1024 ** 3, "TiB": 1024 ** 4,
             "KB": 1000, "MB": 1000 ** 2, "GB": 1000 ** 3, "TB": 1000 ** 4}[unit]
    return int(float(number) * scale)


@pytest.mark.parametrize("name, value", [
    ("PKPI_DUCKDB_MEMORY_LIMIT", "lots"),
    ("PKPI_DUCKDB_MEMORY_LIMIT", "0GB"),
    ("PKPI_DUCKDB_MEMORY_LIMIT", "2GB; set threads = 64"),
    ("PKPI_DUCKDB_THREADS", "0"),
    ("PKPI_DUCKDB_THREADS", "two"),
])
def test_unusable_limits_are_refused_with_a_sentence(name, value):
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: value})
