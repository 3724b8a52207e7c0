"""Ingest: every file waiting in landing is judged by the gate and then loaded, or quarantined.

What happens to each file is section 5 of the contract:

* accepted: its rows and its audit row are written in one DuckDB transaction (so a failure
  half-way leaves nothing), then the original bytes are archived and the file leaves landing;
* rejected: the original bytes go to quarantine beside ``errors.csv`` and ``report.html``, the
  audit row says why, and the partner's data contact is told;
* the same bytes as the return's current accepted version: recorded as a duplicate, not loaded;
* a later accepted file for the same return supersedes the earlier one (the mart takes the
  latest); nothing is deleted, so the history stays in raw and audit.

Runs are serialised by an ingest lock, and each file is handled on its own, so one partner's
bad file never stops another's good one. Running ingest twice is harmless: a file is only
removed from landing after its outcome is committed, and a file whose outcome was committed but
which is still in landing (a crash in between) is recognised by checksum on the next run.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Iterator

from .contracts import get_contract
from .gate import Problem, Verdict, is_in_progress, judge
from .reference import Reference, load_reference
from .rejections import audit_message, notice_message, report_html, write_quarantine
from .settings import Settings
from .warehouse import connect

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


def waiting_files(settings: Settings) -> list[Path]:
    """Files in landing, oldest first, so a resubmission is processed after what it replaces."""
    root = settings.landing_dir
    if not root.exists():
        return []
    files = [p for p in root.rglob("*") if p.is_file() and not is_in_progress(p)]
    return sorted(files, key=lambda p: (p.stat().st_mtime, str(p)))


@contextmanager
def _ingest_lock(settings: Settings) -> Iterator[None]:
    """One ingest run at a time, so two runs never judge and move the same file."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(settings.data_dir / "ingest.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


