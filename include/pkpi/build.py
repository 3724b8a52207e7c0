"""Build and test the KPI mart with dbt, then publish its aggregate tables.

:func:`build_mart` runs ``dbt build`` (seeds, models, data tests and unit tests) in-process on
the project in ``dbt_project/``, holding the warehouse's exclusive lock for the whole run, and
raises :class:`BuildFailed` naming every failing node. The reference folder
(``settings.reference_dir``) reaches dbt as the environment variable ``PKPI_REFERENCE_DIR``,
which the ``reference_files`` source reads with DuckDB's read_csv (not as dbt seeds: dbt would
write its run SQL over seed files given by an absolute path); the warehouse file as
``PKPI_WAREHOUSE``, which ``profiles.yml`` reads. dbt's target/ and logs/ go under
``$PKPI_DATA_DIR/dbt`` because the project folder may be read-only in production.

:func:`publish` then writes ``$PKPI_DATA_DIR/published/kpi_mart.duckdb`` and Parquet copies in
``published/parquet/``: the aggregate tables only (never a record-level fact), as one release
(``published/releases/<id>/``) made current by one atomic rename of the ``published/current``
link, so readers see the old release or the new one, never half of one or a mix. The tables are
in the file's default schema (``select * from kpi_values`` works in the DuckDB command line),
with a view ``mart.<table>`` beside each, so SQL written against the warehouse works too.
Published figures go through disclosure control (:mod:`pkpi.publishing`, applying the rules of
:mod:`pkpi.disclosure`), because the published copy leaves the warehouse; the mart itself keeps
every figure exactly.

:func:`generate_docs` writes the dbt documentation site behind ``pkpi docs``. The analyst's
query on the published copy (``pkpi query``) is :func:`pkpi.query.query_published`.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator, Sequence

import duckdb

from .files import exclusive_lock, make_dir, restrictive_umask, secure_tree
from .periods import parse_month
from .settings import Settings
from .warehouse import initialise, warehouse_lock

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

_FAILED_STATUSES = {"error", "fail", "runtime error"}
# dbt keeps process-wide state (flags, adapters, the DuckDB environment): one build at a time.
_DBT_IN_PROCESS = threading.Lock()


class BuildFailed(RuntimeError):
    """dbt could not build or test the mart; ``failures`` lists what failed and why."""

    def __init__(self, message: str, failures: Sequence["NodeOutcome"] = (), result: "BuildResult | None" = None):
        super().__init__(message)
        self.failures = tuple(failures)
        self.result = result


@dataclass(frozen=True)
class NodeOutcome:
    """One node of the dbt run: a seed, model, data test or unit test."""

    unique_id: str
    resource_type: str
    status: str
    message: str | None
    seconds: float

    @property
    def name(self) -> str:
        return self.unique_id.split(".", 2)[-1]

    @property
    def failed(self) -> bool:
        return self.status in _FAILED_STATUSES


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


@dataclass(frozen=True)
class BuildResult:
    """The outcome of :func:`build_mart`."""

    ok: bool
    seconds: float
    nodes: tuple[NodeOutcome, ...]
    target_dir: Path
    log_dir: Path
    published: PublishResult | None = None
    warnings: tuple[NodeOutcome, ...] = field(default=())

    @property
    def failures(self) -> tuple[NodeOutcome, ...]:
        return tuple(n for n in self.nodes if n.failed)

    def count(self, resource_type: str) -> int:
        return sum(1 for n in self.nodes if n.resource_type == resource_type)

    def __str__(self) -> str:
        parts = [
            f"{self.count('seed')} seeds",
            f"{self.count('model')} models",
            f"{self.count('test')} data tests",
            f"{self.count('unit_test')} unit tests",
        ]
        text = f"Built the KPI mart in {self.seconds:.1f}s: {', '.join(parts)} "
        text += "all passed." if self.ok and not self.warnings else f"({len(self.failures)} failed, {len(self.warnings)} warnings)."
        for w in self.warnings:
            text += f"\n  warning: {w.name}: {w.message}"
        if self.published is not None:
            text += f"\n{self.published}"
        return text


# --- running dbt ------------------------------------------------------------------------------


def dbt_dirs(settings: Settings) -> tuple[Path, Path]:
    """Where dbt writes its target/ (artifacts, partial-parse state) and logs/: the data folder."""
    base = settings.data_dir / "dbt"
    return base / "target", base / "logs"


def dbt_environment(settings: Settings) -> dict[str, str]:
    """The environment variables the dbt project reads (profiles.yml and dbt_project.yml)."""
    return {
        "PKPI_WAREHOUSE": str(settings.warehouse_path),
        "PKPI_REFERENCE_DIR": str(settings.reference_dir),
        # No phoning home from a safeguarding data platform.
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DO_NOT_TRACK": "1",
    }


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the duration of an in-process dbt run, then restore them.

    dbt reads env_var() from os.environ, so there is no other way to hand them over in-process.
    """
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def _check_reference_dir(settings: Settings) -> None:
    folder = settings.reference_dir
    if any(ch in str(folder) for ch in "'{}"):
        # The path is spliced into read_csv('...') and a str.format template by dbt-duckdb.
        raise BuildFailed(
            f"The reference folder path {folder} contains a quote or a brace, which the mart "
            "build cannot pass to DuckDB. Move the folder (or link it) to a plain path and point "
            "PKPI_REFERENCE_DIR there."
        )
    required = ("partners.csv", "return_schedule.csv", "courses.csv", "population.csv", "kpi_targets.csv")
    missing = [name for name in required if not (folder / name).is_file()]
    if missing:
        raise BuildFailed(
            f"The reference folder {folder} lacks {', '.join(missing)}, which the mart is built "
            "from. Point PKPI_REFERENCE_DIR at a folder holding the reference files (copy the "
            "shipped seeds/ folder as a starting point) and run `pkpi build` again."
        )


