"""Publish the mart's aggregate tables: the disclosure-controlled copy that leaves the warehouse.

:func:`publish` writes ``$PKPI_DATA_DIR/published/kpi_mart.duckdb`` and Parquet copies in
``published/parquet/``: the tables in :data:`PUBLISHED_TABLES` only (never a record-level fact),
as one release (``published/releases/<id>/``) made current by one atomic rename of the
``published/current`` link, so readers see the old release or the new one, never half of one or
a mix. The tables are in the file's default schema (``select * from kpi_values`` works in the
DuckDB command line), with a view ``mart.<table>`` beside each, so SQL written against the
warehouse works too (docs/mart.md, the published copy).

The published figures go through disclosure control because the copy leaves the warehouse; the
mart itself keeps every figure exactly. The decisions are the ones ``pkpi build`` stored over
the whole mart (:func:`pkpi.disclosure.load_decisions`), so the copy hides exactly what
``mart.scorecard.suppressed`` and every scorecard hide; :mod:`pkpi.disclosure.applied` hides
them in the copy. ``pkpi build`` (:func:`pkpi.build.build_mart`) publishes after every
successful build; the Airflow build DAG calls :func:`publish` as a task of its own.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb

from .disclosure import DecisionsForAnotherThreshold, apply_decisions, decide_over, load_decisions
from .errors import PermanentError
from .files import exclusive_lock, make_dir, remove_paths, secure_tree
from .settings import Settings
from .warehouse import warehouse_lock

log = logging.getLogger(__name__)

PUBLISHED_TABLES = (
    "kpi_values",
    "scorecard",
    "dim_partner",
    "dim_month",
    "dim_kpi",
    "fct_return_submissions",
)
"""The mart tables that leave the warehouse: aggregates and dimensions, no record-level rows."""

PUBLISHED_DB_NAME = "kpi_mart.duckdb"
PUBLISHED_SCHEMA = "main"
"""Where the published tables live: DuckDB's default schema, so ``select * from kpi_values``
works straight from the DuckDB command line (``duckdb -readonly kpi_mart.duckdb``)."""
PUBLISHED_STORAGE_VERSION = "v1.0.0"
"""The DuckDB storage format of the published file: readable by DuckDB 1.0 and later."""
WAREHOUSE_SCHEMA_ALIAS = "mart"
"""The published copy also has a view ``mart.<table>`` for every table, so SQL copied from the
warehouse (where the tables are ``mart.kpi_values`` and so on) runs unchanged."""


class PublishFailed(PermanentError, RuntimeError):
    """There is nothing fit to publish yet: the message says which command to run first."""


@dataclass(frozen=True)
class PublishResult:
    """What :func:`publish` wrote: the DuckDB copy, the Parquet folder and rows per table."""

    database: Path
    parquet_dir: Path
    row_counts: dict[str, int]
    suppressed_figures: int
    release: Path | None = None  # published/releases/<id>, which the stable paths now point into

    def __str__(self) -> str:
        tables = ", ".join(f"{t} ({n})" for t, n in self.row_counts.items())
        return (
            f"Published {self.database} and {self.parquet_dir}: {tables}; "
            f"{self.suppressed_figures} figure(s) hidden by disclosure control."
        )



PUBLISHED_RELEASES_KEPT = 2
"""Releases kept under ``published/releases/``: the current one and the one before it, so an
analyst's connection opened on the previous file keeps working after a publish."""
RELEASES_DIR = "releases"
CURRENT_LINK = "current"
PUBLISH_LOCK_NAME = "publish.lock"


def published_path(settings: Settings) -> Path:
    """The documented, stable path of the published DuckDB file (a link into the current release)."""
    return settings.published_dir / PUBLISHED_DB_NAME


def current_release(settings: Settings) -> Path | None:
    """The folder of the current release (``published/current`` resolved once), or None.

    A reader that needs the DuckDB file and the Parquet files of the same release resolves
    this once and opens ``<release>/kpi_mart.duckdb`` and ``<release>/parquet/`` from it.
    """
    link = settings.published_dir / CURRENT_LINK
    if not link.is_symlink():
        return None
    release = Path(os.path.realpath(link))
    return release if release.is_dir() else None


def published_database(settings: Settings) -> Path:
    """The current release's DuckDB file, resolved once (the stable path when there are no
    releases yet, e.g. a copy published by an older version)."""
    release = current_release(settings)
    return release / PUBLISHED_DB_NAME if release is not None else published_path(settings)



