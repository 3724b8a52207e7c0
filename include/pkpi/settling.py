"""Putting a landing file's outcome in place, so that a crash at any point is finished by the next run.

Every file the ingest gives an outcome (accepted, duplicate or rejected) goes through the same
ordered steps; each leaves a state the next run recognises (the checkpoint names are those of
:mod:`pkpi.faults`)::

    stage      the stored copy is written under <area>/.staging/<load_id>/ (the original bytes
               and validation.json; for a rejection also errors.csv and report.html), flushed
               to disk                                                            -> ingest.staged
    commit     one warehouse transaction: the rows, the audit row, the partner's notice in the
               outbox (pkpi.mailer.queue) and an audit.unsettled_loads row saying what is left
                                                                                  -> ingest.committed
    place      .staging/<load_id> is renamed to its folder (archive/<type>/<partner>/<period>/
               <load_id>): one rename, so the copy appears whole or not at all    -> ingest.placed
    leave      the file is removed from landing (only while it still holds the judged bytes,
               or, for a link, is still the very entry judged)                -> ingest.left_landing
    settle     the unsettled row is deleted                                        -> ingest.settled
    notify     the outbox is delivered (pkpi.mailer.deliver_queued)

Recovery (:func:`recover`, run by every ingest before it looks at landing, under the ingest
lock): each unsettled row is taken from "place" on (every step is idempotent: a copy already in
place is not moved again, a file already gone from landing is not looked for); then every
staging folder left without an audit row (a crash before "commit") is deleted, because its file
is still in landing and is judged again. So a file never gets two audit rows, is never reported
as a duplicate of itself, and no audit row ever points at a copy that is not there.
"""

from __future__ import annotations

import logging
import os
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from . import landing
from .faults import checkpoint
from .files import make_dir, secure_tree
from .landing import LandingEntry
from .settings import Settings
from .warehouse import connect

log = logging.getLogger(__name__)

STAGING = ".staging"
"""The folder, inside archive/ and inside quarantine/, where copies are written before they count."""

REMOVALS = ("checksum", "entry", "never")
"""How a settled file leaves landing: only while it still has the audited checksum (a file that
was read), only while it is the very entry judged (a link, never followed), or not at all (an
entry reached through a linked folder: nothing of it is in landing)."""


@dataclass(frozen=True)
class Placement:
    """Where one load's stored copy is written (``staged``) and where it ends (``placed``)."""

    load_id: str
    staged: Path
    placed: Path

    def stored(self, name: str) -> Path:
        """The final path of a file written as ``staged / name``."""
        return self.placed / name


def placement(area: Path, final_folder: Path, load_id: str) -> Placement:
    """The placement of a load whose copy belongs in ``final_folder`` below ``area``."""
    return Placement(load_id, area / STAGING / load_id, final_folder)


@contextmanager
def staging(settings: Settings, place: Placement) -> Iterator[Path]:
    """An empty, private staging folder for the load's files, flushed to disk when the block ends.

    If the block fails (the file changed while it was copied, the disk is full) the folder is
    removed again: nothing was committed, and the file is judged again by a later run.
    """
    if os.path.lexists(place.staged):  # left by a crashed attempt with the same load id
        _remove_tree(place.staged)
    make_dir(settings, place.staged)  # private before the partner's bytes go in (pkpi.files)
    try:
        yield place.staged
        secure_tree(settings, place.staged)
        for name in os.listdir(place.staged):  # the copy is on disk before the outcome commits
            _fsync(place.staged / name)
        _fsync(place.staged)
    except BaseException:
        _drop(place.staged)
        raise
    checkpoint("ingest.staged")


@contextmanager
def committing(place: Placement) -> Iterator[None]:
    """Around the outcome's transaction: if it fails, what was staged for it is removed at once
    (the file stays in landing and is judged again), so no copy outlives an outcome never made."""
    try:
        yield
    except BaseException:
        _drop(place.staged)
        raise


@dataclass(frozen=True)
class Unsettled:
    """An outcome committed but not yet finished: one audit.unsettled_loads row."""

    load_id: str
    staged_path: str  # relative to the data folder
    placed_path: str
    landing_parts_hex: str
    removal: str
    checksum_sha256: str | None
    landing_identity: str


