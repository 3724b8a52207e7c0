"""Great Expectations' SQL engine on an in-memory DuckDB: the two changes the gate needs, pinned
to the GX versions they were checked against.

GX 1.24 knows no DuckDB dialect, and validates a table as the same batch every run; so:

* **Results.** GX runs each query in ``with engine.connect(): ...`` and fetches the rows after
  the block, when the connection is closed; DuckDB's results go with it. Dialects on GX's
  ``_PERSISTED_CONNECTION_DIALECTS`` keep one open connection instead (SQLite's, for its temp
  tables): :func:`install` adds DuckDB to that list.
* **Metric cache.** The SQL engine caches metrics by batch id, and a whole-table batch has
  the same id every run: a second file would get the first file's column list and counts.
  :func:`fresh_run` empties the cache before each run (within a run it still serves) and ends
  the kept connection's transaction, whose snapshot would not see the new file.
* **Exit.** duckdb_engine keeps DuckDB objects in its modules' globals; when Python tears those
  down at exit after DuckDB's own, nanobind prints about forty "leaked instances" lines on
  stderr, which read like a fault in every task log. :func:`close_at_exit` closes the runner's
  connections and forgets duckdb_engine's modules first.
* **Regular expressions.** GX's ``get_dialect_regex_expression`` has no DuckDB branch (duckdb's
  dialect derives from PostgreSQL's, whose ``~`` is a *full* match in DuckDB, not a search).
  :func:`install` answers DuckDB with ``regexp_matches`` (a search, as GX's pandas engine's
  ``str.contains``) on the pattern translated by :func:`re2`.

Everything else (expectations, suites, validation results) is GX's own.
tests/test_gx_duckdb.py fails if a GX upgrade moves or renames what this relies on.
"""

from __future__ import annotations

import atexit
import gc
import re
import sys
from collections.abc import Callable

# Both compatibility layers were checked against the same GX versions: one pin.
from .gx_pandas import require_checked_gx

DIALECT = "duckdb"

# The GX modules that call get_dialect_regex_expression by the name they imported.
REGEX_MODULES = (
    "great_expectations.expectations.metrics.column_map_metrics.column_values_match_regex",
    "great_expectations.expectations.metrics.column_map_metrics.column_values_not_match_regex",
)


class _DuckDBDialect(str):
    """The dialect name as GX's persisted-connection list holds its entries (they have ``.value``)."""

    value = DIALECT


_LOOKAROUND = re.compile(r"\(\?<?[=!]")
_UNICODE_ESCAPE = re.compile(r"\\u([0-9A-Fa-f]{4})")


def re2(pattern: str) -> str:
    """``pattern`` (Python ``re`` syntax, as the suites write it) in the RE2 syntax DuckDB runs,
    meaning the same on every value.

    ``\\Z`` (end of text) is RE2's ``$`` (which, without the m flag, never matches before a final
    newline) and ``\\uXXXX`` is ``\\x{XXXX}``. RE2 has no look-around: a pattern with one is
    refused here rather than run with another meaning.
    """
    if _LOOKAROUND.search(pattern):
        raise ValueError(
            f"The regular expression {pattern!r} uses a look-ahead or look-behind, which DuckDB's "
            "RE2 engine cannot run. Write the rule without it (for example as a "
            "not-match expectation) in pkpi.suites."
        )
    return _UNICODE_ESCAPE.sub(r"\\x{\1}", pattern).replace(r"\Z", "$")


def _is_duckdb(dialect) -> bool:
    return getattr(dialect, "name", None) == DIALECT


def install() -> None:
    """Apply both changes (see the module docstring); safe to call more than once."""
    import importlib

    import sqlalchemy as sa
    from great_expectations.execution_engine import sqlalchemy_execution_engine as engine

    modules = [importlib.import_module(name) for name in REGEX_MODULES]
    require_checked_gx(
        "pkpi.gx_duckdb",
        hasattr(engine, "_PERSISTED_CONNECTION_DIALECTS") and all(hasattr(m, "get_dialect_regex_expression") for m in modules),
        "the SQL engine still keeps one connection for the dialects in _PERSISTED_CONNECTION_DIALECTS "
        "and still builds regular expressions with get_dialect_regex_expression (tests/test_gx_duckdb.py)")
    if DIALECT not in engine._PERSISTED_CONNECTION_DIALECTS:
        engine._PERSISTED_CONNECTION_DIALECTS = (*engine._PERSISTED_CONNECTION_DIALECTS, _DuckDBDialect(DIALECT))
    for module in modules:
        original = module.get_dialect_regex_expression
        if getattr(original, "pkpi_duckdb", False):
            continue

        def regex_expression(column, regex, dialect, positive=True, _original=original):
            if not _is_duckdb(dialect):
                return _original(column, regex, dialect, positive)
            found = sa.func.regexp_matches(column, sa.literal(re2(regex)))
            return found if positive else sa.not_(found)

        regex_expression.pkpi_duckdb = True
        module.get_dialect_regex_expression = regex_expression


def fresh_run(execution_engine) -> None:
    """Make the SQL engine's next run read the tables as they are now.

    It empties the engine's metric cache and ends the transaction its one kept connection has
    open (DuckDB gives a transaction a snapshot, so an old one would not see a new table)."""
    cache = getattr(execution_engine, "_metric_cache", None)
    if not isinstance(cache, dict) or not hasattr(execution_engine, "_connection"):
        raise RuntimeError(
            "pkpi.gx_duckdb expected Great Expectations' SQL engine to cache metrics in a dict "
            "named _metric_cache and keep its connection in _connection (GX 1.24): check how "
            "the upgrade does both (tests/test_gx_duckdb.py) before validating on DuckDB."
        )
    cache.clear()
    if execution_engine._connection is not None:
        execution_engine._connection.rollback()  # read-only work: nothing to keep


def close_source(source, connection) -> None:
    """Close a GX SQL data source on DuckDB and the DuckDB connection it reads: GX's open
    connection, both sqlalchemy engines, and what their dialect keeps of DuckDB's type objects
    (else nanobind reports them leaked at exit; see the module docstring, **Exit**)."""
    engine = source.get_execution_engine()
    if engine._connection is not None:
        engine._connection.close()
    for sa_engine in (engine.engine, source.get_engine()):
        sa_engine.dispose()
        # The dialect's result processors, keyed by the DuckDB types of the columns read.
        sa_engine.dialect._type_memos.clear()
    connection.close()


def close_at_exit(close: Callable[[], None]) -> None:
    """At exit, run ``close`` (it closes the engines and connections of DuckDB that GX holds),
    then drop every duckdb_engine module with its globals and collect them, while DuckDB
    can still free what they hold (see the module docstring, **Exit**)."""
    def at_exit() -> None:
        close()
        for name in [n for n in sys.modules if n.startswith("duckdb_engine")]:
            module = sys.modules.pop(name)
            module.__dict__.clear()
        gc.collect()

    atexit.register(at_exit)
