"""The analyst's query sandbox behind ``pkpi query``: one SELECT on the published tables, nothing else.

The published copy (``published/kpi_mart.duckdb``) holds aggregate, disclosure-controlled tables
only; the live warehouse beside it holds record-level rows. An analyst's SQL must never reach
anything but the first. Two independent locks make sure of that:

1. **The statement is checked before it runs**, by DuckDB's own parser: the text must be exactly
   one SELECT (``WITH``, ``FROM``-first, ``VALUES``, ``DESCRIBE``, ``SUMMARIZE`` and ``SHOW
   TABLES`` are SELECTs to DuckDB); its syntax tree (``json_serialize_sql``) may name only the
   published tables (plain, ``main.``, ``mart.`` or ``kpi_mart.``), its own CTEs,
   ``information_schema`` and the generators in :data:`ALLOWED_TABLE_FUNCTIONS`. A file path
   in ``FROM``, ``read_csv``, ``glob``, ``ATTACH``, ``COPY``, ``SET``, ``CREATE`` ... are refused here.
2. **The connection cannot do more even if a statement slipped past the check**: the file is
   opened read-only with :func:`sandbox_config`: no external access (no file, no other database,
   no COPY/EXPORT, no INSTALL/LOAD, no ``getenv``), no extension auto-loading, no spilling to
   disk, bounded threads and memory, and the configuration locked so SQL cannot undo any of it.

A query runs for at most ``settings.query_timeout_seconds`` (``PKPI_QUERY_TIMEOUT``; a timer
thread interrupts it) and returns at most ``settings.query_max_rows`` rows
(``PKPI_QUERY_MAX_ROWS``; :attr:`QueryResult.truncated` says when more were left out). Every
refusal or failure is a :class:`QueryError` whose message is one sentence for the analyst;
``pkpi query`` prints it and exits 2.

The DuckDB command line on the published file (README) is outside this sandbox: there, the
analyst's own operating-system permissions are what keep the warehouse out of reach.
"""

from __future__ import annotations

import functools
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import duckdb

from .publish import (PUBLISHED_DB_NAME, PUBLISHED_SCHEMA, PUBLISHED_TABLES, WAREHOUSE_SCHEMA_ALIAS,
                      published_database, published_path)
from .errors import UserError
from .settings import Settings

PUBLISHED_CATALOG = Path(PUBLISHED_DB_NAME).stem
"""The name DuckDB gives the published file's catalog (``kpi_mart.main.kpi_values``)."""

ALLOWED_TABLE_FUNCTIONS = frozenset({"range", "generate_series", "unnest"})
"""Table functions a query may use in FROM: pure generators that read nothing."""

REFUSED_FUNCTIONS = frozenset({"getenv", "current_setting"})
"""Scalar functions refused by name: they read the environment or the machine's settings, not data."""

SANDBOX_THREADS = 2
SANDBOX_MEMORY_LIMIT = "1GB"
"""What one analyst's query may use (the published copy is a few megabytes)."""

ALLOWED = (
    "pkpi query runs one SELECT on the published tables: "
    + ", ".join(PUBLISHED_TABLES)
    + f" (each also as {WAREHOUSE_SCHEMA_ALIAS}.<table>)"
)
"""What is allowed, in words: the start of every refusal."""


class QueryError(UserError, ValueError):
    """The analyst's query was not answered; the message is one sentence saying why and what to do."""


class QueryRefused(QueryError):
    """The query tried to do something other than read the published tables."""


class QueryTimedOut(QueryError):
    """The query ran longer than ``settings.query_timeout_seconds`` and was stopped."""


class QueryFailed(QueryError):
    """DuckDB could not answer the query (a syntax error, an unknown column, out of memory...)."""


@dataclass(frozen=True)
class QueryResult:
    """The answer to one query: column names, at most ``max_rows`` rows, and whether more were cut."""

    columns: list[str]
    rows: list[tuple]
    truncated: bool = False
    max_rows: int = 0

    @property
    def note(self) -> str | None:
        """The sentence to show when rows were left out, else None."""
        if not self.truncated:
            return None
        return (
            f"Only the first {self.max_rows} rows are shown: the query returns more, and "
            "PKPI_QUERY_MAX_ROWS caps what pkpi query returns; add a WHERE or a LIMIT to narrow it."
        )


def _refused(why: str) -> QueryRefused:
    return QueryRefused(f"{ALLOWED}; it refused this query because {why}.")


# --- the connection (lock 2) ------------------------------------------------------------------

