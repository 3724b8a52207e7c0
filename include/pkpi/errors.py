"""The project's errors, in one place: what failed, and whether trying again can help.

Every error pkpi raises on purpose derives from :class:`PkpiError`, through one of two kinds:

- :class:`TransientError`: another attempt can succeed with nothing changed in the project (a
  busy warehouse, an unreachable mail server, a full disk once space is freed). Airflow retries
  it with backoff (pkpi.airflow.defaults); the command exits 1.
- :class:`PermanentError`: the same attempt fails the same way until someone fixes something (a
  failed dbt test, a broken contract, a refused email). Airflow fails the task at once; the
  command exits 1. :class:`UserError` is the permanent error of whoever called the command
  (arguments, settings, a refused query): the command exits 2.

An error whose class is neither (:class:`PkpiError` itself, e.g. ``MailDeliveryError``) lets its
``__cause__`` decide. :func:`classify` turns any exception into the error the command line
reports and the retry policy judges, so both follow from this hierarchy alone. A full disk is
recognised wherever it surfaces (an ``OSError`` with ``ENOSPC``, or DuckDB's and dbt's message,
which carry only the C library's text) and reported as :class:`DiskFull`.

This module imports nothing from pkpi and nothing heavy: the Airflow DAG files import it.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import smtplib
import socket
import sys
from pathlib import Path
from typing import Iterator

EXIT_OK = 0
EXIT_FAILED = 1
"""The system failed (transient or permanent): see the message."""
EXIT_USAGE = 2
"""The command was called wrongly (arguments, settings, a refused query)."""


class PkpiError(Exception):
    """Base of every error pkpi raises on purpose; its message is a sentence saying what to do.

    ``transient`` is True (worth retrying), False (retrying cannot help) or None (the cause
    decides); ``exit_code`` is the command line's exit status for it.
    """

    transient: bool | None = None
    exit_code: int = EXIT_FAILED
    quotes_system_errors: bool = False
    """True when the message quotes errors of DuckDB or dbt (so a full disk can be read in it)."""


class TransientError(PkpiError):
    """Another attempt can succeed with nothing changed in the project: retried by Airflow."""

    transient = True


class PermanentError(PkpiError):
    """Fails the same way until someone fixes the cause: never retried."""

    transient = False


class UserError(PermanentError):
    """The caller's mistake: bad arguments, settings or query; the command exits 2."""

    exit_code = EXIT_USAGE


_DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
_DISK_FULL_TEXTS = tuple(os.strerror(e) for e in _DISK_FULL_ERRNOS)
"""What DuckDB and dbt say instead of an errno: the C library's own text (strerror)."""
_QUOTED_PATH = re.compile(r'(?:file|directory) "([^"]+)"')


class DiskFull(TransientError):
    """A file system ran out of space (or quota) while pkpi wrote to it.

    ``path`` is what could not be written (or the data folder when the error does not say),
    ``free_bytes`` what that file system has left now (None when it cannot be read). Transient:
    once space is freed, the same command completes what failed.
    """

    def __init__(self, path: Path | None, free_bytes: int | None = None, total_bytes: int | None = None,
                 data_dir: Path | None = None, cause: BaseException | None = None):
        self.path = path
        self.free_bytes = free_bytes
        self.total_bytes = total_bytes
        self.data_dir = data_dir
        super().__init__(self._sentence(cause))

    @classmethod
    def from_error(cls, exc: BaseException, data_dir: Path | None = None) -> "DiskFull":
        """The :class:`DiskFull` for an error :func:`is_disk_full` recognised."""
        if isinstance(exc, DiskFull):
            return exc
        path = _failed_path(exc) or data_dir
        free = total = None
        where = _existing(path) if path is not None else None
        if where is not None:
            try:
                usage = shutil.disk_usage(where)
                free, total = usage.free, usage.total
            except OSError:
                pass
        return cls(path, free, total, data_dir, exc)

    def _sentence(self, cause: BaseException | None) -> str:
        if self.path is None:
            what = "pkpi could not write its files"
        elif self.path.is_dir():
            what = f"pkpi could not write in {_printable(self.path)}"
        else:
            what = f"pkpi could not write {_printable(self.path)}"
        room = ""
        if self.free_bytes is not None and self.total_bytes is not None:
            room = f"; {_mount_point(self.path)} has {human_size(self.free_bytes)} free of {human_size(self.total_bytes)}"
        reason = _disk_text(cause) if cause is not None else _DISK_FULL_TEXTS[0]
        largest = _largest_parts(self.data_dir) if self._in_data_dir() else ""
        return (
            f"The disk is full: {what} ({reason}){room}. Make room on that file system, or give it "
            "more space, then run the same command again: what failed was not recorded as done, so "
            "it is done again (files not yet loaded are still in landing/, and the published copy "
            f"still holds the last good build).{largest}"
        )

    def _in_data_dir(self) -> bool:
        if self.data_dir is None:
            return False
        if self.path is None:
            return True
        try:
            return os.stat(_existing(self.path) or self.path).st_dev == os.stat(self.data_dir).st_dev
        except OSError:
            return False


