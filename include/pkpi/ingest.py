"""Ingest: every file waiting in landing is judged by the gate and then loaded, or quarantined.

What happens to each file (docs/returns/README.md, section 4, as partners read it):

* accepted: its rows and its audit row (and, with ``settings.send_receipts``, the partner's
  receipt, queued in the outbox) are written in one DuckDB transaction (so a failure half-way
  leaves nothing), then the original bytes are archived and the file leaves landing;
* rejected: the original bytes go to quarantine beside ``errors.csv`` and ``report.html``, the
  audit row says why, and the partner's data contact is told;
* either way its Great Expectations result is kept beside the copy (``validation.json``,
  :mod:`pkpi.gx_results`);
* the same bytes as the return's current accepted version: recorded as a duplicate, not loaded;
* a later accepted file for the same return supersedes the earlier one (the mart takes the
  latest); nothing is deleted, so the history stays in raw and audit.

"Later" is the order in which the platform took the files, never a file's timestamp: every
audit row gets ``arrival_seq`` from a sequence when it is written (pkpi.warehouse), and the
duplicate check, ``pkpi status`` and the mart all pick the current version by it. Files waiting
together are taken oldest modification time first, then by name. ``received_at`` (the basis of
on time) is when the upload finished, the file's modification time, but never later than when
the platform took the file: a modification time in the future is replaced by the kernel's
change time (which no tool sets) and noted in the audit message; the file's own time is kept
as ``modified_at``. A return still being written (changed less than ``settings.quiet_seconds``
ago, or changed while it was read) is left in landing with no audit row (pkpi.landing).

Landing is read without trusting it (:mod:`pkpi.landing`): an entry that is not a plain file
(a symbolic link to a file or folder, a pipe, socket or device) is never opened or followed: it
is rejected unread with rule ``not_regular_file`` (``outside_landing`` when a folder on its way
turned out to be a link), audited with the placeholder checksum :data:`UNREAD_CHECKSUM` and size
0, its quarantine folder holds only the errors file and report (no byte of whatever it points
at), and the link itself is removed from landing. A file bigger than
``settings.limits.max_file_bytes`` is rejected with ``file_too_large`` without being read into
memory (it is copied to quarantine in chunks). Temporary, hidden and lock-file names are left
alone until they are ``settings.abandoned_after_hours`` old, then rejected as
``upload_abandoned`` (operating-system files such as ``.DS_Store``: ``system_file``, without a
partner notice) and quarantined with their bytes. Every name and folder name from landing is
made safe (:func:`pkpi.landing.safe_name`) before it reaches the audit, a log line, a report or
a notice, and a notice or report that cannot be made never undoes a file's outcome.

Runs are serialised by an ingest lock, and each file is handled on its own, so one partner's
bad file never stops another's good one. Every outcome goes through the same crash-safe steps
(:mod:`pkpi.settling`): the stored copy is staged, the rows, audit row and the partner's notice
(queued in the outbox, :func:`pkpi.mailer.queue`) are committed in one transaction, then the copy
is renamed into place and the file leaves landing; notices are delivered at the end of the run.
A run that stops anywhere is finished by the next one, which starts by recovering: one audit
row and one stored copy per file, never a file reported as a duplicate of itself, every notice
delivered exactly once.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

from . import gx_results, landing, settling
from .contracts import get_contract
from .errors import PkpiError, is_disk_full
from .faults import checkpoint
from .files import ingest_lock
from .gate import Problem, ReturnKey, Verdict, judge_many, locate
from .landing import LandingEntry, safe_name
from .mailer import deliver_outbox, deliver_queued, queue
from .progress import progress
from .reference import Reference, due_date, load_reference
from .rejections import (
    audit_message, notice_facts, notice_message, receipt_message, report_html, rule_ids, write_quarantine,
)
from .settings import Settings
from .warehouse import connect, transaction

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FileOutcome:
    """What happened to one landing file."""

    load_id: str
    return_type: str | None
    partner_code: str | None
    period: str | None
    file_name: str
    status: str  # accepted | rejected | duplicate
    row_count: int | None
    error_count: int
    stored_path: str | None
    message: str = ""
    problems: tuple[Problem, ...] = ()
    duplicate_of: str | None = None  # a duplicate's: the load id of the current version

    @property
    def known_parts(self) -> tuple[str, ...]:
        """Return type, partner and period, as far as the file's place in landing told them."""
        return tuple(v for v in (self.return_type, self.partner_code, self.period) if v)

    @property
    def where(self) -> str:
        """The file as a person reads it: what is known of its return, then its name
        ("contacts/NCT/2026-03/contacts.csv"; "training/PROB/oops.csv" when a folder is missing)."""
        return "/".join((*self.known_parts, self.file_name))

    def describe(self) -> str:
        """The file's outcome in one line, for the log and the command line: rows, or the rules a
        rejected file broke and where its errors file and report are; never a value from it."""
        if self.status == "rejected":
            rules = ", ".join(rule_ids(list(self.problems))) or "none recorded"
            folder = self.stored_path.rsplit("/", 1)[0] if self.stored_path else "quarantine"
            return f"rejected {self.where}: {self.error_count} problem(s), rules {rules} (see {folder}/)"
        if self.status == "duplicate":
            return f"duplicate {self.where}: the same bytes as load {self.duplicate_of}, not loaded again"
        rows = f"{self.row_count or 0:,} row(s)" + (" (nil return)" if not self.row_count else "")
        return f"accepted {self.where}: {rows}" + (f"; {self.message}" if self.message else "")