_REQUIRED_CONFIG: dict[str, Any] = {
    "autoload_known_extensions": False,
    "autoinstall_known_extensions": False,
    "allow_community_extensions": False,
    "allow_unsigned_extensions": False,
    "temp_directory": "",  # never spill to disk: a query too big for memory_limit fails instead
}
_OPTIONAL_CONFIG: dict[str, Any] = {  # applied when the installed DuckDB knows the setting
    "allow_persistent_secrets": False,
    "python_enable_replacements": False,  # a table name never resolves to a Python variable
    "allow_extension_repositories": "forbidden",
    "max_temp_directory_size": "0B",
}


@functools.lru_cache(maxsize=1)
def _known_settings() -> frozenset[str]:
    con = duckdb.connect(":memory:")
    try:
        return frozenset(r[0] for r in con.execute("select name from duckdb_settings()").fetchall())
    finally:
        con.close()


# Set once the file is open, in this order: DuckDB applies a config dict in its own order, and
# with external access already off it refuses some of the settings above (temp_directory).
# lock_configuration comes last, so no SQL can change any setting back.
_THEN_SET = (
    ("enable_external_access", False),  # no files, no ATTACH, no COPY/EXPORT, no INSTALL/LOAD, no getenv
    ("lock_configuration", True),
)


def sandbox_config() -> dict[str, Any]:
    """The settings the analyst's connection opens with; :func:`open_sandbox` then locks it."""
    config = dict(_REQUIRED_CONFIG)
    known = _known_settings()
    config.update({k: v for k, v in _OPTIONAL_CONFIG.items() if k in known})
    config.update(threads=SANDBOX_THREADS, memory_limit=SANDBOX_MEMORY_LIMIT)
    return config


def open_sandbox(path: Path) -> duckdb.DuckDBPyConnection:
    """Open the published file read-only with DuckDB's own locks on (lock 2); the caller closes it."""
    con = duckdb.connect(str(path), read_only=True, config=sandbox_config())
    try:
        for name, value in _THEN_SET:
            # Already so when another sandbox connection shares this DuckDB instance (and locked it).
            if con.execute(f"select current_setting('{name}')").fetchall()[0][0] != value:
                con.execute(f"set {name} = {str(value).lower()}")
    except BaseException:
        con.close()
        raise
    return con


# --- the statement check (lock 1) -------------------------------------------------------------