def _printable(path: Path) -> str:
    # A partner chooses file names: no control characters reach the engineer's terminal.
    return "".join(c if c.isprintable() else "?" for c in str(path))


def human_size(n: int) -> str:
    """``1.5 MB`` style (powers of 1024), for messages."""
    size = float(n)
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{int(size)} bytes" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} bytes"  # pragma: no cover


def _existing(path: Path) -> Path | None:
    """``path`` or its nearest existing parent."""
    for candidate in (Path(path), *Path(path).parents):
        if candidate.exists():
            return candidate
    return None


def _mount_point(path: Path | None) -> str:
    where = _existing(path) if path is not None else None
    if where is None:
        return "that file system"
    where = where if where.is_dir() else where.parent
    while not os.path.ismount(where) and where != where.parent:
        where = where.parent
    return f"the file system mounted at {where}"


# What the engineer may free in the data folder, and what is not to be deleted by hand.
_PART_HINTS = {
    "dbt": "dbt's logs and build files: safe to empty",
    "landing": "returns waiting to be loaded: keep them",
    "archive": "originals kept for retention: `pkpi retention` deletes those that are due",
    "quarantine": "rejected originals: `pkpi retention` deletes those that are due",
    "exports": "scorecards already produced: older months can be moved elsewhere",
    "published": "the published copy: keep it",
    "warehouse.duckdb": "the warehouse: keep it",
    "warehouse.duckdb.wal": "the warehouse's log of recent changes: keep it",
    "warehouse.duckdb.tmp": "DuckDB's scratch files: deleted by DuckDB, keep while pkpi runs",
    "outbox": "emails written without a mail server: delete those already dealt with",
}


def _largest_parts(data_dir: Path | None, limit: int = 4) -> str:
    """``: the data folder's largest parts are ...`` (sizes of its top-level entries)."""
    if data_dir is None or not data_dir.is_dir():
        return ""
    sizes = []
    try:
        for entry in os.scandir(data_dir):
            sizes.append((_tree_size(Path(entry.path)), entry.name, entry.is_dir(follow_symlinks=False)))
    except OSError:
        return ""
    sizes = [s for s in sorted(sizes, reverse=True)[:limit] if s[0] > 0]
    if not sizes:
        return ""
    parts = []
    for size, name, is_dir in sizes:
        hint = _PART_HINTS.get(name)
        parts.append(f"{name}{'/' if is_dir else ''} {human_size(size)}" + (f" ({hint})" if hint else ""))
    return f" The data folder {data_dir} is on that file system; its largest parts: {'; '.join(parts)}."


def _tree_size(path: Path) -> int:
    try:
        st = path.lstat()
    except OSError:
        return 0
    if not path.is_dir() or path.is_symlink():
        return st.st_blocks * 512
    total = 0
    for root, dirs, files in os.walk(path, onerror=lambda e: None):
        for name in files + dirs:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                pass
    return total


