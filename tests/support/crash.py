"""Crash, kill and race real `pkpi` processes, then check that nothing was lost or doubled.

Two parts, used by tests/test_crash_ingest.py, tests/test_crash_random.py and
tests/test_concurrency.py:

**Processes.** :class:`PkpiProcesses` starts `pkpi` commands as real processes. A fresh
``pkpi ingest`` spends some 10 s importing Great Expectations before it looks at landing, which
would make a crash test of every step cost minutes and make a random ``kill -9`` land in the
imports nearly every time. So the commands are started by a *fork server*: one interpreter that
imports pkpi (and Great Expectations) once and forks a child for each command. Each child is a
process of its own that runs exactly what the ``pkpi`` script runs (:func:`pkpi.cli.main` with
its own environment, working folder, stdout and stderr) and ends with its exit status; a crash
checkpoint (``PKPI_CRASH_AT``) ends it with ``os._exit(86)`` and ``kill -9`` ends it for real,
so every lock it held is released by the kernel as after any crash. ``fresh=True`` runs the
installed ``pkpi`` script instead (a new interpreter), for the tests that must show both agree.

**Invariants.** :func:`crash_problems` looks at a data folder after recovery and lists every way
it breaks what issue 11 promises (empty when all is well); :func:`assert_crash_safe` fails with
that list. For every file the test put in landing (:class:`Dropped`):

* exactly one audit row (matched by landing path and checksum), with the expected status, and
  never a ``duplicate`` whose ``duplicate_of`` is the same submission;
* the original bytes kept exactly once, at the audit row's ``stored_path`` (sha256 equal), and
  no other copy of them in archive or quarantine than the audit rows account for; a rejected
  file has its ``errors.csv`` and ``report.html`` beside it; a link has no copy of anything;
* ``validation.json`` beside every copy, naming the load and the gate's outcome;
* nothing left in landing once it has an outcome;
* each rejection notice (and, with receipts on, each receipt) received exactly once by the
  partner's data contact on the loopback SMTP server (:mod:`support.smtp`), and no message
  received twice by anyone;

and for the data folder as a whole: no audit row pointing at a missing file, no temporary file
anywhere (the patterns of ingest, publish and the mailer: :data:`TEMPORARY_SUFFIXES` and
staging folders), nothing left unsettled or undelivered in ``audit.unsettled_loads`` and
``audit.outbox``, no email attempt left ``sending``, each scorecard month received exactly once
by each recipient, and, when asked, the published release whole and consistent and the mart
equal to a clean build.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import duckdb
import pytest

from pkpi.build_inputs import RECORD_TABLE
from pkpi.faults import CRASH_EXIT_CODE
from pkpi.files import file_sha256
from pkpi.gx_results import VALIDATION_FILE
from pkpi.settings import Settings
from support.returns import make_reference

PKPI = Path(sys.executable).with_name("pkpi")
CRASHED = CRASH_EXIT_CODE
UNREAD_CHECKSUM = "not-read"
"""pkpi.ingest.UNREAD_CHECKSUM, the checksum audited for a link (not imported: pkpi.ingest loads
Great Expectations, 10 s, which the test process does not otherwise need)."""

TEMPORARY_SUFFIXES = (".tmp", ".incoming", ".partial", ".part", ".tmp.wal", ".old")
"""Names the platform gives files while it writes them (the mailer's ``.<name>.eml.tmp``, publish
``releases/.<id>.tmp``, ``.<link>.<pid>.link.tmp``, ``parquet.old``, the scorecard's mkstemp
``.<name>.*.tmp``, dbt docs ``.docs.<pid>.tmp``, and ``.<name>.incoming`` of earlier ingests)."""
STAGING_FOLDERS = (".staging",)
"""Folders (in archive/ and quarantine/) where ingest writes a copy before it counts
(pkpi.settling): they may exist, but must be empty once every run has finished."""
NOT_TEMPORARY = ("landing",)
"""Top-level folders whose names are the partners', not the platform's."""


# --- processes -----------------------------------------------------------------------------

_SERVER = r"""
import json, os, sys, traceback
import pkpi.cli, pkpi.ingest, pkpi.gate, pkpi.mailer, pkpi.rejections  # the slow imports, once
import pkpi.suites, pkpi.gx_expectations, pkpi.gx_pandas  # GX itself: the gate imports it only for a file to judge
requests, replies = sys.stdin, os.fdopen(os.dup(1), "w", buffering=1)
null = os.open(os.devnull, os.O_RDONLY)
replies.write("ready\n")
for line in requests:
    req = json.loads(line)
    if "wait" in req:
        _, status = os.waitpid(req["wait"], 0)
        replies.write(json.dumps({"status": os.waitstatus_to_exitcode(status)}) + "\n")
        continue
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            replies.close()
            os.setpgid(0, 0)
            os.dup2(null, 0)
            out = os.open(req["out"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            err = os.open(req["err"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(out, 1)
            os.dup2(err, 2)
            os.environ.clear()
            os.environ.update(req["env"])
            os.chdir(req["cwd"])
            sys.argv = ["pkpi", *req["argv"]]
            try:
                code = pkpi.cli.main(req["argv"])
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
        except BaseException:
            traceback.print_exc()
        finally:
            try:  # what the interpreter does at the end of the `pkpi` script (atexit, flush)
                import atexit
                atexit._run_exitfuncs()
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code if isinstance(code, int) else 1)
    replies.write(json.dumps({"pid": pid}) + "\n")
"""


@dataclass
class Finished:
    """How a `pkpi` process ended: its exit status (negative: the signal that killed it), output."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def __str__(self) -> str:
        return (f"pkpi {' '.join(self.argv)} ended with {self.returncode}\n--- stdout\n{self.stdout[-3000:]}"
                f"\n--- stderr\n{self.stderr[-3000:]}")


@dataclass
class Running:
    """A `pkpi` process that was started and not yet waited for."""

    owner: "PkpiProcesses"
    argv: tuple[str, ...]
    pid: int
    out: Path
    err: Path
    popen: subprocess.Popen | None = None  # fresh=True
    started: float = field(default_factory=time.monotonic)

    def done(self) -> bool:
        """True once the process has ended (it is still to be waited for)."""
        return self.popen.poll() is not None if self.popen is not None else not _alive(self.pid)

    def kill(self) -> None:
        """``kill -9`` the process (harmless when it has already ended)."""
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def wait(self, timeout: float = 600) -> Finished:
        if self.popen is not None:
            try:
                code = self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                code = self.popen.wait()
        else:
            code = self.owner._wait(self.pid, timeout)
        return Finished(self.argv, code, self.out.read_text(errors="replace"), self.err.read_text(errors="replace"))


class PkpiProcesses:
    """Starts `pkpi` commands as real processes (see the module docstring); close() when done."""

    def __init__(self) -> None:
        self._folder = Path(tempfile.mkdtemp(prefix="pkpi-processes-"))
        self._count = 0
        self._server: subprocess.Popen | None = None
        self._lock = threading.Lock()  # one request at a time (tests may start pkpi from threads)

    def _ensure_server(self) -> subprocess.Popen:
        if self._server is None or self._server.poll() is not None:
            env = {k: v for k, v in os.environ.items() if not k.startswith("PKPI_")}
            self._server = subprocess.Popen([sys.executable, "-c", _SERVER], stdin=subprocess.PIPE,
                                            stdout=subprocess.PIPE, text=True, env=env, bufsize=1)
            ready = self._server.stdout.readline()
            if ready.strip() != "ready":
                raise RuntimeError(f"the pkpi fork server did not start: {ready!r}")
        return self._server

    def _ask(self, request: dict) -> dict:
        with self._lock:
            server = self._ensure_server()
            server.stdin.write(json.dumps(request) + "\n")
            server.stdin.flush()
            reply = server.stdout.readline()
        if not reply:
            raise RuntimeError("the pkpi fork server died")
        return json.loads(reply)

    def _wait(self, pid: int, timeout: float) -> int:
        # The fork server is the parent, so it reaps; a child still running after the timeout
        # is killed first so the reply comes.
        deadline = time.monotonic() + timeout
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
        return self._ask({"wait": pid})["status"]

    def start(self, argv: Iterable[str], env: dict[str, str], *, fresh: bool = False) -> Running:
        """Start ``pkpi <argv>`` with exactly ``env`` as its environment."""
        argv = tuple(argv)
        self._count += 1
        out = self._folder / f"{self._count}.out"
        err = self._folder / f"{self._count}.err"
        if fresh:
            with out.open("wb") as o, err.open("wb") as e:
                popen = subprocess.Popen([str(PKPI), *argv], env=env, stdout=o, stderr=e,
                                         stdin=subprocess.DEVNULL, cwd=self._folder)
            return Running(self, argv, popen.pid, out, err, popen)
        reply = self._ask({"argv": list(argv), "env": env, "out": str(out), "err": str(err),
                           "cwd": str(self._folder)})
        return Running(self, argv, reply["pid"], out, err)

    def run(self, argv: Iterable[str], env: dict[str, str], *, fresh: bool = False,
            timeout: float = 600) -> Finished:
        """Run ``pkpi <argv>`` to its end."""
        return self.start(argv, env, fresh=fresh).wait(timeout)

    def close(self) -> None:
        if self._server is not None:
            self._server.stdin.close()
            try:
                self._server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._server.kill()
        shutil.rmtree(self._folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie awaiting its parent's wait counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def pkpi_env(settings: Settings, smtp_port: int | None = None, **extra: str) -> dict[str, str]:
    """The environment of a `pkpi` process working on ``settings``' folders: this process's
    environment without any PKPI_* setting, then the data and reference folders, no quiet
    period, and (with ``smtp_port``) the loopback SMTP server, without retries."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PKPI_")}
    env.update(PKPI_DATA_DIR=str(settings.data_dir), PKPI_REFERENCE_DIR=str(settings.reference_dir),
               PKPI_LANDING_QUIET_SECONDS="0", GX_ANALYTICS_ENABLED="False", NO_COLOR="1")
    if smtp_port is not None:
        env.update(PKPI_SMTP_HOST="127.0.0.1", PKPI_SMTP_PORT=str(smtp_port), PKPI_SMTP_RETRIES="0",
                   PKPI_SMTP_TIMEOUT="10")
    env.update(extra)
    return env


# --- what a test put in landing ------------------------------------------------------------


@dataclass(frozen=True)
class Dropped:
    """One entry a test put in landing, and what must become of it."""

    relative: str  # below landing
    content: bytes | None  # None: a symbolic link (never read)
    expect: str | None = None  # accepted | rejected | duplicate (None: any one outcome)
    notice_to: str | None = None  # the data contact who must get exactly one rejection notice
    receipt_to: str | None = None  # the data contact who must get exactly one receipt (PKPI_SEND_RECEIPTS)

    @property
    def checksum(self) -> str:
        return UNREAD_CHECKSUM if self.content is None else hashlib.sha256(self.content).hexdigest()

    @property
    def name(self) -> str:
        return self.relative.rsplit("/", 1)[-1]


def drop(settings: Settings, relative: str, content: bytes, *, mtime: float | None = None,
         expect: str | None = None, notice_to: str | None = None, receipt_to: str | None = None) -> Dropped:
    """Put a file in landing as a partner's upload would (written whole, then renamed)."""
    path = settings.landing_dir / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.upload")
    temporary.write_bytes(content)
    if mtime is not None:
        os.utime(temporary, (mtime, mtime))
    os.replace(temporary, path)
    return Dropped(relative, content, expect, notice_to, receipt_to)


def drop_link(settings: Settings, relative: str, target: Path, *, notice_to: str | None = None) -> Dropped:
    """Put a symbolic link in landing (it must be refused unread and removed)."""
    path = settings.landing_dir / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(target)
    return Dropped(relative, None, "rejected", notice_to)


# --- the invariants ------------------------------------------------------------------------


def _rows(con, sql: str, params: list | None = None) -> list[dict]:
    cur = con.execute(sql, params or [])
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r)) for r in cur.fetchall()]


def _has_table(con, schema: str, table: str) -> bool:
    return bool(con.execute("SELECT count(*) FROM duckdb_tables() WHERE schema_name = ? AND table_name = ?",
                            [schema, table]).fetchone()[0])


def checked_copy(settings: Settings) -> Path:
    """A copy of the warehouse (with any WAL a crash left replayed into it) beside the data
    folder: the checker never takes the platform's locks, never touches the file itself, and is
    called once every pkpi process has ended."""
    folder = Path(tempfile.mkdtemp(prefix="check-", dir=settings.data_dir.parent))
    copy = folder / "warehouse.duckdb"
    shutil.copy2(settings.warehouse_path, copy)
    wal = settings.warehouse_path.with_name(settings.warehouse_path.name + ".wal")
    if wal.exists():
        shutil.copy2(wal, copy.with_name(copy.name + ".wal"))
    duckdb.connect(str(copy)).close()  # replays the WAL, as the next pkpi process would
    return copy


def open_copy(settings: Settings) -> duckdb.DuckDBPyConnection:
    """A read-only connection to a :func:`checked_copy` of the warehouse."""
    return duckdb.connect(str(checked_copy(settings)), read_only=True)


def temporary_files(settings: Settings) -> list[str]:
    """Every temporary left anywhere in the data folder (outside landing), relative to it."""
    found = []
    root = settings.data_dir
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        relative = here.relative_to(root)
        if relative.parts and relative.parts[0] in NOT_TEMPORARY:
            dirs[:] = []
            continue
        if here.name in STAGING_FOLDERS:
            found += [f"{(relative / n).as_posix()}" for n in sorted(dirs + files)]
            dirs[:] = []
            continue
        for name in sorted(dirs + files):
            lowered = name.lower()
            if lowered.endswith(TEMPORARY_SUFFIXES) or (name.startswith(".") and ".tmp" in lowered):
                found.append((relative / name).as_posix())
    return found


def _stored_files(settings: Settings) -> dict[str, list[str]]:
    """sha256 -> paths (relative to the data folder) of every file in archive/ and quarantine/,
    staging folders excluded (they are reported as temporaries)."""
    found: dict[str, list[str]] = {}
    for area in (settings.archive_dir, settings.quarantine_dir):
        if not area.exists():
            continue
        for folder, dirs, files in os.walk(area):
            dirs[:] = [d for d in dirs if d not in STAGING_FOLDERS]
            for name in files:
                path = Path(folder) / name
                if path.is_symlink():
                    found.setdefault("symlink", []).append(path.relative_to(settings.data_dir).as_posix())
                    continue
                found.setdefault(file_sha256(path), []).append(path.relative_to(settings.data_dir).as_posix())
    return found


def _received(server) -> list[tuple[str, list[str], str]]:
    """(Message-ID, recipients, subject) of every message the loopback server received."""
    out = []
    for r in server.received:
        message = r.message
        out.append((str(message["Message-ID"] or ""), list(r.rcpt_tos), str(message["Subject"] or "")))
    return out


def _validation_problems(what: str, row: dict, path: Path) -> list[str]:
    """What is wrong with the validation.json beside a load's copy (pkpi.gx_results); [] when nothing."""
    if not path.is_file():
        return [f"{what}: {path.name} is missing beside its copy"]
    doc = json.loads(path.read_text(encoding="utf-8"))
    outcome = "rejected" if row["status"] == "rejected" else "accepted"  # a duplicate passed the gate
    if (doc["load_id"], doc["outcome"]) != (row["load_id"], outcome):
        return [f"{what}: {path.name} says {doc['outcome']} {doc['load_id']}, the audit {row['status']} {row['load_id']}"]
    return []


def crash_problems(settings: Settings, dropped: Iterable[Dropped], *, smtp=None,
                   scorecards: dict[str, Iterable[str]] | None = None, published: bool = False,
                   clean: Settings | None = None, uncertain_ok: bool = False) -> list[str]:
    """Every way the data folder breaks the invariants (see the module docstring); [] when none.

    ``smtp``: the loopback server (support.smtp) the notices went to; ``scorecards``: month ->
    the recipients who must each have received that month's scorecard once; ``published``:
    check the current published release; ``clean``: settings of a clean build to compare the
    mart with (``mart_differences``). ``uncertain_ok``: a process killed while the mail server
    had a message (random kills) may leave it ``uncertain``: then it must have arrived at most
    once and stay recorded as uncertain (reported to the engineers, never resent silently).
    """
    dropped = list(dropped)
    problems: list[str] = []
    if not settings.warehouse_path.exists():
        return ["there is no warehouse"]
    con = open_copy(settings)
    try:
        loads = _rows(con, "SELECT * FROM audit.loads")
        deleted = set()
        if _has_table(con, "audit", "deletions"):
            deleted = {r["path"] for r in _rows(con, "SELECT path FROM audit.deletions WHERE outcome = 'deleted'")}
        by_id = {r["load_id"]: r for r in loads}
        stored = _stored_files(settings)
        problems += [f"a symbolic link is kept in archive or quarantine: {p}" for p in stored.pop("symlink", [])]

        for d in dropped:
            what = f"{d.relative}"
            rows = [r for r in loads if r["landing_path"] == d.relative and r["checksum_sha256"] == d.checksum]
            if len(rows) != 1:
                problems.append(f"{what}: {len(rows)} audit rows (want exactly one): "
                                + ", ".join(f"{r['status']} {r['load_id']}" for r in rows))
            if os.path.lexists(settings.landing_dir / d.relative) and rows:
                problems.append(f"{what}: still in landing although it has an outcome")
            if not rows:
                continue
            row = rows[-1]
            if d.expect and row["status"] != d.expect:
                problems.append(f"{what}: recorded as {row['status']}, not {d.expect} ({row['message']})")
            if row["status"] == "duplicate":
                original = by_id.get(row["duplicate_of"])
                if original is None:
                    problems.append(f"{what}: a duplicate of {row['duplicate_of']}, which has no audit row")
                elif original["landing_path"] == d.relative or original["load_id"] == row["load_id"]:
                    problems.append(f"{what}: recorded as a duplicate of itself ({original['load_id']}, "
                                    f"{original['status']})")
            path = row["stored_path"]
            if not path:
                problems.append(f"{what}: its audit row has no stored_path")
                continue
            full = settings.data_dir / path
            if d.content is not None:
                if not full.is_file():
                    problems.append(f"{what}: its copy {path} is missing")
                elif file_sha256(full) != d.checksum:
                    problems.append(f"{what}: its copy {path} does not hold the original bytes "
                                    f"({full.stat().st_size} bytes, not {len(d.content)})")
            if row["status"] == "rejected":
                for beside in ("errors.csv", "report.html"):
                    if not (full.parent / beside).is_file():
                        problems.append(f"{what}: rejected, but {full.parent.relative_to(settings.data_dir)}/"
                                        f"{beside} is missing")
            if path not in deleted:
                problems += _validation_problems(what, row, full.parent / VALIDATION_FILE)

        # Every copy of a dropped file's bytes is one an audit row accounts for, once.
        for checksum in {d.checksum for d in dropped if d.content is not None}:
            wanted = sorted({r["stored_path"] for r in loads if r["checksum_sha256"] == checksum
                             and r["stored_path"] and r["stored_path"] not in deleted})
            found = sorted(stored.get(checksum, []))
            if found != wanted:
                problems.append(f"copies of the bytes {checksum[:12]}: {found} in archive and quarantine, "
                                f"but the audit accounts for {wanted}")

        for r in loads:
            path = r["stored_path"]
            if path and path not in deleted and not (settings.data_dir / path).exists():
                problems.append(f"audit row {r['load_id']} ({r['status']} {r['landing_path']}) points at "
                                f"{path}, which does not exist")

        problems += [f"temporary file left: {p}" for p in temporary_files(settings)]

        if _has_table(con, "audit", "unsettled_loads"):
            left = _rows(con, "SELECT * FROM audit.unsettled_loads")
            problems += [f"load still unsettled after recovery: {r}" for r in left]
        ledger = _rows(con, "SELECT * FROM audit.emails ORDER BY created_at") if _has_table(con, "audit", "emails") else []
        uncertain = {(e["kind"], e["idempotency_key"]) for e in ledger if e["status"] == "uncertain"} if uncertain_ok else set()
        if smtp is not None and _has_table(con, "audit", "outbox"):
            waiting = _rows(con, "SELECT kind, idempotency_key FROM audit.outbox WHERE delivered_at IS NULL")
            problems += [f"notice still waiting in audit.outbox: {r['kind']} {r['idempotency_key']}" for r in waiting
                         if (r["kind"], r["idempotency_key"]) not in uncertain]
        problems += [f"email attempt left '{e['status']}': {e['kind']} {e['idempotency_key']}"
                     for e in ledger if e["status"] == "sending" or (e["status"] == "uncertain" and not uncertain_ok)]
    finally:
        con.close()

    if smtp is not None:
        problems += _email_problems(dropped, ledger, smtp, scorecards or {}, uncertain)
    if published:
        problems += published_problems(settings)
    if clean is not None:
        problems += mart_differences(settings, clean)
    return problems


def _email_problems(dropped: list[Dropped], ledger: list[dict], smtp, scorecards: dict,
                    uncertain: set[tuple[str, str]]) -> list[str]:
    problems = []
    keys = {e["message_id"]: (e["kind"], e["idempotency_key"]) for e in ledger}
    received = _received(smtp)
    per_key = Counter()
    for message_id, recipients, subject in received:
        key = keys.get(message_id)
        if key is None:
            problems.append(f"the SMTP server received '{subject}' ({message_id}), which the ledger does not know")
            continue
        for r in recipients:
            per_key[(key, r.lower())] += 1
    problems += [f"{kind} email {k} received {n} times by {r}" for ((kind, k), r), n in per_key.items() if n > 1]
    for d in dropped:
        for address, ending, what in ((d.notice_to, f"({d.name}) was not accepted", "rejection notices"),
                                      (d.receipt_to, f"({d.name}) was accepted", "receipts")):
            if not address:
                continue
            got = [s for _, recipients, s in received
                   if address.lower() in (r.lower() for r in recipients) and s.endswith(ending)]
            maybe = any(e["subject"].endswith(ending) and (e["kind"], e["idempotency_key"]) in uncertain
                        for e in ledger)
            if len(got) != 1 and not (maybe and len(got) == 0):
                problems.append(f"{d.relative}: {len(got)} {what} received by {address} (want one)")
    for period, recipients in scorecards.items():
        for r in recipients:
            n = per_key.get((("scorecard", period), r.lower()), 0)
            if n != 1 and not (n == 0 and ("scorecard", period) in uncertain):
                problems.append(f"scorecard {period} received {n} times by {r} (want one)")
    return problems


def assert_crash_safe(settings: Settings, dropped: Iterable[Dropped], **checks) -> None:
    """Fail with every broken invariant (see :func:`crash_problems`)."""
    problems = crash_problems(settings, dropped, **checks)
    assert not problems, "after recovery:\n  " + "\n  ".join(problems)


# --- the published release and the mart ----------------------------------------------------


def current_release(settings: Settings) -> Path:
    """Check the layout (stable links through ``current`` into one finished release) and
    return the current release's folder."""
    published = settings.published_dir
    current = published / "current"
    assert current.is_symlink()
    release = Path(os.path.realpath(current))
    assert release.parent == (published / "releases").resolve() and not release.name.startswith(".")
    assert Path(os.path.realpath(published / "kpi_mart.duckdb")) == release / "kpi_mart.duckdb"
    assert Path(os.path.realpath(published / "parquet")) == release / "parquet"
    return release


def release_rows(release: Path) -> dict[str, int]:
    """Row counts of one published release, after checking that its DuckDB tables and Parquet
    files hold exactly the same rows (raises AssertionError otherwise)."""
    from pkpi.publish import PUBLISHED_TABLES

    con = duckdb.connect()
    try:
        con.execute(f"attach '{release / 'kpi_mart.duckdb'}' as pub (read_only)")
        counts = {}
        for table in PUBLISHED_TABLES:
            parquet = f"read_parquet('{release / 'parquet' / (table + '.parquet')}')"
            counts[table] = con.execute(f"select count(*) from pub.main.{table}").fetchone()[0]
            assert con.execute(f"select count(*) from {parquet}").fetchone()[0] == counts[table], table
            for a, b in ((f"pub.main.{table}", parquet), (parquet, f"pub.main.{table}")):
                assert con.execute(f"select count(*) from (select * from {a} except all select * from {b})"
                                   ).fetchone()[0] == 0, f"{table}: the DuckDB file and Parquet differ"
        return counts
    finally:
        con.close()


def published_problems(settings: Settings) -> list[str]:
    """The published copy: ``current`` leads into one finished release, the stable paths into
    it, and its DuckDB file and Parquet files agree."""
    published = settings.published_dir
    current = published / "current"
    if not current.is_symlink():
        return [f"{current} is not a link to a release"]
    release = Path(os.path.realpath(current))
    problems = []
    if release.parent != (published / "releases").resolve() or release.name.startswith(".") or not release.is_dir():
        problems.append(f"published/current leads to {release}, not a finished release")
    for name in ("kpi_mart.duckdb", "parquet"):
        if Path(os.path.realpath(published / name)) != release / name:
            problems.append(f"published/{name} does not lead into the current release")
    try:
        release_rows(release)
    except (AssertionError, duckdb.Error, OSError) as exc:
        problems.append(f"the current release {release.name} is not whole and consistent: {exc}")
    return problems


RUN_COLUMNS = {"disclosure_decisions_made": ("decided_at", "seconds", "units_decided", "units_reused")}
"""Mart columns that say when, how fast and how (units decided again or reused) a build ran, not
what it built: not compared."""
NOT_COMPARED = {RECORD_TABLE.removeprefix("mart.")}
"""pkpi.build_inputs' record of the last good build: when, and with which vars, it ran."""


def mart_differences(settings: Settings, clean: Settings) -> list[str]:
    """Each mart table whose rows differ between the two warehouses (both directions), apart
    from :data:`RUN_COLUMNS`."""
    con = duckdb.connect()
    try:
        con.execute(f"ATTACH '{checked_copy(settings)}' AS a (READ_ONLY)")
        con.execute(f"ATTACH '{checked_copy(clean)}' AS b (READ_ONLY)")
        tables = {}
        for catalog in ("a", "b"):
            tables[catalog] = {t for (t,) in con.execute(
                "SELECT table_name FROM duckdb_tables() WHERE database_name = ? AND schema_name = 'mart'",
                [catalog]).fetchall()}
        problems = [f"mart.{t} is in only one of the two builds" for t in sorted(tables["a"] ^ tables["b"])]
        if not tables["a"]:
            problems.append("the mart has no tables")
        for t in sorted((tables["a"] & tables["b"]) - NOT_COMPARED):
            rows = "SELECT * EXCLUDE (" + ", ".join(RUN_COLUMNS[t]) + ")" if t in RUN_COLUMNS else "SELECT *"
            (extra,) = con.execute(f"SELECT count(*) FROM ({rows} FROM a.mart.{t} EXCEPT ALL {rows} FROM b.mart.{t})"
                                   ).fetchone()
            (missing,) = con.execute(f"SELECT count(*) FROM ({rows} FROM b.mart.{t} EXCEPT ALL {rows} FROM a.mart.{t})"
                                     ).fetchone()
            if extra or missing:
                problems.append(f"mart.{t}: {extra} row(s) not in the clean build, {missing} missing from it")
        return problems
    finally:
        con.close()


def copy_data(settings: Settings, root: Path) -> Settings:
    """A copy of ``settings``' data folder under ``root`` (links copied as links)."""
    shutil.copytree(settings.data_dir, root / "data", symlinks=True)
    return settings.with_overrides(data_dir=(root / "data").resolve())


@pytest.fixture(scope="module")
def processes():
    """The fork server of the test module, closed when the module's tests are done."""
    started = PkpiProcesses()
    yield started
    started.close()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The test reference data (tests/support/returns.py), once per module."""
    return make_reference(tmp_path_factory.mktemp("crash") / "reference")