def check_query(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    """Raise :class:`QueryRefused` unless ``sql`` is one SELECT that reads only published tables.

    Parsed by DuckDB itself, on the sandbox connection, so the check reads the text exactly as
    the query will be run.
    """
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryFailed(f"DuckDB could not read the query ({_first_line(exc)}); {ALLOWED}.") from None
    if not statements:
        raise _refused("it is empty")
    if len(statements) > 1:
        raise _refused(f"it holds {len(statements)} statements, not one")
    kind = statements[0].type
    if kind != duckdb.StatementType.SELECT:
        # Named as the analyst wrote it (INSTALL, PRAGMA, USE), unless it starts with WITH and so on.
        first = (sql.split() or [""])[0].upper()
        name = first if first.isalpha() and first not in ("WITH", "FROM") else kind.name.replace("_", " ")
        raise _refused(f"it is {_article(name)} {name} statement, not a SELECT")
    tree = con.execute("select json_serialize_sql(?)", [sql]).fetchall()[0][0]
    try:
        tree = json.loads(tree)
        if tree.get("error"):
            raise _refused(f"DuckDB cannot check it ({_shorten(tree.get('error_message', 'no reason given'))})")
        ctes = {name.lower() for name in _cte_names(tree)}
        problem = next(_problems(tree, ctes), None)
    except RecursionError:  # fail closed: what cannot be checked is not run
        raise _refused("it is nested too deeply to be checked") from None
    if problem:
        raise _refused(problem)


def _problems(node: Any, ctes: set[str]) -> Iterator[str]:
    if isinstance(node, list):
        for item in node:
            yield from _problems(item, ctes)
        return
    if not isinstance(node, dict):
        return
    kind = node.get("type")
    if node.get("class") == "FUNCTION" and str(node.get("function_name", "")).lower() in REFUSED_FUNCTIONS:
        yield f"it calls {node['function_name']}(), which reads the machine, not the published tables"
    elif "class" not in node and kind == "BASE_TABLE" and not _is_published(node, ctes):
        name = ".".join(p for p in (node.get("catalog_name"), node.get("schema_name"), node.get("table_name")) if p)
        yield f"it reads {_shorten(name)}, which is not one of them"
    elif "class" not in node and kind == "TABLE_FUNCTION":
        function = node.get("function") or {}
        name = str(function.get("function_name", "")).lower()
        if name not in ALLOWED_TABLE_FUNCTIONS:
            yield f"it calls the table function {_shorten(name)}(), which reads outside the published tables"
    elif "class" not in node and kind == "SHOW_REF" and node.get("query") is None:
        if str(node.get("table_name", "")).strip('"').lower() != "tables":
            yield "it is a SHOW other than SHOW TABLES (use DESCRIBE <table> or SUMMARIZE <table>)"
    for value in node.values():
        yield from _problems(value, ctes)


def _is_published(ref: dict, ctes: set[str]) -> bool:
    catalog = str(ref.get("catalog_name") or "").lower()
    schema = str(ref.get("schema_name") or "").lower()
    table = str(ref.get("table_name") or "").lower()
    if not catalog and not schema and table in ctes:
        return True
    if not catalog and schema == PUBLISHED_CATALOG:  # kpi_mart.kpi_values: catalog.table
        catalog, schema = schema, ""
    if catalog not in ("", PUBLISHED_CATALOG):
        return False
    if schema == "information_schema":  # the published file's own catalogue of tables and columns
        return True
    return schema in ("", PUBLISHED_SCHEMA, WAREHOUSE_SCHEMA_ALIAS) and table in PUBLISHED_TABLES


def _cte_names(node: Any) -> Iterator[str]:
    if isinstance(node, list):
        for item in node:
            yield from _cte_names(item)
    elif isinstance(node, dict):
        for entry in (node.get("cte_map") or {}).get("map") or []:
            yield str(entry.get("key", ""))
        if node.get("type") == "RECURSIVE_CTE_NODE":
            yield str(node.get("cte_name", ""))
        for value in node.values():
            yield from _cte_names(value)


# --- running it -------------------------------------------------------------------------------


def query_published(settings: Settings, sql: str) -> QueryResult:
    """Run one analyst's SELECT on the published mart, in the sandbox; see the module docstring.

    Tables can be named with or without their schema (``kpi_values`` or ``mart.kpi_values``,
    the view kept for SQL written against the warehouse). Raises :class:`QueryRefused`,
    :class:`QueryTimedOut` or :class:`QueryFailed` (each a :class:`QueryError`), or
    FileNotFoundError when nothing has been published yet.
    """
    # Resolved once to the current release's own file: a publish during the query switches
    # the link, not this file (the previous release is kept), and DuckDB's instance cache,
    # keyed by path, never hands back a connection to an older release under the stable name.
    path = published_database(settings)
    if not path.exists():
        raise FileNotFoundError(
            f"There is no published mart at {published_path(settings)} yet: run `pkpi build` (or `pkpi run`) first."
        )
    con = open_sandbox(path)
    try:
        check_query(con, sql)
        return _run(con, sql, settings.query_timeout_seconds, settings.query_max_rows)
    finally:
        con.close()


def _run(con: duckdb.DuckDBPyConnection, sql: str, timeout: float, max_rows: int) -> QueryResult:
    stopped = threading.Event()

    def stop() -> None:
        stopped.set()
        try:
            con.interrupt()
        except duckdb.Error:  # the query ended as the timer fired
            pass

    timer = threading.Timer(timeout, stop)
    timer.daemon = True
    timer.start()
    try:
        relation = con.sql(sql)
        if relation is None:  # DuckDB ran it as something other than a query: never expected
            raise _refused("DuckDB did not run it as a SELECT")
        columns = list(relation.columns)
        # LIMIT on top of the query (not around its text), so a huge result is never built.
        rows = relation.limit(max_rows + 1).fetchall()
    except duckdb.InterruptException:
        if not stopped.is_set():
            raise
        raise QueryTimedOut(
            f"The query was stopped after {timeout:g} seconds, the longest a query may run "
            "(PKPI_QUERY_TIMEOUT); narrow it with a WHERE, fewer joins or a LIMIT and run it again."
        ) from None
    except duckdb.PermissionException:
        raise _refused("DuckDB refused to reach a file, a database, an extension or a setting") from None
    except duckdb.InvalidInputException as exc:
        if "configuration" in str(exc) and "locked" in str(exc):
            raise _refused("it tries to change a setting") from None
        raise QueryFailed(f"The query failed ({_first_line(exc)}); {ALLOWED}.") from None
    except duckdb.OutOfMemoryException:
        raise QueryFailed(
            f"The query needed more than the {SANDBOX_MEMORY_LIMIT} of memory a query may use; "
            "narrow it with a WHERE, fewer joins or a LIMIT and run it again."
        ) from None
    except duckdb.Error as exc:
        raise QueryFailed(f"The query failed ({_first_line(exc)}); {ALLOWED}.") from None
    finally:
        timer.cancel()
        timer.join()  # never interrupt (or touch) the connection after it is closed
    truncated = len(rows) > max_rows
    return QueryResult(columns, rows[:max_rows], truncated, max_rows)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return _shorten(text[0] if text else type(exc).__name__, 300)


def _shorten(text: str, limit: int = 80) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _article(word: str) -> str:
    return "a" if word.upper() == "USE" or word[:1].upper() not in "AEIOU" else "an"