def dbt_args(settings: Settings, command: str | Sequence[str] = "build", period: str | None = None,
             full_refresh: bool = False, extra: Sequence[str] = ()) -> list[str]:
    """The dbt command line build_mart runs (useful to reproduce a build by hand)."""
    target_dir, log_dir = dbt_dirs(settings)
    project = str(settings.dbt_project_dir)
    args = [
        *([command] if isinstance(command, str) else command),
        "--project-dir", project,
        "--profiles-dir", project,
        "--target-path", str(target_dir),
        "--log-path", str(log_dir),
        "--no-use-colors",
        "--log-level", "warn",
        "--log-level-file", "info",
    ]
    # The threshold int_scorecard_disclosure flags mart.scorecard.suppressed with; a reporting
    # month to include even before any of its returns has arrived.
    dbt_vars = {"disclosure_threshold": settings.disclosure_threshold}
    if period is not None:
        dbt_vars["reporting_month"] = period
    args += ["--vars", json.dumps(dbt_vars)]
    if full_refresh:
        args.append("--full-refresh")
    args += list(extra)
    return args


def _outcomes(run_result) -> tuple[NodeOutcome, ...]:
    out = []
    for r in getattr(run_result, "results", None) or ():
        node = r.node
        out.append(
            NodeOutcome(
                unique_id=node.unique_id,
                resource_type=str(getattr(node, "resource_type", "")),
                status=str(r.status),
                message=r.message,
                seconds=float(r.execution_time or 0.0),
            )
        )
    return tuple(out)


def _failure_message(failures: Sequence[NodeOutcome], skipped: int, log_dir: Path) -> str:
    lines = [f"The KPI mart build failed: {len(failures)} node(s) failed"
             + (f" and {skipped} were skipped because of them" if skipped else "") + ":"]
    for f in failures:
        lines.append(f"  - {f.resource_type} {f.name}: {f.status}: {(f.message or '').strip()}")
    lines.append(
        "Nothing was published: published/ still holds the last good build. "
        f"See {log_dir / 'dbt.log'} for the SQL that failed, fix the cause (often a reference "
        "file; a failing test names the rule its rows broke), then run `pkpi build` again."
    )
    return "\n".join(lines)


def run_dbt(settings: Settings, args: Sequence[str]):
    """Invoke dbt in-process with the project's environment; returns dbt's runner result.

    The caller holds the warehouse lock. Only one dbt invocation runs per process at a time.
    """
    from dbt.cli.main import dbtRunner  # imported late: dbt is slow to import

    target_dir, log_dir = dbt_dirs(settings)
    make_dir(settings, target_dir)
    make_dir(settings, log_dir)
    # dbt and DuckDB create their logs, artifacts and .wal with the process umask (pkpi.files).
    with _DBT_IN_PROCESS, _environment(dbt_environment(settings)), restrictive_umask(settings):
        try:
            return dbtRunner().invoke(list(args))
        finally:
            _release_dbt_database()
            secure_tree(settings, target_dir.parent)