@dataclass
class IngestReport:
    outcomes: list[FileOutcome] = field(default_factory=list)

    def _with(self, status: str) -> list[FileOutcome]:
        return [o for o in self.outcomes if o.status == status]

    @property
    def accepted(self) -> list[FileOutcome]:
        return self._with("accepted")

    @property
    def rejected(self) -> list[FileOutcome]:
        return self._with("rejected")

    @property
    def duplicates(self) -> list[FileOutcome]:
        return self._with("duplicate")

    @property
    def changed_return_types(self) -> set[str]:
        """Return types whose raw table gained rows in this run."""
        return {o.return_type for o in self.accepted if o.return_type}

    def summary(self) -> str:
        return (f"{len(self.outcomes)} file(s): {len(self.accepted)} accepted, "
                f"{len(self.rejected)} rejected, {len(self.duplicates)} duplicate(s)")


UNREAD_CHECKSUM = "not-read"
"""audit.loads.checksum_sha256 of an entry that was never read (a link, pipe, socket, device)."""


def pending_entries(settings: Settings, now: float | None = None) -> list[LandingEntry]:
    """Entries the ingest gives an outcome now, oldest first (a resubmission after what it replaces).

    Regular files with a final name that have been quiet for ``settings.quiet_seconds``, every
    link, pipe, socket or device, and temporary, hidden or system files older than
    ``settings.abandoned_after_hours``; fresh ones are left alone. Oldest is by modification
    time (a future one counts as now), then by name: the only signal of arrival for files that
    waited together; the arrival sequence then records the order they were taken in.
    """
    now = time.time() if now is None else now
    entries = [e for e in landing.scan(settings.landing_dir)
               if e.needs_outcome(settings.abandoned_after_hours, now, settings.quiet_seconds)]
    return sorted(entries, key=lambda e: (min(e.mtime, now), e.parts))


def waiting_files(settings: Settings) -> list[Path]:
    """The paths of :func:`pending_entries`, oldest first."""
    return [e.path for e in pending_entries(settings)]


@contextmanager
def _ingest_lock(settings: Settings) -> Iterator[None]:
    """One ingest run at a time, so two runs never judge and move the same file (retention
    takes the same lock: pkpi.files.ingest_lock)."""
    with ingest_lock(settings):
        yield


class IngestIncomplete(PkpiError, RuntimeError):
    """Some files could not be processed because the system failed (not because they were bad).

    Every other file was handled; the failed ones stay in landing for the next run. The first
    failure is chained as ``__cause__`` and decides whether a retry can help (pkpi.errors).
    """

    def __init__(self, report: IngestReport, failures: list[tuple[Path, BaseException]]):
        self.report = report
        self.failures = failures
        names = ", ".join(safe_name(p.name) for p, _ in failures[:5]) + (" ..." if len(failures) > 5 else "")
        first = failures[0][1]
        super().__init__(
            f"{len(failures)} file(s) could not be processed and stay in landing ({names}): "
            f"{type(first).__name__}: {safe_name(first, limit=500)}. {report.summary()} otherwise. Fix the cause (see "
            "the log) and run ingest again."
        )