def record(con, settings: Settings, place: Placement, entry: LandingEntry, removal: str,
           checksum: str | None) -> Unsettled:
    """Inside the outcome's transaction: what the next run must finish if this one stops."""
    if removal not in REMOVALS:
        raise ValueError(f"removal must be one of {REMOVALS}")
    row = Unsettled(place.load_id, _relative(settings, place.staged), _relative(settings, place.placed),
                    _encode_parts(entry.parts), removal, checksum, "%d:%d" % entry.identity)
    con.execute("INSERT INTO audit.unsettled_loads VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [*vars(row).values(), datetime.now(timezone.utc).replace(tzinfo=None)])
    return row


def settle(settings: Settings, con, row: Unsettled) -> None:
    """Finish a committed outcome: place the copy, leave landing, clear the record.

    Idempotent, so a run that stopped anywhere in here is finished by running it again. ``con``
    is a writer connection with no transaction open (the record is cleared in its own).
    """
    _place(settings, row.load_id, settings.data_dir / row.staged_path, settings.data_dir / row.placed_path)
    checkpoint("ingest.placed")
    _leave_landing(settings, _decode_parts(row.landing_parts_hex), row.removal, row.checksum_sha256,
                   row.landing_identity)
    checkpoint("ingest.left_landing")
    con.execute("DELETE FROM audit.unsettled_loads WHERE load_id = ?", [row.load_id])
    checkpoint("ingest.settled")


def recover(settings: Settings) -> int:
    """Finish every outcome a stopped run committed, and drop what it staged but never committed.

    Returns how many outcomes were finished. Call under the ingest lock, before landing is read.
    One that cannot be finished (its copy was removed by hand) is logged for an engineer and
    left recorded; the other files go on.
    """
    if not settings.warehouse_path.exists():  # nothing was ever committed: nothing staged counts
        for area in (settings.archive_dir, settings.quarantine_dir):
            for name in _listdir(area / STAGING):
                _drop(area / STAGING / name)
        return 0
    finished = 0
    with connect(settings) as con:
        rows = [Unsettled(*r) for r in con.execute(
            "SELECT load_id, staged_path, placed_path, landing_parts_hex, removal, checksum_sha256, "
            "landing_identity FROM audit.unsettled_loads ORDER BY recorded_at, load_id").fetchall()]
        for row in rows:
            log.info("finishing the outcome of %s, committed by a run that stopped before it was done",
                     row.load_id)
            try:
                settle(settings, con, row)
                finished += 1
            except OSError as exc:
                log.error("could not finish the outcome of %s: %s", row.load_id, exc)
        for area in (settings.archive_dir, settings.quarantine_dir):
            root = area / STAGING
            names = _listdir(root)
            if not names:
                continue
            known = {r[0] for r in con.execute(
                "SELECT load_id FROM audit.loads WHERE list_contains(?, load_id)", [names]).fetchall()}
            for name in names:
                if name in known:  # committed, and its copy could not be placed (logged above)
                    continue
                # No audit row: a run stopped before its outcome was committed. The file is still
                # in landing and is judged again, so what it staged is dropped.
                log.info("removing %s/%s, staged by a run that stopped before its outcome was committed",
                         root, name)
                _drop(root / name)
    return finished


def _place(settings: Settings, load_id: str, staged: Path, placed: Path) -> None:
    if os.path.lexists(staged):
        if os.path.lexists(placed):  # cannot happen through these steps; never overwrite a copy
            raise FileExistsError(
                f"Both {staged} and {placed} exist for load {load_id}: compare them, keep the right one "
                "in the second place, delete the first, and run ingest again (see docs/runbook.md).")
        make_dir(settings, placed.parent)
        os.rename(staged, placed)
        _fsync(placed.parent)
        try:  # an empty .staging folder is not left between runs
            os.rmdir(staged.parent)
        except OSError:
            pass  # another load is staged there (or it is already gone)
    elif not os.path.lexists(placed):
        raise FileNotFoundError(
            f"The stored copy of load {load_id} is neither in {staged} nor in {placed}: someone removed "
            "it. Restore it from backup into the second place and run ingest again (see docs/runbook.md).")


def _leave_landing(settings: Settings, parts: tuple[str, ...], removal: str, checksum: str | None,
                   identity: str) -> None:
    if removal == "never":
        return
    try:
        entry = landing.entry_at(settings.landing_dir, settings.landing_dir.joinpath(*parts))
    except (ValueError, FileNotFoundError):
        return
    if entry.kind == landing.OUTSIDE:
        return
    if removal == "entry":
        if "%d:%d" % entry.identity != identity:
            return  # something else stands there now: it gets its own outcome
        landing.remove(entry, None)
    else:
        landing.remove(entry, checksum)


def _relative(settings: Settings, path: Path) -> str:
    return Path(os.path.abspath(path)).relative_to(os.path.abspath(settings.data_dir)).as_posix()


def _encode_parts(parts: tuple[str, ...]) -> str:
    """Landing names exactly as the file system has them (any bytes), for the record."""
    return os.fsencode("/".join(parts)).hex()


def _decode_parts(text: str) -> tuple[str, ...]:
    return tuple(os.fsdecode(bytes.fromhex(text)).split("/"))


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _listdir(folder: Path) -> list[str]:
    try:
        return sorted(os.listdir(folder))
    except FileNotFoundError:
        return []


def _drop(staged: Path) -> None:
    """Remove a staging folder, and .staging itself once empty; never raises (the next run's
    recovery removes what is left, and the error being handled is the one to report)."""
    try:
        _remove_tree(staged)
        os.rmdir(staged.parent)
    except OSError:
        pass


def _remove_tree(path: Path) -> None:
    if os.path.islink(path) or not os.path.isdir(path):
        os.unlink(path)
    else:
        shutil.rmtree(path)
