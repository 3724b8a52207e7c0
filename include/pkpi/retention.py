"""Retention: partners' original files are deleted when the data-sharing agreement says so.

Every file the platform keeps from a partner (the archived original of an accepted or duplicate
return; the quarantined original of a rejected one, with its errors file and report) is kept
for ``settings.retention_days`` (``PKPI_RETENTION_DAYS``, default 2557 days: seven years)
after the gate judged it (``audit.loads.validated_at``), then deleted. A quarantined file
rejected because it holds direct identifiers (rules in :data:`IDENTIFIER_RULES`) is kept for
``settings.identifier_retention_days`` only (``PKPI_IDENTIFIER_RETENTION_DAYS``, default 30):
long enough for the partner to be told and to ask for the errors file, no longer, because
those are exactly the values the warehouse refuses to hold.

A load folder that no audit row knows (a run stopped between writing quarantine and recording
the load; the file stayed in landing and was judged again under a new load) is an *orphan*,
deleted like an identifier file, by the folder's age.

Only files are deleted: the raw rows, the load audit and the mart are untouched, so every
figure stays what it was (and dbt never reads the files).

Each deletion is audited in ``audit.deletions`` (load_id, path, why, bytes, deleted_at), with
the discipline of the rest of the warehouse: the intention is recorded and committed first
(``deleted_at`` NULL), the file is deleted, then the row is completed. A crash in between leaves
an intention, which the next run finishes before anything else. Deleting never follows a
symbolic link and never leaves the archive or quarantine folder: the load's folder is reached
one component at a time with ``O_NOFOLLOW`` (:func:`pkpi.files.open_dir_beneath`), entries are
unlinked relative to it (a link is removed, its target never touched), and a path in the audit
that points anywhere else is refused and reported. Emptied folders are pruned up to the
archive or quarantine folder itself.
"""

from __future__ import annotations

import logging
import os
import re
import stat
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from .files import UnsafePath, close_all, ingest_lock, open_dir_beneath, relative_parts
from .settings import Settings
from .warehouse import connect, transaction

log = logging.getLogger(__name__)

IDENTIFIER_RULES = ("column_identifier", "identifier_value")
"""Rules that reject a file because it holds direct identifiers: kept for the shorter period."""

WHY_RETENTION = "retention"
WHY_IDENTIFIERS = "identifiers"
WHY_ORPHAN = "orphan"
"""A load folder with no audit row (a run that stopped between writing quarantine and its audit
row; the file stayed in landing and was judged again): kept as long as an identifier file."""
LOAD_ID_RE = re.compile(r"^\d{8}T\d{12}-[0-9a-f]{10}$")
"""How pkpi.ingest names a load (and its folder): validated time and checksum prefix."""
AREAS = ("archive", "quarantine")
"""The folders of the data folder retention may delete in, and nowhere else."""


@dataclass(frozen=True)
class Deletion:
    """One file retention deleted (or would delete, or refused to)."""

    load_id: str
    path: str  # relative to the data folder
    why: str  # retention | identifiers | orphan
    bytes: int | None
    outcome: str | None = None  # deleted | missing | refused; None when only planned
    detail: str = ""

    def __str__(self) -> str:
        size = f", {self.bytes} bytes" if self.bytes is not None else ""
        state = self.outcome or "due"
        extra = f": {self.detail}" if self.detail else ""
        return f"{state} {self.path} (load {self.load_id}, {self.why}{size}){extra}"