def ingest_landing(settings: Settings, today: date | None = None) -> IngestReport:
    """Validate and load every file waiting in landing; returns what happened to each.

    A file that fails for a system reason (a database error, a bug) is left in landing and the
    run carries on with the others; :class:`IngestIncomplete` is raised at the end.
    """
    reference = load_reference(settings)
    report = IngestReport()
    failures: list[tuple[Path, BaseException]] = []
    with _ingest_lock(settings), progress() as shown:
        settling.recover(settings)  # finish what a stopped run committed (pkpi.settling)
        waiting = pending_entries(settings)
        checked = done = 0

        def progressed(judged: int = 0) -> None:
            """Redraw the progress line (pkpi.progress); ``judged``: files whose verdict just came."""
            nonlocal checked
            checked += judged
            shown.show(f"ingest: {checked}/{len(waiting)} files checked, {done} done",
                       final=done == len(waiting))

        for group in _read_ahead(waiting):
            taken: list[_Taken | Exception] = []
            for entry in group:
                try:
                    taken.append(_take(settings, entry))
                except Exception as exc:  # this file's failure: recorded below, in its turn
                    taken.append(exc)
            readable = [t for t in taken if isinstance(t, _Taken)]
            progressed(len(taken) - sum(1 for t in readable if t.kind == "return"))  # nothing for the gate
            try:
                verdicts = _judge_taken(settings, readable, reference, today, progressed)
            except Exception as exc:  # the gate failed as a whole: each file fails in its turn
                verdicts = {i: exc for i in range(len(readable))}
            position = {id(t): i for i, t in enumerate(readable)}
            stop = False
            with _Writer(settings) as writer:
                for entry, item in zip(group, taken):
                    done += 1
                    progressed()
                    try:
                        if isinstance(item, Exception):
                            raise item
                        outcome = _act(settings, item, reference, verdicts.get(position[id(item)]), writer)
                        if outcome is None:  # still being written: no outcome, the next run looks again
                            log.info("%s is still arriving: left in landing for a later run.", entry.relative)
                            continue
                    except Exception as exc:  # one file's failure must not stop the other partners' files
                        log.error("could not process %s: %s: %s", entry.relative, type(exc).__name__,
                                  safe_name(exc, limit=500))
                        failures.append((entry.path, exc))
                        writer.close(after_failure=True)  # the next file starts on a clean connection
                        if is_disk_full(exc):  # every other file would fail the same way: they wait
                            log.error("the disk is full: the other %d waiting file(s) were not tried and "
                                      "stay in landing for the next run", len(waiting) - done)
                            stop = True
                            break
                        continue
                    report.outcomes.append(outcome)
            if stop:
                break
        _deliver_notices(settings)
    _log_outcomes(report)
    if failures:
        raise IngestIncomplete(report, failures) from failures[0][1]
    return report


def _log_outcomes(report: IngestReport) -> None:
    """The end of every run's log (an Airflow task's too): the summary, then one line per file,
    a rejected one's with its rules, so nobody has to open quarantine to see why."""
    log.info("ingest: %s", report.summary())
    for outcome in report.outcomes:
        log.info("%s", outcome.describe())


class _Writer:
    """The warehouse connection a group of files' outcomes are written with.

    Opened when the first outcome needs it and kept for the rest of the group, so a file does
    not pay for opening the warehouse (and checkpointing it when it closes): that was most of a
    small file's cost. The warehouse lock is held meanwhile, only while outcomes are written,
    never while the gate judges. Each outcome still has its own transaction and settling.
    """

    def __init__(self, settings: Settings):
        self._settings = settings
        self._stack: ExitStack | None = None
        self._con = None

    def __enter__(self) -> "_Writer":
        return self

    def __exit__(self, *exc) -> None:
        self.close(after_failure=exc[0] is not None)

    def connection(self):
        if self._con is None:
            stack = ExitStack()
            self._con = stack.enter_context(connect(self._settings))
            self._stack = stack
        return self._con

    def close(self, after_failure: bool = False) -> None:
        stack, self._stack, self._con = self._stack, None, None
        if stack is None:
            return
        try:
            stack.close()
        except Exception as exc:
            if not after_failure:
                raise
            # The failure being handled is the one to report; the next file opens its own.
            log.warning("could not close the warehouse after a failure: %s", safe_name(exc, limit=500))


def _deliver_notices(settings: Settings) -> None:
    """Deliver the notices the outcomes queued (pkpi.mailer.deliver_queued), then, with a mail
    server configured, those only written to outbox/ while there was none; a mail failure never
    undoes an ingest (what is not delivered stays queued for the next run)."""
    try:
        deliver_queued(settings)
        if settings.smtp.configured:
            deliver_outbox(settings)
    except Exception as exc:  # the notices stay in the outbox for the next run
        log.warning("could not deliver the partner notices in the outbox: %s", safe_name(exc, limit=500))


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _folder(root: Path, verdict: Verdict, load_id: str) -> Path:
    k = verdict.key
    if k.return_type and k.partner_code and k.period and not any(
        p.rule in ("path_layout",) for p in verdict.problems
    ):
        # Folder names come from landing: never a control character in a path we write.
        return root / safe_name(k.return_type) / safe_name(k.partner_code) / safe_name(k.period) / load_id
    return root / "_unsorted" / load_id


FUTURE_TOLERANCE_SECONDS = 60.0
"""A modification time this far ahead of the platform's clock is noted (less is clock jitter)."""


