"""What is in landing/, looked at and read without trusting it.

Landing is written by partners (and their tools), so nothing in it is trusted: not the kind of
entry, not its name, not its size.

* **Plain files only.** :func:`scan` walks landing without following anything: each entry is
  looked at with ``lstat``, a symbolic link (to a file or a folder) is never followed, and a
  link, named pipe, socket, device or anything else that is not a regular file is reported as
  :data:`NOT_REGULAR` so that ingest refuses it unread. Files are read through
  :func:`read_regular`: every folder on the way is opened with ``O_NOFOLLOW | O_DIRECTORY``
  from the landing folder down, the file with ``O_NOFOLLOW | O_NONBLOCK``, and the open
  descriptor must be a regular file (``fstat``) before a byte is read, so swapping a file for a
  link between looking and reading gains nothing. At most ``max_bytes + 1`` bytes are read.
  (The landing folder itself is the operator's, and may be a link.)
* **Names that are not returns.** Names starting with ``.`` (hidden files, and anything in a
  hidden folder) or ``~$`` (an Office lock file), and names ending in an upload tool's
  in-progress suffix such as ``.part`` are :data:`IN_PROGRESS`: left alone while fresh, and
  recorded as abandoned uploads once older than ``abandoned_after_hours``. Files the operating
  system makes for itself (``.DS_Store``, ``Thumbs.db``, ...) are :data:`SYSTEM_FILE` and follow
  the same age rule. Everything else that is a regular file is a :data:`RETURN` for the gate.
* **Whole files only.** A return is taken only once it has not changed for
  ``settings.quiet_seconds`` (:meth:`LandingEntry.is_arriving`: its modification time, which
  every write moves, is that old; a modification time in the future is not trusted and the
  kernel's change time is used instead), and only if it is still the file that was scanned and
  did not change while it was read (:class:`StillArriving`: same inode, size and modification
  time before and after the read). A file still being written is left in landing untouched, no
  audit row, and ``pkpi status`` lists it as arriving.
* **Names shown to people.** :func:`safe_name` is the one place a name (or folder name) from
  landing is made safe to print, log, put in an email subject or a report.

The partner returns ingest DAG looks at landing/ every minute or so while it waits for files,
in Airflow's triggerer, so this module imports nothing but the standard library: no pandas,
Great Expectations or DuckDB (:mod:`pkpi.gate` loads all three, which takes seconds).
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import stat
import time
import unicodedata
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator

from .errors import PermanentError, TransientError
from .settings import Settings

log = logging.getLogger(__name__)

IN_PROGRESS_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", ".filepart")
"""Suffixes upload tools give a file while they are still writing it."""
IN_PROGRESS_PREFIXES = (".", "~$")
"""Hidden files (and our own temporary files), and editors' lock files."""
SYSTEM_FILE_NAMES = frozenset({
    ".ds_store", ".localized", "icon\r",                    # macOS Finder
    "thumbs.db", "ehthumbs.db", "ehthumbs_vista.db", "desktop.ini",  # Windows Explorer
})
SYSTEM_FILE_PREFIXES = ("._",)  # macOS AppleDouble files (resource forks on SMB/FAT shares)

# What an entry of landing is (LandingEntry.kind).
RETURN = "return"            # a regular file with a final name: the gate judges it
IN_PROGRESS = "in_progress"  # a regular file with a temporary, hidden or lock-file name
SYSTEM_FILE = "system_file"  # a regular file the operating system made (Finder, Explorer)
NOT_REGULAR = "not_regular"  # a link, pipe, socket, device...: refused unread
OUTSIDE = "outside_landing"  # reached through a folder that is a link: refused unread

DEFAULT_ABANDONED_AFTER_HOURS = Settings.abandoned_after_hours
READ_CHUNK = 1024 * 1024


def is_in_progress(path: Path) -> bool:
    """Uploads still being written, editor lock files and hidden files are left alone."""
    name = path.name
    return name.startswith(IN_PROGRESS_PREFIXES) or name.lower().endswith(IN_PROGRESS_SUFFIXES)


def is_system_file(path: Path) -> bool:
    """A file the operating system writes for itself (``.DS_Store``, ``Thumbs.db``...)."""
    name = path.name
    return name.lower() in SYSTEM_FILE_NAMES or name.startswith(SYSTEM_FILE_PREFIXES)


# --- names shown to people -------------------------------------------------------------------