@dataclass
class RetentionReport:
    """What a retention run did (or, dry, would do)."""

    now: datetime
    dry_run: bool = False
    deletions: list[Deletion] = field(default_factory=list)

    def _with(self, outcome: str | None) -> list[Deletion]:
        return [d for d in self.deletions if d.outcome == outcome]

    @property
    def deleted(self) -> list[Deletion]:
        return self._with("deleted")

    @property
    def refused(self) -> list[Deletion]:
        return self._with("refused")

    @property
    def loads(self) -> set[str]:
        return {d.load_id for d in self.deletions}

    def summary(self) -> str:
        if self.dry_run:
            size = sum(d.bytes or 0 for d in self.deletions)
            return (f"Retention (dry run, nothing deleted): {len(self.deletions)} file(s) of "
                    f"{len(self.loads)} load(s) are due for deletion ({size} bytes).")
        size = sum(d.bytes or 0 for d in self.deleted)
        text = (f"Retention: deleted {len(self.deleted)} file(s) of {len(self.loads)} load(s) "
                f"({size} bytes)")
        missing = len(self._with("missing"))
        if missing:
            text += f"; {missing} were already gone"
        if self.refused:
            text += (f"; refused {len(self.refused)} (a link or a path outside the archive and "
                     "quarantine: see below and check who changed them)")
        return text + "."


def _utc_now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)  # the warehouse keeps naive UTC


def holds_identifiers(status: str, error_rules, message: str | None) -> bool:
    """Whether a load was rejected because its file holds direct identifiers."""
    if status != "rejected":
        return False
    if error_rules is None:  # a row from before audit.loads.error_rules: read its message
        from .rejections import rules_of_audit_message  # imported late: it loads the gate

        error_rules = rules_of_audit_message(message)
    rules = list(error_rules)
    return bool(set(rules) & set(IDENTIFIER_RULES))


@dataclass(frozen=True)
class _Due:
    load_id: str
    stored_path: str
    why: str


def _due_loads(con, settings: Settings, now: datetime) -> list[_Due]:
    """Loads whose stored files have reached the end of their period and have no deletion yet."""
    short = min(settings.identifier_retention_days, settings.retention_days)
    earliest_cutoff = now - timedelta(days=short)
    rows = con.execute(
        """SELECT load_id, status, stored_path, validated_at, error_rules, message
           FROM audit.loads l
           WHERE stored_path IS NOT NULL AND validated_at <= ?
             AND NOT EXISTS (SELECT 1 FROM audit.deletions d WHERE d.load_id = l.load_id)
           ORDER BY validated_at, load_id""",
        [earliest_cutoff],
    ).fetchall()
    long_cutoff = now - timedelta(days=settings.retention_days)
    due = []
    for load_id, status, stored_path, validated_at, error_rules, message in rows:
        if holds_identifiers(status, error_rules, message):
            due.append(_Due(load_id, stored_path, WHY_IDENTIFIERS))
        elif validated_at <= long_cutoff:
            due.append(_Due(load_id, stored_path, WHY_RETENTION))
    return due


def _orphans(con, settings: Settings, now: datetime) -> list[_Due]:
    """Load folders in archive/ or quarantine/ that no audit row knows, old enough to go.

    Their age is the folder's own modification time (when its last entry was written); the
    walk never follows a link."""
    known = {r[0] for r in con.execute(
        "SELECT load_id FROM audit.loads UNION SELECT load_id FROM audit.deletions").fetchall()}
    cutoff = (now - timedelta(days=min(settings.identifier_retention_days, settings.retention_days))
              ).replace(tzinfo=timezone.utc).timestamp()
    found = []
    for area in AREAS:
        root = settings.data_dir / area
        for folder, dirs, _ in os.walk(root):  # os.walk does not follow links by default
            for name in list(dirs):
                if not LOAD_ID_RE.match(name):
                    continue
                dirs.remove(name)  # a load folder holds no load folders
                path = Path(folder) / name
                if name in known or path.is_symlink() or os.lstat(path).st_mtime > cutoff:
                    continue
                found.append(_Due(name, path.relative_to(settings.data_dir).as_posix(), WHY_ORPHAN))
    return sorted(found, key=lambda d: d.stored_path)


@dataclass(frozen=True)
class _Place:
    """Where a load's files are: the area (archive or quarantine) and the folders below it."""

    area: str
    folders: tuple[str, ...]  # from the area down to the folder holding the files
    names: tuple[str, ...] | None  # None: every entry of the folder (it is the load's own)