def _file_times(mtime: float, ctime: float, taken: float | None = None) -> dict:
    """``received_at`` and ``modified_at`` of a file taken at ``taken`` (default now).

    The upload finished at the modification time, never later than the platform took the file;
    a modification time in the future is replaced by the kernel's change time (bounded the same
    way). ``modified_at`` keeps the file's own time, so the audit shows what was replaced.
    """
    taken = time.time() if taken is None else taken
    received = mtime if mtime <= taken else min(ctime or taken, taken)
    return dict(received_at=_utc(received), modified_at=_utc(mtime))


def _time_note(base: dict) -> str:
    """The audit note for a file whose modification time was in the future, else ''."""
    modified, received = base.get("modified_at"), base.get("received_at")
    if modified is None or received is None or (modified - received).total_seconds() <= FUTURE_TOLERANCE_SECONDS:
        return ""
    return (f"the file's modification time {modified:%Y-%m-%d %H:%M} UTC was in the future; "
            f"received_at is when it arrived ({received:%Y-%m-%d %H:%M} UTC)")


def _utc(timestamp: float | None = None) -> datetime:
    """Audit times are naive UTC."""
    moment = datetime.now(timezone.utc) if timestamp is None else datetime.fromtimestamp(timestamp, tz=timezone.utc)
    return moment.replace(tzinfo=None)


def _safe_key(key: ReturnKey) -> ReturnKey:
    """The key as it is audited and shown: folder names made safe (canonical names are unchanged)."""
    return ReturnKey(*(None if v is None else safe_name(v) for v in (key.return_type, key.partner_code, key.period)))


SIDE_FILES = ("errors.csv", "report.html", gx_results.VALIDATION_FILE)
"""What the platform writes beside a stored copy."""


def _stored_name(name: str) -> str:
    """The name the archived or quarantined copy gets: the partner's, made safe, short enough,
    and never the name of a file written beside it (a partner may send back errors.csv)."""
    shown = safe_name(name)
    while len(shown.encode("utf-8")) > 200:
        shown = safe_name(shown, limit=len(shown) - 10)
    return f"original-{shown}" if shown.lower() in SIDE_FILES else shown


def _write_validation(folder: Path, base: dict, verdict: Verdict) -> None:
    """The file's validation.json, into its staging folder (pkpi.gx_results)."""
    gx_results.write(folder, gx_results.document(
        load_id=base["load_id"], return_type=base["return_type"], partner_code=base["partner_code"],
        period=base["period"], file_name=base["file_name"], validated_at=base["validated_at"],
        outcome="accepted" if verdict.accepted else "rejected", problems=verdict.problems,
        suites=verdict.suites))


def ingest_file(settings: Settings, path: Path, reference: Reference,
                today: date | None = None) -> FileOutcome | None:
    """Judge one landing file and act on the verdict (see the module docstring).

    ``path`` must be below landing (ValueError otherwise); it is looked at without following links.
    None when it is a return still being written: it is left in landing, nothing is recorded.
    """
    return _ingest_entry(settings, landing.entry_at(settings.landing_dir, path), reference, today)


READ_AHEAD_BYTES = 64 * 1024 * 1024
"""How many bytes of waiting files are read before they are judged together (pkpi.gate.judge_many):
Great Expectations' cost is mostly per run, so one run for many files; this bounds the memory."""


@dataclass(frozen=True)
class _Taken:
    """One entry as read before judging: what to do with it, and the bytes when there are any."""

    entry: LandingEntry
    kind: str  # unread | arriving | too_large | abandoned | return
    content: bytes | None = None
    stat: os.stat_result | None = None
    what: str = ""
    outside: bool = False
    size: int = 0


def _read_ahead(entries: list[LandingEntry]) -> Iterator[list[LandingEntry]]:
    """The waiting entries in order, in groups holding about :data:`READ_AHEAD_BYTES` of returns
    (the other entries are not read into memory)."""
    group: list[LandingEntry] = []
    size = 0
    for entry in entries:
        counted = entry.size if entry.kind == landing.RETURN else 0
        if group and size + counted > READ_AHEAD_BYTES:
            yield group
            group, size = [], 0
        group.append(entry)
        size += counted
    if group:
        yield group


def _take(settings: Settings, entry: LandingEntry) -> _Taken:
    """Read an entry safely (pkpi.landing) and say what its outcome will be; nothing is acted on."""
    if entry.kind in (landing.NOT_REGULAR, landing.OUTSIDE):
        return _Taken(entry, "unread", what=entry.what, outside=entry.kind == landing.OUTSIDE)
    if entry.is_arriving(settings.quiet_seconds):
        return _Taken(entry, "arriving")
    try:
        content, stat = landing.read_regular(entry, settings.limits.max_file_bytes)
    except landing.NotRegularFile as exc:  # it became a link, pipe... since landing was scanned
        return _Taken(entry, "unread", what=exc.what, outside=exc.outside)
    except landing.FileTooLarge as exc:
        return _Taken(entry, "too_large", size=exc.size)
    except landing.StillArriving:  # replaced or written to since the scan, or while we read it
        return _Taken(entry, "arriving")
    return _Taken(entry, "return" if entry.kind == landing.RETURN else "abandoned", content, stat)