def _release_dbt_database() -> None:
    """Make sure dbt-duckdb has closed the warehouse file before anyone else in this process
    opens it (DuckDB refuses a second open of one file with a different configuration).

    profiles.yml sets keep_open: false, which normally suffices; this covers a run that ended
    in an error before dbt closed its connections.
    """
    try:
        from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    except ImportError:  # pragma: no cover - dbt-duckdb is a hard dependency
        return
    env = getattr(DuckDBConnectionManager, "_ENV", None)
    if env is not None:
        try:
            env.close()
        finally:
            DuckDBConnectionManager._ENV = None


def build_mart(settings: Settings, period: str | None = None, full_refresh: bool = False,
               publish_after: bool = True) -> BuildResult:
    """Build and test the KPI mart (``dbt build``), then publish the aggregate tables.

    ``period`` (``YYYY-MM``) makes sure that month is in the mart even before any of its returns
    arrive, so they show as missing. ``full_refresh`` rebuilds the incremental record-level
    facts from scratch. Holds the warehouse's exclusive lock while dbt runs; raises
    :class:`BuildFailed`, listing every failing node, when anything fails.
    """
    if period is not None:
        parse_month(period)
    _check_reference_dir(settings)
    target_dir, log_dir = dbt_dirs(settings)
    initialise(settings)  # raw and audit must exist before dbt reads them as sources
    started = time.monotonic()
    with warehouse_lock(settings, exclusive=True):
        log.info("Building the KPI mart in %s with reference data from %s", settings.warehouse_path, settings.reference_dir)
        outcome = run_dbt(settings, dbt_args(settings, "build", period=period, full_refresh=full_refresh))
    seconds = time.monotonic() - started
    nodes = _outcomes(outcome.result)
    failures = [n for n in nodes if n.failed]
    warnings = tuple(n for n in nodes if n.status == "warn")
    result = BuildResult(
        ok=outcome.success and not failures,
        seconds=seconds,
        nodes=nodes,
        target_dir=target_dir,
        log_dir=log_dir,
        warnings=warnings,
    )
    if outcome.exception is not None:
        raise BuildFailed(
            "dbt could not run the KPI mart build: "
            f"{str(outcome.exception).strip()}\nSee {log_dir / 'dbt.log'}; fix the project or the "
            "reference files it names, then run `pkpi build` again.",
            result=result,
        )
    if not result.ok:
        skipped = sum(1 for n in nodes if n.status == "skipped")
        raise BuildFailed(_failure_message(failures, skipped, log_dir), failures, result)
    log.info("KPI mart built: %d nodes in %.1fs", len(nodes), seconds)
    if publish_after:
        result = replace(result, published=publish(settings))
    return result


def check_freshness(settings: Settings) -> tuple[NodeOutcome, ...]:
    """Run ``dbt source freshness``: how recently each return type was last accepted.

    Returns one outcome per source (status pass, warn or error against the thresholds in
    models/staging/_sources.yml); does not raise on stale sources, since that is information
    for the engineers rather than a broken build.
    """
    _check_reference_dir(settings)
    initialise(settings)
    with warehouse_lock(settings, exclusive=True):
        outcome = run_dbt(settings, dbt_args(settings, ("source", "freshness")))
    if outcome.exception is not None:
        raise BuildFailed(f"dbt could not check source freshness: {outcome.exception}")
    return _outcomes(outcome.result)


# --- documentation ----------------------------------------------------------------------------


DOCS_FILES = ("index.html", "manifest.json", "catalog.json")


def docs_dir(settings: Settings) -> Path:
    """Where :func:`generate_docs` puts the documentation site: ``$PKPI_DATA_DIR/dbt/docs``."""
    return settings.data_dir / "dbt" / "docs"


