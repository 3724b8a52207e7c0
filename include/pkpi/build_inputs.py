"""What a build of the KPI mart is made from, as one digest: a build with nothing new is not run.

A dbt build of the mart is a function of its inputs and nothing else (no model reads the clock):
the rows of its sources (every raw table and ``audit.loads``, :data:`SOURCE_TABLES`), the
reference files, the dbt project, the vars ``pkpi build`` gives dbt (the contracts, the
disclosure rule, the reporting month), the disclosure threshold, and the code that runs it
(dbt-core, dbt-duckdb, DuckDB and pkpi itself). :func:`pkpi.build.build_mart` records the digest
of those inputs in ``mart.last_good_build`` once a build has passed every test and its
disclosure decisions are stored, with the mart's shape then (its tables and their row counts).
It removes the record before dbt starts, so a build that fails or is killed leaves none. A later
build whose inputs have the same digest, over a mart of the same shape, has nothing to do and
skips dbt: the daily build, a month run again and a second ``pkpi run`` then take a second, not
a build. ``pkpi build --full-refresh`` always builds.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path
from typing import Any, Mapping

import duckdb

from .files import file_sha256, source_files
from .settings import Settings
from .warehouse import transaction

RECORD_TABLE = "mart.last_good_build"
# The warehouse tables dbt reads (models/staging/_sources.yml, _raw_sources.yml); the reference
# files are the `reference_files` source. tests/test_build_inputs.py checks the manifest agrees.
SOURCE_TABLES = "schema_name = 'raw' or (schema_name = 'audit' and table_name = 'loads')"
_PACKAGES = ("dbt-core", "dbt-duckdb", "duckdb")
_SCHEME = "1"  # bump when what goes into the digest changes


def inputs_digest(con: duckdb.DuckDBPyConnection, settings: Settings, dbt_vars: Mapping[str, Any]) -> str:
    """The digest of everything a build given ``dbt_vars`` (:func:`pkpi.build.dbt_vars`) would be
    made from. Where the data folder is (dbt's target and log paths) is not an input."""
    digest = hashlib.sha256()

    def part(*values: object) -> None:
        digest.update(json.dumps([str(v) for v in values]).encode() + b"\n")

    part("scheme", _SCHEME, settings.disclosure_threshold, *(f"{p}=={version(p)}" for p in _PACKAGES))
    part("vars", json.dumps(dbt_vars, sort_keys=True))
    for schema, table in con.execute(
        f"select schema_name, table_name from duckdb_tables() where {SOURCE_TABLES} order by 1, 2"
    ).fetchall():
        columns = con.execute(
            "select column_name, data_type from duckdb_columns() where schema_name = ? and table_name = ? "
            "order by column_index", [schema, table]).fetchall()
        # Order-free: the same rows in another physical order are the same input.
        count, total = con.execute(f'select count(*), coalesce(sum(hash(t)), 0) from "{schema}"."{table}" t').fetchall()[0]
        part("table", schema, table, columns, count, total)
    for path in sorted(settings.reference_dir.glob("*.csv")):
        part("reference", path.name, file_sha256(path))
    for label, root, pattern in (("project", settings.dbt_project_dir, "*"), ("pkpi", Path(__file__).parent, "*.py"),
                                 ("pkpi", Path(__file__).parent / "contracts", "*.yml")):
        for path in source_files(root, pattern):
            relative = path.relative_to(root)
            if not _generated(label, relative):
                part(label, relative.as_posix(), file_sha256(path))
    return digest.hexdigest()


def _generated(label: str, relative: Path) -> bool:
    # dbt's own output, should anyone run dbt in the project folder by hand.
    return label == "project" and relative.parts[0] in ("target", "logs")


def mart_shape(con: duckdb.DuckDBPyConnection) -> str:
    """The mart's tables with their row counts, and its views, outside the sources: a table
    dropped or emptied by hand since the last good build makes the next build run."""
    tables = con.execute(
        f"select schema_name, table_name from duckdb_tables() where not ({SOURCE_TABLES}) and schema_name <> 'audit' "
        f"and schema_name || '.' || table_name <> '{RECORD_TABLE}' order by 1, 2").fetchall()
    shape = [[schema, table, con.execute(f'select count(*) from "{schema}"."{table}"').fetchone()[0]]
             for schema, table in tables]
    shape += con.execute("select schema_name, view_name from duckdb_views() where not internal order by 1, 2").fetchall()
    return hashlib.sha256(json.dumps([list(map(str, r)) for r in shape]).encode()).hexdigest()


def last_good_build(con: duckdb.DuckDBPyConnection) -> tuple[str, str, datetime] | None:
    """The recorded inputs digest, mart shape and time of the last good build, if any."""
    if not _has_record_table(con):
        return None
    row = con.execute(f"select inputs_digest, mart_shape, built_at from {RECORD_TABLE}").fetchone()
    return tuple(row) if row else None  # type: ignore[return-value]


def unchanged_since_last_build(con: duckdb.DuckDBPyConnection, digest: str) -> datetime | None:
    """When the last good build was made, if it was made from ``digest`` and the mart still has
    its shape; None when this build has work to do."""
    last = last_good_build(con)
    if last is None or last[0] != digest or last[1] != mart_shape(con):
        return None
    return last[2]


def forget(con: duckdb.DuckDBPyConnection) -> None:
    """Remove the record: dbt is about to change the mart."""
    if _has_record_table(con):
        with transaction(con):
            con.execute(f"delete from {RECORD_TABLE}")


def remember(con: duckdb.DuckDBPyConnection, digest: str) -> None:
    """Record ``digest`` as the inputs of the mart as it now is (built, tested, decided)."""
    shape = mart_shape(con)
    with transaction(con):
        con.execute("create schema if not exists mart")
        con.execute(f"create table if not exists {RECORD_TABLE} "
                    "(inputs_digest varchar not null, mart_shape varchar not null, built_at timestamptz not null)")
        con.execute(f"delete from {RECORD_TABLE}")
        con.execute(f"insert into {RECORD_TABLE} values (?, ?, ?)", [digest, shape, datetime.now(timezone.utc)])


def _has_record_table(con: duckdb.DuckDBPyConnection) -> bool:
    return bool(con.execute(
        "select count(*) from duckdb_tables() where schema_name = 'mart' and table_name = 'last_good_build'"
    ).fetchone()[0])