def _judge_taken(settings: Settings, taken: list[_Taken], reference: Reference, today: date | None,
                 judged: Callable[[int], None] | None = None) -> dict[int, "Verdict | Exception"]:
    """The gate's verdicts on the returns among ``taken``, judged together, by position."""
    returns = [(i, t) for i, t in enumerate(taken) if t.kind == "return"]
    verdicts = judge_many([(t.entry.path, t.content) for _, t in returns], settings.landing_dir, reference,
                          today=today, limits=settings.limits, judged=judged)
    return {i: v for (i, _), v in zip(returns, verdicts)}


def _ingest_entry(settings: Settings, entry: LandingEntry, reference: Reference,
                  today: date | None) -> FileOutcome | None:
    """The entry's outcome; None for a return still being written (left untouched, no audit row)."""
    taken = _take(settings, entry)
    verdict = _judge_taken(settings, [taken], reference, today).get(0)
    with _Writer(settings) as writer:
        return _act(settings, taken, reference, verdict, writer)


def _act(settings: Settings, taken: _Taken, reference: Reference,
         verdict: "Verdict | Exception | None", writer: "_Writer") -> FileOutcome | None:
    """Give a taken entry its outcome (a gate failure on it is raised here, as that file's)."""
    entry = taken.entry
    if taken.kind == "unread":
        return _refuse_unread(settings, writer, entry, reference, taken.what, outside=taken.outside)
    if taken.kind == "arriving":
        return None
    if taken.kind == "too_large":
        try:
            return _reject_too_large(settings, writer, entry, reference, taken.size)
        except landing.StillArriving:  # it changed while it was copied: no outcome yet
            return None
    content, stat = taken.content, taken.stat
    if taken.kind == "abandoned":
        return _reject_abandoned(settings, writer, entry, reference, content, stat)
    if isinstance(verdict, Exception):
        raise verdict
    path = entry.path
    checksum = hashlib.sha256(content).hexdigest()
    times = _file_times(stat.st_mtime, stat.st_ctime)  # received_at: see the module docstring
    validated_at = _utc()
    load_id = f"{validated_at:%Y%m%dT%H%M%S%f}-{checksum[:10]}"
    key = verdict.key = _safe_key(verdict.key)
    file_name = safe_name(path.name)
    notes = safe_name("; ".join(verdict.notes), limit=None)  # they may quote a sheet's name
    base = dict(
        load_id=load_id, return_type=key.return_type, partner_code=key.partner_code,
        period=key.period, file_name=file_name,
        landing_path=entry.relative, checksum_sha256=checksum,
        size_bytes=len(content), validated_at=validated_at, **times,
    )

    if verdict.accepted:
        return _accept(settings, writer, reference, entry, verdict, base, content, stat.st_mtime, notes)
    return _reject(settings, writer, reference, entry, verdict, base, content, row_count=verdict.row_count)


def _accept(settings: Settings, writer: _Writer, reference: Reference, entry: LandingEntry, verdict: Verdict,
            base: dict, content: bytes, mtime: float, notes: str) -> FileOutcome:
    """Archive, load and audit an accepted file (or record a duplicate), then settle it; with
    receipts on, the partner's receipt is queued in the same transaction (a duplicate gets none)."""
    key, load_id, checksum = verdict.key, base["load_id"], base["checksum_sha256"]
    name = _stored_name(entry.name)
    place = settling.placement(settings.archive_dir, _folder(settings.archive_dir, verdict, load_id), load_id)
    with settling.staging(settings, place) as folder:
        _write_original(folder / name, content, mtime)
        _write_validation(folder, base, verdict)
    stored = _relative(place.stored(name), settings.data_dir)
    receipt = _receipt(settings, reference, base, key, verdict)
    con = writer.connection()
    with settling.committing(place), transaction(con):
        previous = con.execute(
            """SELECT load_id, checksum_sha256 FROM audit.loads
               WHERE status = 'accepted' AND return_type = ? AND partner_code = ? AND period = ?
               ORDER BY arrival_seq DESC LIMIT 1""",
            [key.return_type, key.partner_code, key.period],
        ).fetchall()  # whole: DuckDB refuses the next statement while a result is unread
        duplicate_of = previous[0][0] if previous and previous[0][1] == checksum else None
        if duplicate_of:
            _audit(con, base, status="duplicate", row_count=verdict.row_count,
                   is_nil=verdict.is_nil, stored_path=stored, duplicate_of=duplicate_of,
                   message=f"same bytes as the current version {duplicate_of}; not loaded again")
        else:
            _load_rows(con, key.return_type, load_id, verdict)
            _audit(con, base, status="accepted", row_count=verdict.row_count,
                   is_nil=verdict.is_nil, stored_path=stored,
                   message=notes or ("nil return" if verdict.is_nil else ""))
            if receipt is not None:  # one per accepted file: its load id is in the key
                queue(con, receipt, "receipt", ":".join(("receipt", key.return_type, key.partner_code,
                                                         key.period, load_id)),
                      period=key.period, partner_code=key.partner_code, load_id=load_id)
        unsettled = settling.record(con, settings, place, entry, "checksum", checksum)
    checkpoint("ingest.committed")
    settling.settle(settings, con, unsettled)
    status = "duplicate" if duplicate_of else "accepted"
    return FileOutcome(load_id, key.return_type, key.partner_code, key.period, base["file_name"], status,
                       verdict.row_count, 0, stored, "duplicate of " + duplicate_of if duplicate_of else notes,
                       duplicate_of=duplicate_of)