def _place(settings: Settings, load_id: str, stored_path: str) -> _Place:
    """The load's folder, checked to lie inside archive/ or quarantine/ (raises UnsafePath)."""
    parts = relative_parts(settings.data_dir, stored_path)
    if len(parts) < 2 or parts[0] not in AREAS:
        raise UnsafePath(f"{stored_path} is not inside archive/ or quarantine/.")
    area, below = parts[0], parts[1:]
    if below[-1] == load_id:  # the stored path is the load's folder itself
        return _Place(area, below, None)
    if len(below) >= 2 and below[-2] == load_id:  # the file, in the load's own folder
        return _Place(area, below[:-1], None)
    return _Place(area, below[:-1], (below[-1],))  # someone else's folder: that one file only


def _relative(place: _Place, name: str) -> str:
    return "/".join((place.area, *place.folders, name))


def _list(settings: Settings, place: _Place) -> list[tuple[str, int]]:
    """The (name, bytes) of every non-folder entry to delete; lstat only, nothing is opened."""
    chain = open_dir_beneath(settings.data_dir, (place.area, *place.folders))
    try:
        names = place.names if place.names is not None else sorted(os.listdir(chain[-1]))
        found = []
        for name in names:
            try:
                st = os.stat(name, dir_fd=chain[-1], follow_symlinks=False)
            except FileNotFoundError:
                continue
            if stat.S_ISDIR(st.st_mode):
                continue  # the platform puts no folder in a load's folder: left, and reported
            found.append((name, st.st_size if stat.S_ISREG(st.st_mode) else 0))
        return found
    finally:
        close_all(chain)


def _delete(settings: Settings, place: _Place, names: list[str]) -> dict[str, tuple[str, str]]:
    """Unlink the named entries of the load's folder (never following a link), then prune the
    folders it leaves empty up to the area. Returns name -> (outcome, detail)."""
    outcomes: dict[str, tuple[str, str]] = {}
    try:
        chain = open_dir_beneath(settings.data_dir, (place.area, *place.folders))
    except FileNotFoundError:
        return {name: ("missing", "its folder was already gone") for name in names}
    try:
        for name in names:
            try:
                st = os.stat(name, dir_fd=chain[-1], follow_symlinks=False)
            except FileNotFoundError:
                outcomes[name] = ("missing", "already gone")
                continue
            if stat.S_ISDIR(st.st_mode):
                outcomes[name] = ("refused", "a folder where a file was expected; left in place")
                continue
            os.unlink(name, dir_fd=chain[-1])  # unlinkat: removes a link itself, not its target
            detail = "" if stat.S_ISREG(st.st_mode) else "not a regular file (a link?): removed, its target left untouched"
            outcomes[name] = ("deleted", detail)
        # Prune: the load's folder, then each parent, up to (not including) archive/ or quarantine/.
        for depth in range(len(chain) - 1, 1, -1):
            os.close(chain.pop())
            try:
                os.rmdir(place.folders[depth - 2], dir_fd=chain[-1])
            except OSError:
                break  # not empty (or already gone): the parents are not empty either
    finally:
        close_all(chain)
    return outcomes


def _record_intentions(con, deletions: list[Deletion]) -> None:
    now = _utc_now()  # when it happened, whatever moment the periods were measured to
    with transaction(con):
        for d in deletions:
            con.execute(
                "INSERT INTO audit.deletions (load_id, path, why, bytes, recorded_at, deleted_at, outcome, detail) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [d.load_id, d.path, d.why, d.bytes, now, now if d.outcome else None, d.outcome, d.detail or None],
            )


def _complete(con, deletions: list[Deletion]) -> None:
    now = _utc_now()
    with transaction(con):
        for d in deletions:
            con.execute(
                "UPDATE audit.deletions SET deleted_at = ?, outcome = ?, detail = ? WHERE load_id = ? AND path = ?",
                [now, d.outcome, d.detail or None, d.load_id, d.path],
            )