def _publish_lock(settings: Settings):
    """One publish at a time: clean-up must never remove another publish's temporary release."""
    return exclusive_lock(settings, PUBLISH_LOCK_NAME)


def _point_link(link: Path, target: str) -> None:
    """Make ``link`` a symbolic link to ``target`` in one rename: a new link under a temporary
    name, then ``os.replace`` over the old one, so the name never goes missing."""
    if link.is_symlink() and os.readlink(link) == target:
        return
    temporary = link.with_name(f".{link.name}.{os.getpid()}.link.tmp")
    remove_paths((temporary,))
    os.symlink(target, temporary)
    if link.is_dir() and not link.is_symlink():
        # A real folder (the layout before releases): a link cannot replace it in one rename,
        # so it moves aside first. Happens once, on the first publish after the upgrade.
        aside = link.with_name(f".{link.name}.{os.getpid()}.old.tmp")
        link.rename(aside)
        os.replace(temporary, link)
        remove_paths((aside,))
    else:
        os.replace(temporary, link)


def _clean_published(settings: Settings) -> None:
    """Remove temporaries left by a crashed publish and releases older than the last
    :data:`PUBLISHED_RELEASES_KEPT` (never the current one). Called under the publish lock."""
    out_dir = settings.published_dir
    if not out_dir.is_dir():
        return
    for entry in out_dir.iterdir():
        if entry.name.startswith(".") and (entry.name.endswith(".tmp") or entry.name.endswith(".tmp.wal")):
            remove_paths((entry,))
        elif entry.name == "parquet.old":  # the folder swap of older versions
            remove_paths((entry,))
    releases = out_dir / RELEASES_DIR
    if not releases.is_dir():
        return
    current = current_release(settings)
    current_name = current.name if current is not None and current.parent == releases.resolve() else None
    finished = sorted((e for e in releases.iterdir() if not e.name.startswith(".")), key=lambda e: e.name)
    keep: set[str] = set()
    if current_name is not None:
        keep.add(current_name)
        older = [e.name for e in finished if e.name < current_name]
        keep.update(older[len(older) - (PUBLISHED_RELEASES_KEPT - 1):] if PUBLISHED_RELEASES_KEPT > 1 else [])
    for entry in releases.iterdir():
        # Temporaries (".<id>.tmp"), releases never made current (a crash before the switch)
        # and releases older than the ones kept.
        if entry.name not in keep:
            remove_paths((entry,))


def _release_id() -> str:
    """A new release's folder name: UTC time to the microsecond, then the process id (sorts by age)."""
    now = time.time()
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}Z-{os.getpid()}"


def publish(settings: Settings) -> PublishResult:
    """Write the published copy of the mart: aggregate tables only, disclosure-controlled.

    Each publish is one release, ``published/releases/<id>/`` holding ``kpi_mart.duckdb`` (the
    tables in :data:`PUBLISHED_TABLES` in its default schema ``main``, plus a view
    ``mart.<table>`` for each) and ``parquet/<table>.parquet`` (the same tables). It is written
    complete under a temporary name, renamed into ``releases/``, then made current by one
    atomic rename of the link ``published/current``. The documented paths
    ``published/kpi_mart.duckdb`` and ``published/parquet`` are stable links through
    ``current``, so a reader sees the old release or the new one, never a mix and never a
    missing folder. Temporaries of a crashed publish and all but the last
    :data:`PUBLISHED_RELEASES_KEPT` releases are removed at the start and at the end.
    """
    from .faults import checkpoint

    if not settings.warehouse_path.exists():
        raise FileNotFoundError(
            f"There is no warehouse at {settings.warehouse_path} yet: run `pkpi ingest` and `pkpi build` first."
        )
    out_dir = settings.published_dir
    make_dir(settings, out_dir)
    with _publish_lock(settings):
        _clean_published(settings)
        releases = make_dir(settings, out_dir / RELEASES_DIR)
        release_id = _release_id()
        temporary = releases / f".{release_id}.tmp"
        release = releases / release_id
        make_dir(settings, temporary)
        try:
            counts, suppressed = _write_publication(settings, temporary / PUBLISHED_DB_NAME, temporary / "parquet")
            # DuckDB wrote them with the process umask: as open as PKPI_PUBLISHED_ACCESS says.
            secure_tree(settings, temporary)
            checkpoint("publish.written")
            temporary.rename(release)
        finally:
            remove_paths((temporary,))  # only left over when writing failed (a crash: the next publish)
        checkpoint("publish.renamed")
        _point_link(out_dir / CURRENT_LINK, f"{RELEASES_DIR}/{release_id}")
        checkpoint("publish.switched")
        _point_link(out_dir / PUBLISHED_DB_NAME, f"{CURRENT_LINK}/{PUBLISHED_DB_NAME}")
        _point_link(out_dir / "parquet", f"{CURRENT_LINK}/parquet")
        checkpoint("publish.linked")
        _clean_published(settings)
    result = PublishResult(published_path(settings), out_dir / "parquet", counts, suppressed, release)
    log.info("%s", result)
    return result