def _write_original(path: Path, content: bytes, mtime: float) -> None:
    """The partner's bytes, with the file's own modification time (into a private staging folder)."""
    path.write_bytes(content)
    os.utime(path, (mtime, mtime))


def _reject(settings: Settings, writer: _Writer, reference: Reference, entry: LandingEntry, verdict: Verdict, base: dict,
            content, *, row_count: int | None = None, remove: str = "checksum",
            notify: bool = True) -> FileOutcome:
    """Quarantine, audit and queue the partner's notice, then settle: what every rejection does.

    ``content`` is the bytes, a function writing them (a file too large for memory; it may set
    ``base``'s checksum and size), or None when nothing was read. ``remove``: ``checksum`` (only
    while the landing file still holds the audited bytes), ``entry`` (the very entry scanned, for
    one never read) or ``never`` (see pkpi.settling). The copy, the errors file and the report
    are staged and only moved into quarantine once the audit row is committed.
    """
    key, problems, load_id = verdict.key, verdict.problems, base["load_id"]
    place = settling.placement(settings.quarantine_dir, _folder(settings.quarantine_dir, verdict, load_id), load_id)
    report = _report(settings, reference, base, key, problems)
    with settling.staging(settings, place) as folder:
        written = write_quarantine(folder, _stored_name(entry.name), content, problems, report)
        _write_validation(folder, base, verdict)
    stored = _relative(place.stored(written.name), settings.data_dir)
    summary = audit_message(problems)
    checksum = base["checksum_sha256"]
    outcome = FileOutcome(load_id, key.return_type, key.partner_code, key.period, base["file_name"],
                          "rejected", row_count, len(problems), stored, summary, tuple(problems))
    notice = _notice(settings, reference, outcome, base, key) if notify else None
    if not notify:
        log.info("%s was made by the operating system, not sent by a partner: recorded without a notice",
                 outcome.file_name)
    con = writer.connection()
    with settling.committing(place), transaction(con):
        _audit(con, dict(base, error_rules=rule_ids(problems)), status="rejected", row_count=row_count,
               is_nil=False, stored_path=stored, error_count=len(problems), message=summary)
        if notice is not None:
            # One notice per partner, return and bytes: the same bad file sent twice is told once.
            queue(con, notice, "rejection",
                  ":".join(("rejection", *outcome.known_parts,
                            checksum if checksum != UNREAD_CHECKSUM else load_id)),
                  period=outcome.period, partner_code=outcome.partner_code, load_id=load_id)
        unsettled = settling.record(con, settings, place, entry, remove,
                                    checksum if remove == "checksum" else None)
    checkpoint("ingest.committed")
    settling.settle(settings, con, unsettled)
    return outcome


def _report(settings: Settings, reference: Reference, base: dict, key: ReturnKey, problems: list[Problem]) -> str:
    """The readable report; a failure to render it never stops the file getting its outcome."""
    try:
        return report_html(_facts(settings, reference, base, key), problems=problems, load_id=base["load_id"])
    except Exception as exc:  # the errors file and the audit row still say everything
        log.warning("could not render the report for %s: %s: %s", base["load_id"], type(exc).__name__, exc)
        return ("<!doctype html><meta charset='utf-8'><title>Rejected file</title><p>The report could "
                "not be rendered; the errors file beside it lists every problem.</p>\n")


def _claimed_key(entry: LandingEntry, reference: Reference) -> tuple[ReturnKey, list[Problem]]:
    """Which return an entry the gate does not read claims to be, and its folder-layout problems.

    A link may stand where a folder belongs (a linked partner or period folder): then its own
    name is the folder it claims to be, so the partner it names can be told.
    """
    folders = entry.parts
    if not (entry.kind == landing.NOT_REGULAR and entry.what == landing.LINK and len(folders) <= 3):
        folders = folders[:-1]
    folders = folders[:3]
    placeholder = "\x00"  # no real name holds NUL: marks a level the entry does not reach
    padded = folders + (placeholder,) * (3 - len(folders))
    key, _, problems = locate(entry.root.joinpath(*padded, placeholder), entry.root, reference)
    key = ReturnKey(*(None if v == placeholder else v for v in (key.return_type, key.partner_code, key.period)))
    layout = [p for p in problems if p.rule == "path_layout"]
    return _safe_key(key), layout