def _plan(settings: Settings, due: _Due) -> list[Deletion]:
    """The files of one due load, as intentions (or one refusal / one 'missing')."""
    try:
        place = _place(settings, due.load_id, due.stored_path)
        entries = _list(settings, place)
    except UnsafePath as exc:
        log.warning("retention refused load %s: %s", due.load_id, exc)
        return [Deletion(due.load_id, due.stored_path, due.why, None, "refused",
                         f"{exc} Nothing was deleted; check who changed this path.")]
    except FileNotFoundError:
        return [Deletion(due.load_id, due.stored_path, due.why, None, "missing", "already gone")]
    if not entries:
        return [Deletion(due.load_id, due.stored_path, due.why, None, "missing", "already gone")]
    return [Deletion(due.load_id, _relative(place, name), due.why, size) for name, size in entries]


def _carry_out(settings: Settings, intended: list[Deletion]) -> list[Deletion]:
    """Delete the intended files, folder by folder; returns them with their outcomes."""
    by_folder: dict[tuple[str, ...], list[Deletion]] = {}
    for d in intended:
        by_folder.setdefault(tuple(d.path.split("/")[:-1]), []).append(d)
    done = []
    for folder, items in by_folder.items():
        place = _Place(folder[0], folder[1:], tuple(d.path.rsplit("/", 1)[1] for d in items))
        try:
            if folder[0] not in AREAS or len(folder) < 2:
                raise UnsafePath(f"{'/'.join(folder)} is not inside archive/ or quarantine/.")
            relative_parts(settings.data_dir, "/".join(folder))
            outcomes = _delete(settings, place, list(place.names))
        except UnsafePath as exc:
            log.warning("retention refused %s: %s", "/".join(folder), exc)
            outcomes = {n: ("refused", f"{exc} Nothing was deleted.") for n in place.names}
        for d in items:
            outcome, detail = outcomes[d.path.rsplit("/", 1)[1]]
            done.append(Deletion(d.load_id, d.path, d.why, d.bytes, outcome, detail))
    return done


def apply_retention(settings: Settings, now: datetime | None = None, dry_run: bool = False) -> RetentionReport:
    """Delete every archived and quarantined original whose retention period has ended.

    ``now`` (naive UTC; default the current time) is the moment periods are measured to.
    First finishes the intentions an interrupted run left, then, for each due load: records
    its files in audit.deletions (committed), deletes them, completes the rows. ``dry_run``
    only lists what is due and writes nothing. Runs under the ingest lock, so it never prunes a
    folder an ingest is about to write into.
    """
    now = now or _utc_now()
    report = RetentionReport(now=now, dry_run=dry_run)
    if not settings.warehouse_path.exists():
        return report
    with ingest_lock(settings), connect(settings) as con:  # a writer: the schema may be older
        pending = [Deletion(*row) for row in con.execute(
            "SELECT load_id, path, why, bytes FROM audit.deletions WHERE deleted_at IS NULL "
            "ORDER BY recorded_at, load_id, path").fetchall()]
        due = _due_loads(con, settings, now) + _orphans(con, settings, now)
        if dry_run:
            report.deletions = pending + [d for item in due for d in _plan(settings, item) if d.outcome is None]
            return report
        if pending:
            log.info("retention: finishing %d deletion(s) an earlier run recorded but did not complete", len(pending))
            finished = _carry_out(settings, pending)
            _complete(con, finished)
            report.deletions += finished
        for item in due:  # one short transaction per load, as ingest does per file
            planned = _plan(settings, item)
            _record_intentions(con, planned)
            intended = [d for d in planned if d.outcome is None]
            finished = _carry_out(settings, intended) if intended else []
            if finished:
                _complete(con, finished)
            report.deletions += [d for d in planned if d.outcome is not None] + finished
    for d in report.deletions:
        log.info("retention: %s", d)
    log.info("%s", report.summary())
    return report