_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# Control (C0, DEL, C1), format (bidi overrides, zero-width), lone surrogates, line/paragraph
# separators: each can break a header, a log line or a terminal, or make a name read as another.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def safe_name(name: object, limit: int | None = 200) -> str:
    """A file or folder name from landing, safe to show anywhere (log, email subject, report).

    Control and format characters (newline, CR, tab, ESC, C1, bidi and zero-width marks, line
    separators) are written as escapes (``\\n``, ``\\x1b``, ``\\u202e``); a byte that was not
    UTF-8 (a surrogate escape from the file system) as ``\\xNN``. Printable text, accents and
    other scripts are kept. Longer than ``limit`` characters, the middle is cut. A clean name
    comes back unchanged.
    """
    if name is None:
        return ""
    text = str(name)
    if text.isprintable() and (limit is None or len(text) <= limit):
        return text
    out = []
    for ch in text:
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:  # os.fsdecode's escape for a byte that is not UTF-8
            out.append(f"\\x{code - 0xDC00:02x}")
        elif ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif unicodedata.category(ch) in _UNSAFE_CATEGORIES:
            out.append(f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}")
        else:
            out.append(ch)
    shown = "".join(out)
    if limit is not None and len(shown) > limit:
        shown = shown[: max(limit - 21, 1)] + "…" + shown[-20:]
    return shown


# --- looking at landing ----------------------------------------------------------------------


class NotRegularFile(PermanentError):
    """An entry (or a folder on its way) is not a plain file or folder; it was not opened."""

    def __init__(self, what: str, outside: bool = False):
        super().__init__(what)
        self.what = what
        self.outside = outside  # True: a folder on the way is a link (the path leaves landing)


class StillArriving(TransientError):
    """The file is not the one scanned, or changed while it was read: it is still being written.

    Nothing is recorded: the next ingest looks at it again once it has been quiet.
    """


class FileTooLarge(PermanentError):
    """A regular file is bigger than the limit; it was not read."""

    def __init__(self, size: int):
        super().__init__(f"{size} bytes")
        self.size = size


LINK = "a symbolic link (a shortcut to another file or folder)"


def describe_mode(mode: int) -> str:
    """What a non-regular entry is, in words a partner understands."""
    if stat.S_ISLNK(mode):
        return LINK
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISDIR(mode):
        return "a folder"
    return "not a regular file"


@dataclass(frozen=True)
class LandingEntry:
    """One entry of landing (never a folder), as :func:`scan` saw it, without following it."""

    root: Path
    parts: tuple[str, ...]  # its path below root, one name per level
    kind: str  # RETURN | IN_PROGRESS | SYSTEM_FILE | NOT_REGULAR | OUTSIDE
    what: str  # describe_mode() of the entry itself
    mtime: float  # of the entry itself (a link's own time, never its target's)
    size: int
    identity: tuple[int, int]  # (st_dev, st_ino) of the entry itself
    ctime: float = 0.0  # the kernel's change time (set by every write, rename or utime; no tool sets it)

    @property
    def path(self) -> Path:
        return self.root.joinpath(*self.parts)

    @property
    def name(self) -> str:
        return self.parts[-1]

    @property
    def relative(self) -> str:
        """Its path below landing, as a safe string for people and the audit."""
        return "/".join(safe_name(p) for p in self.parts)

    def age_hours(self, now: float | None = None) -> float:
        return max(0.0, ((time.time() if now is None else now) - self.mtime) / 3600)

    def is_abandoned(self, abandoned_after_hours: float, now: float | None = None) -> bool:
        """A temporary, hidden or system file that has not changed for the configured age."""
        return self.kind in (IN_PROGRESS, SYSTEM_FILE) and self.age_hours(now) >= abandoned_after_hours

    def last_changed(self, now: float | None = None) -> float:
        """When the file last changed, as far as can be trusted: its modification time, unless
        that is in the future (a partner's tool or clock set it), then the kernel's change time;
        when both are in the future nothing can be measured and it counts as changed long ago."""
        now = time.time() if now is None else now
        if self.mtime <= now:
            return self.mtime
        return self.ctime if self.ctime <= now else float("-inf")

    def is_arriving(self, quiet_seconds: float, now: float | None = None) -> bool:
        """A return that changed less than ``quiet_seconds`` ago: still being written, left alone."""
        now = time.time() if now is None else now
        return self.kind == RETURN and now - self.last_changed(now) < quiet_seconds

    def needs_outcome(self, abandoned_after_hours: float, now: float | None = None,
                      quiet_seconds: float = 0.0) -> bool:
        """Whether the next ingest gives this entry an outcome (and the sensor should wake it).

        A return still arriving (see :meth:`is_arriving`) does not, yet.
        """
        if self.kind == RETURN:
            return not self.is_arriving(quiet_seconds, now)
        return self.kind in (NOT_REGULAR, OUTSIDE) or self.is_abandoned(abandoned_after_hours, now)