def _unread_base(entry: LandingEntry, key: ReturnKey, checksum: str, size: int, mtime: float,
                 ctime: float = 0.0) -> dict:
    """The audit fields of an entry the gate does not judge; its load id does not need its bytes."""
    validated_at = _utc()
    tag = hashlib.sha256("/".join(entry.parts).encode("utf-8", "surrogateescape")).hexdigest()[:10]
    return dict(
        load_id=f"{validated_at:%Y%m%dT%H%M%S%f}-{tag}", return_type=key.return_type,
        partner_code=key.partner_code, period=key.period, file_name=safe_name(entry.name),
        landing_path=entry.relative, checksum_sha256=checksum, size_bytes=size,
        validated_at=validated_at, **_file_times(mtime, ctime),
    )


def _refuse_unread(settings: Settings, writer: _Writer, entry: LandingEntry, reference: Reference, what: str,
                   outside: bool) -> FileOutcome:
    """A link, pipe, socket or device: rejected, audited and removed, its target never touched."""
    key, layout = _claimed_key(entry, reference)
    name = safe_name(entry.name)
    if outside:
        problem = Problem("outside_landing", (
            f"'{name}' is {what}: its path leads outside the landing folder, so it was not opened "
            "and nothing was loaded. Put the file itself in a real folder "
            "landing/<return_type>/<partner_code>/<period>/ and upload it again."))
    else:
        problem = Problem("not_regular_file", (
            f"'{name}' is {what}, not a plain file. Landing accepts plain files only, so it was "
            "not opened or followed, nothing was loaded, and it was removed from landing. Upload "
            "the file itself (not a link or shortcut to it) into the folder "
            "landing/<return_type>/<partner_code>/<period>/."))
    verdict = Verdict(key=key, problems=[problem] + layout)
    base = _unread_base(entry, key, UNREAD_CHECKSUM, 0, entry.mtime, entry.ctime)
    # Reached through a linked folder: nothing of it is in landing to remove (the link is refused
    # on its own when landing is next scanned).
    return _reject(settings, writer, reference, entry, verdict, base, None, remove="never" if outside else "entry")


def _reject_too_large(settings: Settings, writer: _Writer, entry: LandingEntry, reference: Reference, size: int) -> FileOutcome:
    """Over the size limit: never read into memory, copied to quarantine in chunks, rejected."""
    key, layout = _claimed_key(entry, reference)
    limit = settings.limits.max_file_bytes
    problem = Problem("file_too_large", (
        f"The file is {size / 1e6:,.1f} MB; the limit is {limit / 1e6:,.1f} MB, so it was not "
        "read. Split it into smaller files or contact the partnership data team."))
    left = [_abandoned_problem(settings, entry)] if entry.kind != landing.RETURN else []
    verdict = Verdict(key=key, problems=left + [problem] + layout)
    base = _unread_base(entry, key, UNREAD_CHECKSUM, size, entry.mtime, entry.ctime)

    def copy(sink) -> None:  # the audit row is written after the copy: it gets the real checksum
        base["checksum_sha256"], base["size_bytes"], stat = landing.copy_regular(entry, sink)
        base.update(_file_times(stat.st_mtime, stat.st_ctime))

    return _reject(settings, writer, reference, entry, verdict, base, copy,
                   notify=entry.kind != landing.SYSTEM_FILE)


def _reject_abandoned(settings: Settings, writer: _Writer, entry: LandingEntry, reference: Reference, content: bytes,
                      stat) -> FileOutcome:
    """A temporary, hidden, lock or system file left for too long: quarantined with its bytes."""
    key, layout = _claimed_key(entry, reference)
    verdict = Verdict(key=key, problems=[_abandoned_problem(settings, entry)] + layout)
    base = _unread_base(entry, key, hashlib.sha256(content).hexdigest(), len(content), stat.st_mtime,
                        stat.st_ctime)
    return _reject(settings, writer, reference, entry, verdict, base, content,
                   notify=entry.kind != landing.SYSTEM_FILE)


