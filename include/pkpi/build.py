"""Build and test the KPI mart with dbt, decide its disclosure control once, then publish.

:func:`build_mart` runs ``dbt build`` (seeds, models, data tests and unit tests) in-process on
the project in ``dbt_project/``, holding the warehouse's exclusive lock for the whole run, and
raises :class:`BuildFailed` naming every failing node. The reference folder
(``settings.reference_dir``) reaches dbt as the environment variable ``PKPI_REFERENCE_DIR``,
which the ``reference_files`` source reads with DuckDB's read_csv (not as dbt seeds: dbt would
write its run SQL over seed files given by an absolute path); the warehouse file as
``PKPI_WAREHOUSE``, which ``profiles.yml`` reads. dbt's target/ and logs/ go under
``$PKPI_DATA_DIR/dbt`` because the project folder may be read-only in production.

Still under the lock, once dbt has built the mart, the disclosure decisions over the whole mart
are made once and stored in the warehouse (:func:`pkpi.disclosure.store_decisions`:
``mart.disclosure_decisions``, and ``mart.scorecard.suppressed``), decided again only for the
units (a KPI family in one financial year) whose figures changed, every unit on a full refresh;
the published copy and every scorecard take them from there. Then :func:`pkpi.publish.publish`
writes the published copy.

:func:`generate_docs` writes the dbt documentation site behind ``pkpi docs``. The analyst's
query on the published copy (``pkpi query``) is :func:`pkpi.query.query_published`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator, Sequence

import duckdb

from . import build_inputs
from .errors import PermanentError
from .dbt_contracts import contract_vars
from .disclosure import store_decisions
from .disclosure.rules import dbt_var as disclosure_rules
from .faults import checkpoint
from .files import make_dir, remove_paths, replace_folder, restrictive_umask, secure_tree
from .periods import parse_month
from .progress import Progress, progress
from .publish import PublishResult, publish
from .settings import Settings
from .warehouse import initialise, warehouse_lock

log = logging.getLogger(__name__)

_FAILED_STATUSES = {"error", "fail", "runtime error"}
# dbt keeps process-wide state (flags, adapters, the DuckDB environment): one build at a time.
_DBT_IN_PROCESS = threading.Lock()


class BuildFailed(PermanentError, RuntimeError):
    """dbt could not build or test the mart; ``failures`` lists what failed and why."""

    quotes_system_errors = True  # dbt's and DuckDB's messages: a full disk is read from them

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
class BuildResult:
    """The outcome of :func:`build_mart`."""

    ok: bool
    seconds: float
    nodes: tuple[NodeOutcome, ...]
    target_dir: Path
    log_dir: Path
    published: PublishResult | None = None
    warnings: tuple[NodeOutcome, ...] = field(default=())
    # Set when dbt did not run: nothing the mart is built from had changed since this build.
    up_to_date_since: datetime | None = None

    @property
    def failures(self) -> tuple[NodeOutcome, ...]:
        return tuple(n for n in self.nodes if n.failed)

    def count(self, resource_type: str) -> int:
        return sum(1 for n in self.nodes if n.resource_type == resource_type)

    def __str__(self) -> str:
        if self.up_to_date_since is not None:
            text = ("The KPI mart is up to date: nothing it is built from has changed since its build of "
                    f"{self.up_to_date_since.astimezone(timezone.utc):%Y-%m-%d %H:%M} UTC, so dbt did not run "
                    "(`pkpi build --full-refresh` rebuilds it all the same).")
            return text + (f"\n{self.published}" if self.published is not None else "")
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
        # profiles.yml hands these to DuckDB, so a build never takes the whole machine.
        "PKPI_DUCKDB_MEMORY_LIMIT": settings.duckdb_memory_limit,
        "PKPI_DUCKDB_THREADS": str(settings.duckdb_threads),
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


def dbt_vars(period: str | None = None, project_dir: Path | None = None) -> dict:
    """The vars every dbt run gets: the contracts (the project keeps no copy of them), which rows
    are disclosive (the rule of pkpi.disclosure.rules, for mart.kpi_values.disclosive), a
    reporting month to include even before any of its returns has arrived and, given the dbt
    project, a fingerprint of its macros (dbt's graph fingerprints the models but not the
    macros; int_kpi_inputs recomputes every period of the incremental KPI tables when it changes)."""
    values = {**contract_vars(), **disclosure_rules()}
    if period is not None:
        values["reporting_month"] = period
    if project_dir is not None:
        values["macros_fingerprint"] = macros_fingerprint(project_dir)
    return values


def macros_fingerprint(project_dir: Path) -> str:
    """A digest of the dbt project's macro files (names and contents)."""
    digest = hashlib.sha256()
    for path in sorted((project_dir / "macros").rglob("*.sql")):
        digest.update(path.relative_to(project_dir).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def dbt_args(settings: Settings, command: str | Sequence[str] = "build", period: str | None = None,
             full_refresh: bool = False, extra: Sequence[str] = (), variables: dict | None = None) -> list[str]:
    """The dbt command line build_mart runs (useful to reproduce a build by hand); ``variables``
    are :func:`dbt_vars` for ``period`` when the caller has them already."""
    target_dir, log_dir = dbt_dirs(settings)
    project = str(settings.dbt_project_dir)
    args = [
        *([command] if isinstance(command, str) else command),
        "--project-dir", project,
        "--profiles-dir", project,
        "--target-path", str(target_dir),
        "--log-path", str(log_dir),
        "--no-use-colors",
        # Nothing on the console: pkpi reports every failure and warning itself (BuildFailed,
        # BuildResult), and dbt would print a raw Python traceback for an unexpected error (a
        # full disk writing its artefacts). dbt.log keeps everything, tracebacks included.
        "--log-level", "none",
        "--log-level-file", "info",
    ]
    args += ["--vars", json.dumps(variables if variables is not None else dbt_vars(period, settings.dbt_project_dir))]
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


def run_dbt(settings: Settings, args: Sequence[str], callbacks: Sequence[Callable] = ()):
    """Invoke dbt in-process with the project's environment; returns dbt's runner result.

    ``callbacks`` are given every event dbt fires (whatever its log level). The caller holds the
    warehouse lock. Only one dbt invocation runs per process at a time.
    """
    from dbt.cli.main import dbtRunner  # imported late: dbt is slow to import

    target_dir, log_dir = dbt_dirs(settings)
    make_dir(settings, target_dir)
    make_dir(settings, log_dir)
    # dbt and DuckDB create their logs, artifacts and .wal with the process umask (pkpi.files).
    with _DBT_IN_PROCESS, _environment(dbt_environment(settings)), restrictive_umask(settings):
        try:
            return dbtRunner(callbacks=list(callbacks)).invoke(list(args))
        finally:
            _release_dbt_database()
            secure_tree(settings, target_dir.parent)


def _release_dbt_database() -> None:
    """Close the warehouse file dbt-duckdb holds open (profiles.yml sets keep_open: true)
    before anyone else opens it: this process again (DuckDB refuses a second open of one file
    with a different configuration) or another one (DuckDB's file lock).

    dbt-duckdb keeps its one database in ``DuckDBConnectionManager._ENV``; if an upgrade moves
    it, this fails loudly rather than leave the file open (tests/test_build_resources.py).
    """
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager

    if not hasattr(DuckDBConnectionManager, "_ENV"):
        raise RuntimeError(
            "dbt-duckdb no longer keeps its database in DuckDBConnectionManager._ENV, so pkpi cannot close "
            "the warehouse after dbt: find where it keeps it now and change pkpi.build._release_dbt_database "
            "(tests/test_build_resources.py checks it), or set keep_open: false in dbt_project/profiles.yml."
        )
    env = DuckDBConnectionManager._ENV
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
    facts and KPI tables from scratch. Holds the warehouse's exclusive lock while dbt runs and the disclosure
    decisions over the new mart are stored; raises :class:`BuildFailed`, listing every failing
    node, when anything fails (nothing is published then). When nothing the mart is built from
    has changed since the last good build (:mod:`pkpi.build_inputs`), dbt is not run and the
    result says the mart is up to date; it is still published.
    """
    if period is not None:
        parse_month(period)
    _check_reference_dir(settings)
    target_dir, log_dir = dbt_dirs(settings)
    initialise(settings)  # raw and audit must exist before dbt reads them as sources
    started = time.monotonic()
    with progress() as shown:
        with warehouse_lock(settings, exclusive=True):
            variables = dbt_vars(period, settings.dbt_project_dir)  # once: the digest and dbt's command line
            args = dbt_args(settings, "build", period=period, full_refresh=full_refresh, variables=variables)
            digest, built_at = _inputs(settings, variables, full_refresh)
            if built_at is not None:
                result = BuildResult(ok=True, seconds=time.monotonic() - started, nodes=(), target_dir=target_dir,
                                     log_dir=log_dir, up_to_date_since=built_at)
                log.info("%s", result)
            else:
                log.info("Building the KPI mart in %s with reference data from %s", settings.warehouse_path,
                         settings.reference_dir)
                shown.show("build: starting dbt")
                outcome = run_dbt(settings, args, callbacks=[_NodeCount(shown)])
                seconds = time.monotonic() - started
                result = _build_result(outcome, seconds, target_dir, log_dir)
                log.info("KPI mart built: %d nodes in %.1fs", len(result.nodes), seconds)
                shown.show("build: storing the disclosure decisions", final=True)
                # Once per build, over the mart dbt has just built, before any reader can open it.
                _store_disclosure_decisions(settings, reuse=not full_refresh, inputs=digest)
        if publish_after:
            shown.show("build: publishing the copy for analysts", final=True)
            result = replace(result, published=publish(settings))
    return result


def _inputs(settings: Settings, variables: dict, full_refresh: bool) -> tuple[str, "datetime | None"]:
    """The digest of this build's inputs, and when the last good build was made from the same
    ones (None when there is work to do: then the record of the last good build is removed
    before dbt touches the mart). The caller holds the exclusive lock."""
    with restrictive_umask(settings):
        con = duckdb.connect(str(settings.warehouse_path))
        try:
            digest = build_inputs.inputs_digest(con, settings, variables)
            built_at = None if full_refresh else build_inputs.unchanged_since_last_build(con, digest)
            if built_at is None:
                build_inputs.forget(con)
            return digest, built_at
        finally:
            con.close()


class _NodeCount:
    """A dbt callback drawing ``build: 120/178 dbt nodes`` (pkpi.progress) from dbt's events:
    the node count it announces before running, then each node it finishes (dbt's count leaves
    out unit tests, so they are not counted here either)."""

    def __init__(self, shown: Progress):
        self._shown = shown
        self._total = 0
        self._done = 0
        self._lock = threading.Lock()  # dbt finishes nodes on several threads

    def __call__(self, event) -> None:
        if not self._shown.shown:
            return
        try:
            name = event.info.name
            if name == "ConcurrencyLine":
                self._total = int(event.data.node_count)
            elif name == "NodeFinished" and self._total and event.data.node_info.resource_type != "unit_test":
                with self._lock:
                    self._done += 1
                    self._shown.count("build", min(self._done, self._total), self._total, "dbt nodes")
        except AttributeError:  # an event of another shape (a dbt upgrade): progress never fails a build
            self._shown.shown = False


def _build_result(outcome, seconds: float, target_dir: Path, log_dir: Path) -> "BuildResult":
    """The outcome of a dbt build; raises :class:`BuildFailed` when anything failed."""
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
    return result


def _store_disclosure_decisions(settings: Settings, reuse: bool, inputs: str) -> None:
    """Make and store the disclosure decisions over the freshly built mart
    (:func:`pkpi.disclosure.store_decisions`), deciding again only the units whose figures
    changed unless ``reuse`` is False (a full refresh decides every one), then record the build
    as good, made from ``inputs`` (:mod:`pkpi.build_inputs`). The caller holds the exclusive lock."""
    checkpoint("build.built")
    with restrictive_umask(settings):
        con = duckdb.connect(str(settings.warehouse_path))
        try:
            try:
                store_decisions(con, settings.disclosure_threshold, reuse=reuse)
            except duckdb.Error as exc:
                raise BuildFailed(
                    f"The KPI mart was built, but its disclosure decisions could not be stored: {exc}. "
                    "Nothing was published, and the scorecards refuse the mart until they are: fix the "
                    "cause, then run `pkpi build` again."
                ) from exc
            checkpoint("build.decided")
            try:
                build_inputs.remember(con, inputs)
            except duckdb.Error as exc:  # harmless: without the record the next build runs dbt again
                log.warning("The build could not be recorded as good (%s); the next build runs dbt again.", exc)
        finally:
            con.close()


def check_freshness(settings: Settings) -> tuple[NodeOutcome, ...]:
    """Run ``dbt source freshness``: how recently each return type was last accepted.

    Returns one outcome per source (status pass, warn or error against the thresholds in
    models/staging/_raw_sources.yml and _sources.yml); does not raise on stale sources, since
    that is information for the engineers rather than a broken build.
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
    remove_paths((temporary,))
    temporary.mkdir()
    try:
        shutil.copyfile(target_dir / "static_index.html", temporary / "index.html")
        for name in DOCS_FILES[1:]:
            shutil.copyfile(target_dir / name, temporary / name)
        replace_folder(temporary, site)
    finally:
        remove_paths((temporary,))
    secure_tree(settings, site)
    log.info("dbt documentation written to %s", site / "index.html")
    return site