def _hidden(name: str) -> bool:
    return name.startswith(IN_PROGRESS_PREFIXES)


def _classify(name: str, mode: int, in_hidden_folder: bool) -> str:
    if not stat.S_ISREG(mode):
        return NOT_REGULAR
    if is_system_file(Path(name)):
        return SYSTEM_FILE
    if in_hidden_folder or is_in_progress(Path(name)):
        return IN_PROGRESS
    return RETURN


@contextmanager
def _folder_fd(root: Path, folders: tuple[str, ...]) -> Iterator[int]:
    """A descriptor of ``root/folders...``, each folder opened without following a link."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for name in folders:
            try:
                child = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise NotRegularFile("reached through a folder that is a symbolic link or not a "
                                         "folder", outside=True) from None
                raise
            os.close(fd)
            fd = child
        yield fd
    finally:
        os.close(fd)


def scan(landing_dir: Path) -> list[LandingEntry]:
    """Every entry below ``landing_dir`` except folders, classified, following nothing.

    A symbolic link to a folder is an entry (:data:`NOT_REGULAR`), never descended into. An
    entry that vanishes while we look is skipped; a folder that cannot be read is logged.
    """
    root = Path(landing_dir)
    found: list[LandingEntry] = []
    if not root.is_dir():
        return found
    stack: list[tuple[tuple[str, ...], bool]] = [((), False)]
    while stack:
        folders, hidden = stack.pop()
        try:
            with _folder_fd(root, folders) as fd, os.scandir(fd) as listing:
                items = [(e.name, e.stat(follow_symlinks=False)) for e in _existing(listing)]
        except FileNotFoundError:
            continue
        except NotRegularFile:
            # The folder was swapped for a link after we saw it: the next scan refuses the link.
            continue
        except OSError as exc:
            log.warning("landing folder %s cannot be read (%s): its files wait until it can.",
                        "/".join(safe_name(f) for f in folders) or ".", exc.strerror)
            continue
        for name, st in items:
            if stat.S_ISDIR(st.st_mode):
                stack.append((folders + (name,), hidden or _hidden(name)))
                continue
            found.append(LandingEntry(
                root=root, parts=folders + (name,), kind=_classify(name, st.st_mode, hidden),
                what=describe_mode(st.st_mode), mtime=st.st_mtime, size=st.st_size,
                identity=(st.st_dev, st.st_ino), ctime=st.st_ctime,
            ))
    return found


def _existing(listing) -> Iterator[os.DirEntry]:
    for entry in listing:
        try:
            entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
        yield entry


def entry_at(landing_dir: Path, path: Path) -> LandingEntry:
    """The entry for one path below ``landing_dir`` (for a caller that names one file).

    The path is taken as written (``..`` is resolved lexically, links are not followed); a path
    that is not below landing raises ValueError, one reached through a linked folder is
    :data:`OUTSIDE`.
    """
    root = Path(landing_dir)
    relative = Path(os.path.abspath(path)).relative_to(os.path.abspath(root))  # ValueError outside
    parts = relative.parts
    if not parts:
        raise ValueError(f"{safe_name(path)} is the landing folder itself, not a file in it.")
    hidden = any(_hidden(p) for p in parts[:-1])
    try:
        with _folder_fd(root, parts[:-1]) as fd:
            st = os.stat(parts[-1], dir_fd=fd, follow_symlinks=False)
    except NotRegularFile as exc:
        return LandingEntry(root, parts, OUTSIDE, exc.what, time.time(), 0, (0, 0))
    return LandingEntry(root, parts, _classify(parts[-1], st.st_mode, hidden), describe_mode(st.st_mode),
                        st.st_mtime, st.st_size, (st.st_dev, st.st_ino), st.st_ctime)


def waiting_returns(landing_dir: Path, limit: int | None = None,
                    abandoned_after_hours: float = DEFAULT_ABANDONED_AFTER_HOURS,
                    quiet_seconds: float = 0.0) -> list[Path]:
    """Entries in ``landing_dir`` the next ingest gives an outcome (at most ``limit``, unsorted).

    That is every regular file with a final name that has been quiet for ``quiet_seconds`` (one
    still arriving does not count, so the sensor does not wake an ingest that would leave it;
    callers pass ``settings.quiet_seconds``),
    every link, pipe, socket or device (refused unread), and temporary, hidden or system files
    once abandoned. A missing landing folder
    simply has nothing waiting. ``limit`` lets a caller that only needs to know *whether*
    something waits stop early.
    """
    now = time.time()
    found = [e.path for e in scan(landing_dir) if e.needs_outcome(abandoned_after_hours, now, quiet_seconds)]
    return found if limit is None else found[:limit]


# --- reading and removing, without following -------------------------------------------------


@contextmanager
def open_regular(entry: LandingEntry) -> Iterator[tuple[int, os.stat_result]]:
    """An open descriptor of the entry, proven to be a regular file before anything is read.

    Raises :class:`NotRegularFile` (nothing was read) for a link, pipe, socket, device, or a
    path through a linked folder, and FileNotFoundError when it has gone.
    """
    with _folder_fd(entry.root, entry.parts[:-1]) as folder:
        try:
            fd = os.open(entry.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC,
                         dir_fd=folder)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise NotRegularFile(describe_mode(stat.S_IFLNK)) from None
            if exc.errno in (errno.ENXIO, errno.EOPNOTSUPP):  # a socket cannot be opened
                raise NotRegularFile(describe_mode(stat.S_IFSOCK)) from None
            raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFile(describe_mode(st.st_mode))
        yield fd, st
    finally:
        os.close(fd)


def _unchanged(entry: LandingEntry, st: os.stat_result) -> None:
    """Raise :class:`StillArriving` unless ``st`` is the file :func:`scan` saw, as it saw it."""
    if ((st.st_dev, st.st_ino) != entry.identity or st.st_size != entry.size
            or st.st_mtime != entry.mtime):
        raise StillArriving(entry.relative)


def _still_whole(fd: int, before: os.stat_result, read: int) -> None:
    """Raise :class:`StillArriving` if the file changed while it was read (fstat after vs before)."""
    after = os.fstat(fd)
    if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns) or read != before.st_size:
        raise StillArriving("changed while it was read")


def read_regular(entry: LandingEntry, max_bytes: int) -> tuple[bytes, os.stat_result]:
    """The entry's bytes and stat, read safely (see :func:`open_regular`), at most ``max_bytes``.

    Raises :class:`FileTooLarge` when the file has more than ``max_bytes`` bytes: its size is
    checked first, and no more than ``max_bytes + 1`` bytes are ever read (a file that grows).
    Raises :class:`StillArriving` when the file is not the one scanned (replaced, grown, touched
    since) or changed while it was read: nothing half-written is ever returned.
    """
    with open_regular(entry) as (fd, st):
        if st.st_size > max_bytes:
            raise FileTooLarge(st.st_size)
        _unchanged(entry, st)
        chunks, total = [], 0
        while total <= max_bytes:
            chunk = os.read(fd, min(READ_CHUNK, max_bytes + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > max_bytes:
            raise FileTooLarge(total)
        _still_whole(fd, st, total)
        return b"".join(chunks), st


def copy_regular(entry: LandingEntry, sink: BinaryIO) -> tuple[str, int, os.stat_result]:
    """Copy a (large) regular file into ``sink`` in chunks; returns (sha256, bytes, stat).

    Memory stays at one chunk; the copy stops at the size the file had when it was opened, so
    a file that keeps growing cannot keep the copy going. Raises :class:`StillArriving` before
    copying a byte if the file is not the one scanned, and after the copy if it changed meanwhile.
    """
    digest = hashlib.sha256()
    with open_regular(entry) as (fd, st):
        _unchanged(entry, st)
        remaining = st.st_size
        while remaining > 0:
            chunk = os.read(fd, min(READ_CHUNK, remaining))
            if not chunk:
                break
            digest.update(chunk)
            sink.write(chunk)
            remaining -= len(chunk)
        _still_whole(fd, st, st.st_size - remaining)
        return digest.hexdigest(), st.st_size - remaining, st


def _sha256(fd: int) -> str:
    digest = hashlib.sha256()
    while chunk := os.read(fd, READ_CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


def remove(entry: LandingEntry, checksum: str | None = None) -> bool:
    """Remove the entry from landing if it is still what was judged; True when removed.

    A link is unlinked itself (never its target), in its own folder opened without following
    links. With ``checksum``, a regular file is removed only while its bytes still have that
    SHA-256 (the partner may have replaced it meanwhile); otherwise only the same entry
    (device and inode) as seen by :func:`scan` is removed.
    """
    try:
        with _folder_fd(entry.root, entry.parts[:-1]) as folder:
            st = os.stat(entry.name, dir_fd=folder, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                return False
            if checksum is not None:
                try:
                    with open_regular(entry) as (fd, _):
                        if _sha256(fd) != checksum:
                            return False
                except NotRegularFile:
                    return False
            elif (st.st_dev, st.st_ino) != entry.identity:
                return False
            os.unlink(entry.name, dir_fd=folder)
            return True
    except (FileNotFoundError, NotRegularFile):
        return False