def _abandoned_problem(settings: Settings, entry: LandingEntry) -> Problem:
    """Why a temporary, hidden, lock or system file left in landing was given an outcome."""
    name, hours = safe_name(entry.name), f"{settings.abandoned_after_hours:g}"
    if entry.kind == landing.SYSTEM_FILE:
        return Problem("system_file", (
            f"'{name}' is a file the operating system (Finder or Windows Explorer) makes for its own "
            f"use, not a return. It was not checked or loaded, and after {hours} hours it was moved "
            "from landing to quarantine. Nothing needs to be done."))
    return Problem("upload_abandoned", (
        f"'{name}' {_temporary_reason(entry)} and has not changed for {hours} hours, so it was "
        "treated as an abandoned upload: it was not checked or loaded, and it is kept in "
        "quarantine. If it was meant as a return, upload the whole file again under its final "
        "name (for example contacts.csv) into landing/<return_type>/<partner_code>/<period>/."))


def _temporary_reason(entry: LandingEntry) -> str:
    """Why a name is not a finished return, for the partner."""
    name = entry.name
    if any(f.startswith(landing.IN_PROGRESS_PREFIXES) for f in entry.parts[:-1]):
        return "is in a hidden folder (its name starts with '.' or '~$')"
    if name.startswith("~$"):
        return "is an Office lock file (its name starts with '~$'), not a return"
    if name.startswith("."):
        return "is a hidden file (its name starts with '.')"
    suffix = next((s for s in landing.IN_PROGRESS_SUFFIXES if name.lower().endswith(s)), "a temporary suffix")
    return f"still has an upload tool's temporary name (ending in {suffix})"


def _load_rows(con, return_type: str, load_id: str, verdict: Verdict) -> None:
    if not verdict.row_count:
        return
    columns = ", ".join(get_contract(return_type).column_names)
    con.register("incoming_rows", verdict.rows)
    con.execute(
        f"INSERT INTO raw.{return_type} (load_id, source_row, {columns}) "
        f"SELECT ?, source_row, {columns} FROM incoming_rows",
        [load_id],
    )
    # Only on success: after a failed insert the transaction is aborted and unregister would
    # raise too, hiding the real error; the caller rolls back and the view dies with the connection.
    con.unregister("incoming_rows")


def _audit(con, base: dict, *, status: str, row_count: int | None, is_nil: bool, stored_path: str,
           error_count: int = 0, duplicate_of: str | None = None, message: str = "") -> None:
    note = _time_note(base)  # every audit row passes here: a future modification time is noted
    message = "; ".join(m for m in (message, note) if m)
    row = dict(base, status=status, row_count=row_count, is_nil=is_nil, stored_path=stored_path,
               error_count=error_count, duplicate_of=duplicate_of, message=message)
    names = ", ".join(row)
    con.execute(f"INSERT INTO audit.loads ({names}) VALUES ({', '.join('?' * len(row))})", list(row.values()))


def _facts(settings: Settings, reference: Reference, base: dict, key: ReturnKey):
    """What the partner's email says about the return besides its outcome (pkpi.rejections)."""
    return notice_facts(
        partnership=settings.partnership_name, guide_url=settings.partner_guide_url,
        file_name=base["file_name"], return_type=key.return_type, partner_code=key.partner_code,
        period=key.period, due=due_date(reference, key.return_type, key.partner_code, key.period),
        received_at=base.get("received_at"))


def _notice(settings: Settings, reference: Reference, outcome: FileOutcome, base: dict, key: ReturnKey):
    """The rejection notice for the partner's data contact, or None (no contact, or it cannot be
    made: the file stays rejected and quarantined whatever happens to its notice)."""
    contact = reference.data_contact(outcome.partner_code) if outcome.partner_code else None
    if not contact:
        log.info("no data contact for partner %s; rejection recorded without a notice", outcome.partner_code)
        return None
    try:
        # The outcome's names are already safe (pkpi.landing.safe_name): a name cannot inject a header.
        return notice_message(_facts(settings, reference, base, key), sender=settings.smtp.sender,
                              recipient=contact, problems=list(outcome.problems), load_id=outcome.load_id)
    except Exception as exc:
        log.warning("could not write the rejection notice for %s to partner %s: %s",
                    outcome.load_id, outcome.partner_code, exc)
        return None


def _receipt(settings: Settings, reference: Reference, base: dict, key: ReturnKey, verdict: Verdict):
    """The receipt for an accepted return, or None (receipts are off, the partner has no data
    contact, or it cannot be made: the file stays accepted whatever happens to its receipt)."""
    if not settings.send_receipts:
        return None
    contact = reference.data_contact(key.partner_code) if key.partner_code else None
    if not contact:
        log.info("no data contact for partner %s; return accepted without a receipt", key.partner_code)
        return None
    try:
        partner = reference.partner(key.partner_code).name
        return receipt_message(_facts(settings, reference, base, key), sender=settings.smtp.sender,
                               recipient=contact, partner_name=partner, row_count=verdict.row_count or 0,
                               load_id=base["load_id"])
    except Exception as exc:
        log.warning("could not write the receipt for %s to partner %s: %s", base["load_id"], key.partner_code, exc)
        return None