def _failed_path(exc: BaseException) -> Path | None:
    """The file the first disk-full link of ``exc``'s chain names, if any."""
    for link in chain(exc):
        if isinstance(link, OSError) and link.errno in _DISK_FULL_ERRNOS and link.filename:
            return Path(os.fsdecode(link.filename))
        if _text_says_disk_full(link):
            found = _QUOTED_PATH.search(str(link))
            if found:
                return Path(found.group(1))
    return None


def _disk_text(exc: BaseException) -> str:
    for link in chain(exc):
        if isinstance(link, OSError) and link.errno in _DISK_FULL_ERRNOS:
            return os.strerror(link.errno)
        for text in _DISK_FULL_TEXTS:
            if _text_says_disk_full(link) and text in str(link):
                return text
    return _DISK_FULL_TEXTS[0]


def chain(exc: BaseException | None) -> Iterator[BaseException]:
    """``exc``, then its cause (or context), then theirs, each once."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def _duckdb_error_types() -> tuple[type, ...]:
    # Without importing DuckDB: if it is not loaded, no DuckDB error can exist.
    duckdb = sys.modules.get("duckdb")
    return (duckdb.Error,) if duckdb is not None else ()


def _text_says_disk_full(link: BaseException) -> bool:
    """DuckDB and dbt report a full disk only in their message text."""
    quoted = isinstance(link, _duckdb_error_types()) or getattr(link, "quotes_system_errors", False)
    return quoted and any(text in str(link) for text in _DISK_FULL_TEXTS)


def says_disk_full(link: BaseException) -> bool:
    """Whether this one exception (not its causes) reports a full disk or quota."""
    return (isinstance(link, DiskFull)
            or (isinstance(link, OSError) and link.errno in _DISK_FULL_ERRNOS)
            or _text_says_disk_full(link))


def is_disk_full(exc: BaseException | None) -> bool:
    """Whether a full disk (or quota) is anywhere in ``exc``'s chain of causes."""
    return any(says_disk_full(link) for link in chain(exc))


_TRANSIENT_TYPES = (
    ConnectionError,
    TimeoutError,
    socket.timeout,
    socket.gaierror,  # DNS lookup of the mail server failed
    smtplib.SMTPServerDisconnected,
    smtplib.SMTPConnectError,
)
"""Errors from outside pkpi that another attempt can clear (network and mail server outages)."""


def _is_lock_conflict(link: BaseException) -> bool:
    # DuckDB refuses to open a file another process (not pkpi: pkpi waits on its own lock) writes.
    duckdb = sys.modules.get("duckdb")
    return duckdb is not None and isinstance(link, duckdb.IOException) and "lock" in str(link).lower()


def is_transient(exc: BaseException | None) -> bool:
    """Whether another attempt could succeed where this one failed.

    The chain of causes is read from the outside in; the first link that decides wins: a full
    disk, a :class:`PkpiError` that declares itself transient or permanent, a network or mail
    server outage (SMTP 4xx replies too) or DuckDB's lock conflict. Anything else (a bug, an
    unknown error) is permanent: retrying it only delays the alert.
    """
    if is_disk_full(exc):
        return True
    for link in chain(exc):
        decided = getattr(link, "transient", None) if isinstance(link, PkpiError) else None
        if decided is not None:
            return decided
        if isinstance(link, _TRANSIENT_TYPES):
            return True
        if isinstance(link, smtplib.SMTPResponseException) and 400 <= link.smtp_code < 500:
            return True
        if _is_lock_conflict(link):
            return True
    return False


def classify(exc: BaseException, data_dir: Path | None = None) -> PkpiError | None:
    """The error to report for ``exc``: a :class:`DiskFull` when the disk filled anywhere in its
    chain (the original error is its cause), else ``exc`` itself if it is a :class:`PkpiError`;
    None for an unexpected error (a bug, or a library's own failure)."""
    if is_disk_full(exc):
        full = DiskFull.from_error(exc, data_dir)
        if full is not exc and full.__cause__ is None:
            full.__cause__ = exc
        return full
    return exc if isinstance(exc, PkpiError) else None


def exit_code(exc: BaseException) -> int:
    """The command line's exit status for ``exc`` (see :func:`classify`)."""
    error = classify(exc)
    return error.exit_code if error is not None else EXIT_FAILED