class IngestIncomplete(RuntimeError):
    """Some files could not be processed because the system failed (not because they were bad).

    Every other file was handled; the failed ones stay in landing for the next run. The first
    failure is chained as ``__cause__``.
    """

    def __init__(self, report: IngestReport, failures: list[tuple[Path, BaseException]]):
        self.report = report
        self.failures = failures
        names = ", ".join(p.name for p, _ in failures[:5]) + (" ..." if len(failures) > 5 else "")
        first = failures[0][1]
        super().__init__(
            f"{len(failures)} file(s) could not be processed and stay in landing ({names}): "
            f"{type(first).__name__}: {first}. {report.summary()} otherwise. Fix the cause (see "
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
    with _ingest_lock(settings):
        for path in waiting_files(settings):
            try:
                outcome = ingest_file(settings, path, reference, today=today)
            except Exception as exc:  # one file's failure must not stop the other partners' files
                log.error("could not process %s: %s: %s", path.name, type(exc).__name__, exc)
                failures.append((path, exc))
                continue
            report.outcomes.append(outcome)
            log.info("%s %s/%s/%s %s: %s", outcome.status, outcome.return_type, outcome.partner_code,
                     outcome.period, outcome.file_name, outcome.message or f"{outcome.row_count} row(s)")
    log.info("ingest: %s", report.summary())
    if failures:
        raise IngestIncomplete(report, failures) from failures[0][1]
    return report


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _store(folder: Path, name: str, content: bytes, mtime: float) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    tmp = folder / f".{name}.incoming"
    tmp.write_bytes(content)
    os.utime(tmp, (mtime, mtime))
    os.replace(tmp, target)
    return target


def _leave_landing(path: Path, checksum: str) -> None:
    """Remove the landing file, unless the partner replaced it while we worked on it."""
    try:
        if hashlib.sha256(path.read_bytes()).hexdigest() == checksum:
            path.unlink()
    except FileNotFoundError:
        pass


def _folder(root: Path, verdict: Verdict, load_id: str) -> Path:
    k = verdict.key
    if k.return_type and k.partner_code and k.period and not any(
        p.rule in ("path_layout",) for p in verdict.problems
    ):
        return root / k.return_type / k.partner_code / k.period / load_id
    return root / "_unsorted" / load_id


def ingest_file(settings: Settings, path: Path, reference: Reference,
                today: date | None = None) -> FileOutcome:
    """Judge one landing file and act on the verdict (see the module docstring)."""
    content = path.read_bytes()
    stat = path.stat()
    checksum = hashlib.sha256(content).hexdigest()
    # Audit times are UTC; received is when the upload finished (the file's modification time).
    received_at = datetime.fromtimestamp(stat.st_mtime, tz=timezone.utc).replace(tzinfo=None)
    verdict = judge(path, content, settings.landing_dir, reference, today=today)
    validated_at = datetime.now(timezone.utc).replace(tzinfo=None)
    load_id = f"{validated_at:%Y%m%dT%H%M%S%f}-{checksum[:10]}"
    key = verdict.key
    base = dict(
        load_id=load_id, return_type=key.return_type, partner_code=key.partner_code,
        period=key.period, file_name=path.name,
        landing_path=_relative(path, settings.landing_dir), checksum_sha256=checksum,
        size_bytes=len(content), received_at=received_at, validated_at=validated_at,
    )

    if verdict.accepted:
        with connect(settings) as con:
            previous = con.execute(
                """SELECT load_id, checksum_sha256 FROM audit.loads
                   WHERE status = 'accepted' AND return_type = ? AND partner_code = ? AND period = ?
                   ORDER BY received_at DESC, validated_at DESC, load_id DESC LIMIT 1""",
                [key.return_type, key.partner_code, key.period],
            ).fetchone()
            duplicate_of = previous[0] if previous and previous[1] == checksum else None
            folder = _folder(settings.archive_dir, verdict, load_id)
            stored = _relative(folder / path.name, settings.data_dir)
            con.execute("BEGIN TRANSACTION")
            try:
                if duplicate_of:
                    _audit(con, base, status="duplicate", row_count=verdict.row_count,
                           is_nil=verdict.is_nil, stored_path=stored, duplicate_of=duplicate_of,
                           message=f"same bytes as the current version {duplicate_of}; not loaded again")
                else:
                    _load_rows(con, key.return_type, load_id, verdict)
                    _audit(con, base, status="accepted", row_count=verdict.row_count,
                           is_nil=verdict.is_nil, stored_path=stored,
                           message="; ".join(verdict.notes) or ("nil return" if verdict.is_nil else ""))
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        _store(folder, path.name, content, stat.st_mtime)
        _leave_landing(path, checksum)
        status = "duplicate" if duplicate_of else "accepted"
        return FileOutcome(load_id, key.return_type, key.partner_code, key.period, path.name, status,
                           verdict.row_count, 0, stored,
                           "duplicate of " + duplicate_of if duplicate_of else "; ".join(verdict.notes))

    problems = verdict.problems
    folder = _folder(settings.quarantine_dir, verdict, load_id)
    report = report_html(file_name=path.name, return_type=key.return_type, partner_code=key.partner_code,
                         period=key.period, problems=problems, received_at=received_at, load_id=load_id)
    stored = _relative(write_quarantine(folder, path.name, content, problems, report), settings.data_dir)
    summary = audit_message(problems)
    with connect(settings) as con:
        _audit(con, base, status="rejected", row_count=verdict.row_count, is_nil=False,
               stored_path=stored, error_count=len(problems), message=summary)
    _leave_landing(path, checksum)
    outcome = FileOutcome(load_id, key.return_type, key.partner_code, key.period, path.name,
                          "rejected", verdict.row_count, len(problems), stored, summary, tuple(problems))
    _notify_partner(settings, reference, outcome, checksum)
    return outcome


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
    row = dict(base, status=status, row_count=row_count, is_nil=is_nil, stored_path=stored_path,
               error_count=error_count, duplicate_of=duplicate_of, message=message)
    names = ", ".join(row)
    con.execute(f"INSERT INTO audit.loads ({names}) VALUES ({', '.join('?' * len(row))})", list(row.values()))


def _notify_partner(settings: Settings, reference: Reference, outcome: FileOutcome, checksum: str) -> None:
    """Email the partner's data contact which rules failed; never let email failure undo the verdict."""
    contact = reference.data_contact(outcome.partner_code) if outcome.partner_code else None
    if not contact:
        log.info("no data contact for partner %s; rejection recorded without a notice", outcome.partner_code)
        return
    from .mailer import deliver  # delivery is its own stage; imported when a notice is due

    message = notice_message(
        partnership=settings.partnership_name, sender=settings.smtp.sender, recipient=contact,
        file_name=outcome.file_name, return_type=outcome.return_type, partner_code=outcome.partner_code,
        period=outcome.period, problems=list(outcome.problems), load_id=outcome.load_id,
    )
    key = f"rejection:{outcome.return_type}:{outcome.partner_code}:{outcome.period}:{checksum}"
    try:
        deliver(settings, message, kind="rejection", idempotency_key=key,
                period=outcome.period, partner_code=outcome.partner_code)
    except Exception as exc:  # the file stays rejected and quarantined whatever the mail server does
        log.warning("could not send the rejection notice for %s to partner %s: %s",
                    outcome.load_id, outcome.partner_code, exc)