def _write_publication(settings: Settings, temp_db: Path, temp_parquet: Path) -> tuple[dict[str, int], int]:
    """Copy the published tables into a new DuckDB file, control them, export Parquet."""
    from .faults import checkpoint

    temp_parquet.mkdir()
    counts: dict[str, int] = {}
    # Written in the storage format of DuckDB 1.0, so an analyst's DuckDB command line opens it
    # even when it is older than the library writing the file (Parquet is there for other tools).
    pub = duckdb.connect()
    try:
        pub.execute(f"attach {_sql_string(temp_db)} as publication (storage_version '{PUBLISHED_STORAGE_VERSION}')")
        pub.execute("use publication")
        # Copy straight from the warehouse, attached read-only under the shared lock, so types
        # survive exactly and no record-level table is ever read.
        with warehouse_lock(settings, exclusive=False):
            pub.execute(f"attach {_sql_string(settings.warehouse_path)} as warehouse (read_only)")
            try:
                missing = [t for t in PUBLISHED_TABLES if not _has_table(pub, "warehouse", "mart", t)]
                if missing:
                    raise PublishFailed(
                        f"The mart has no {', '.join('mart.' + t for t in missing)} yet, so there "
                        "is nothing to publish. Run `pkpi build` first."
                    )
                # The decisions the build stored, read under the same lock as the tables they
                # were made over.
                decisions = _stored_decisions(pub, settings)
                for name in PUBLISHED_TABLES:
                    pub.execute(
                        f"create table {PUBLISHED_SCHEMA}.{name} as select * from warehouse.mart.{name}"
                    )
            finally:
                pub.execute("detach warehouse")
        if decisions is None:
            decisions = decide_over(pub, PUBLISHED_SCHEMA, settings.disclosure_threshold)
        suppressed = apply_decisions(pub, PUBLISHED_SCHEMA, decisions)
        checkpoint("publish.partial")  # the temporary release is half written
        # The mart.<table> views, over the finished (disclosure-controlled) tables.
        pub.execute(f"create schema {WAREHOUSE_SCHEMA_ALIAS}")
        for name in PUBLISHED_TABLES:
            pub.execute(
                f"create view {WAREHOUSE_SCHEMA_ALIAS}.{name} as select * from {PUBLISHED_SCHEMA}.{name}"
            )
            counts[name] = pub.execute(f"select count(*) from {PUBLISHED_SCHEMA}.{name}").fetchone()[0]
            target = temp_parquet / f"{name}.parquet"
            pub.execute(f"copy {PUBLISHED_SCHEMA}.{name} to {_sql_string(target)} (format parquet)")
        pub.execute("checkpoint")
    finally:
        pub.close()
    return counts, suppressed


def _sql_string(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _stored_decisions(con: duckdb.DuckDBPyConnection, settings: Settings):
    """The build's decisions over the attached warehouse's mart; None when they were made with
    another threshold (PKPI_DISCLOSURE_THRESHOLD changed since the build): the copy is then
    decided at the new threshold on its own, until `pkpi build` stores decisions for it."""
    try:
        return load_decisions(con, settings.disclosure_threshold, "warehouse.mart")
    except DecisionsForAnotherThreshold as exc:
        log.warning(
            "Publishing with disclosure threshold %d, but the mart's stored decisions were made "
            "with %d: the published copy is decided on its own, and mart.scorecard.suppressed "
            "and the scorecards follow the new threshold only after `pkpi build`.",
            exc.wanted, exc.stored,
        )
        return None


def _has_table(con: duckdb.DuckDBPyConnection, catalog: str, schema: str, table: str) -> bool:
    return bool(
        con.execute(
            "select count(*) from information_schema.tables "
            "where table_catalog = ? and table_schema = ? and table_name = ?",
            [catalog, schema, table],
        ).fetchone()[0]
    )