def generate_docs(settings: Settings) -> Path:
    """Generate the dbt documentation site of the KPI mart; returns the folder holding index.html.

    Runs ``dbt docs generate --static`` in-process under the warehouse's exclusive lock (the
    catalogue of columns and types is read from the warehouse, so build the mart first for a
    complete site). The folder gets ``index.html``, dbt's single-file static page with the
    manifest and catalogue built in (it opens straight from disk, no server needed), plus
    ``manifest.json`` and ``catalog.json`` for tools that want them. The site is assembled
    under a temporary name and renamed into place. Raises :class:`BuildFailed` when dbt fails.
    """
    _check_reference_dir(settings)
    target_dir, log_dir = dbt_dirs(settings)
    initialise(settings)
    with warehouse_lock(settings, exclusive=True):
        outcome = run_dbt(settings, dbt_args(settings, ("docs", "generate"), extra=["--static"]))
    if outcome.exception is not None or not outcome.success:
        reason = str(outcome.exception).strip() if outcome.exception is not None else "see the log"
        raise BuildFailed(
            f"dbt could not generate the documentation site: {reason}\nSee {log_dir / 'dbt.log'}; "
            "fix the project or the reference files it names, then run `pkpi docs` again."
        )
    site = docs_dir(settings)
    make_dir(settings, site.parent)
    temporary = site.with_name(f".docs.{os.getpid()}.tmp")
    _remove((temporary,))
    temporary.mkdir()
    try:
        shutil.copyfile(target_dir / "static_index.html", temporary / "index.html")
        for name in DOCS_FILES[1:]:
            shutil.copyfile(target_dir / name, temporary / name)
        _replace_atomically(temporary, site)
    finally:
        _remove((temporary,))
    secure_tree(settings, site)
    log.info("dbt documentation written to %s", site / "index.html")
    return site


# --- publishing -------------------------------------------------------------------------------


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


def _replace_atomically(temporary: Path, final: Path) -> None:
    """Move a finished file or folder into place in one rename (same filesystem)."""
    if temporary.is_dir():
        old = final.with_name(final.name + ".old")
        if old.exists():
            shutil.rmtree(old)
        if final.exists():
            final.rename(old)
        temporary.rename(final)
        if old.exists():
            shutil.rmtree(old)
    else:
        os.replace(temporary, final)


def _publish_lock(settings: Settings):
    """One publish at a time: clean-up must never remove another publish's temporary release."""
    return exclusive_lock(settings, PUBLISH_LOCK_NAME)


def _point_link(link: Path, target: str) -> None:
    """Make ``link`` a symbolic link to ``target`` in one rename: a new link under a temporary
    name, then ``os.replace`` over the old one, so the name never goes missing."""
    if link.is_symlink() and os.readlink(link) == target:
        return
    temporary = link.with_name(f".{link.name}.{os.getpid()}.link.tmp")
    _remove((temporary,))
    os.symlink(target, temporary)
    if link.is_dir() and not link.is_symlink():
        # A real folder (the layout before releases): a link cannot replace it in one rename,
        # so it moves aside first. Happens once, on the first publish after the upgrade.
        aside = link.with_name(f".{link.name}.{os.getpid()}.old.tmp")
        link.rename(aside)
        os.replace(temporary, link)
        shutil.rmtree(aside)
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
            _remove((entry,))
        elif entry.name == "parquet.old":  # the folder swap of older versions
            _remove((entry,))
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
            _remove((entry,))


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
            _remove((temporary,))  # only left over when writing failed (a crash: the next publish)
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
    from .publishing import apply_disclosure_control

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
                    raise BuildFailed(
                        f"The mart has no {', '.join('mart.' + t for t in missing)} yet, so there "
                        "is nothing to publish. Run `pkpi build` first."
                    )
                for name in PUBLISHED_TABLES:
                    pub.execute(
                        f"create table {PUBLISHED_SCHEMA}.{name} as select * from warehouse.mart.{name}"
                    )
            finally:
                pub.execute("detach warehouse")
        suppressed = apply_disclosure_control(pub, PUBLISHED_SCHEMA, settings.disclosure_threshold)
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


def _remove(paths: Sequence[Path]) -> None:
    for path in paths:
        if path.is_symlink():  # a link is removed itself, never what it points to
            path.unlink()
        elif path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def _has_table(con: duckdb.DuckDBPyConnection, catalog: str, schema: str, table: str) -> bool:
    return bool(
        con.execute(
            "select count(*) from information_schema.tables "
            "where table_catalog = ? and table_schema = ? and table_name = ?",
            [catalog, schema, table],
        ).fetchone()[0]
    )
