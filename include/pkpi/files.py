"""Files the platform writes: who may read them, and paths that stay inside their folder.

Least privilege on disk (docs/security.md). Everything the platform keeps about partners' files
(landing, the warehouse and its .wal, archive, quarantine, outbox, dbt's logs and target, the
lock files) is readable by the platform's own user only: folders 0700, files 0600. When the
deployment names a group (``PKPI_FILE_GROUP``, e.g. group 0 in docker-compose.yml, which every
Airflow container runs under), the group may read and write as well: folders 2770 (setgid, so
what is created inside, by the platform or by a library, inherits the group), files 0660, and
everything is changed to that group. Never to every user on the machine.

What leaves the warehouse on purpose (``published/`` and ``exports/``) is as open as
``PKPI_PUBLISHED_ACCESS`` says: ``private`` (as above), ``group`` (the group may also read) or
``everyone`` (every user may read). The data folder itself is then only *traversable* by that
audience (execute without read), so they can reach ``published/`` without listing the rest.

Three layers make this hold whoever creates a file:

1. every entry point (``pkpi`` in :mod:`pkpi.cli`, every Airflow task through
   :func:`pkpi.airflow.tasks.task_settings`) calls :func:`secure_entry_point`, which sets the
   process umask (077, or 007 with a group), so files that libraries create themselves (DuckDB's
   database and .wal, dbt's logs and target, matplotlib) are private from their first byte, and
   tightens what an earlier version or another tool left too open;
2. where the platform creates a folder or file it sets the mode explicitly (:func:`make_dir`,
   :func:`open_secure`, :func:`secure`, :func:`secure_tree`), so a library caller with a lax
   umask gets the same result, and :func:`restrictive_umask` is held around DuckDB and dbt;
3. private folders are never traversable by others, so even a file that was briefly too open
   inside one cannot be reached.

Symbolic links are never followed: modes are changed through descriptors opened with
``O_NOFOLLOW``, links and special files are left alone, and :func:`open_dir_beneath` walks a
relative path one component at a time so that nothing outside its root is ever reached.

A file the platform writes whole (the scorecard's files and charts, say) is written by
:func:`write_atomic`: to a temporary name in the same folder, flushed to disk, then renamed over
the final name, so a reader or a crash sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import fcntl
import grp
import hashlib
import logging
import os
import shutil
import stat
import tempfile
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterator

from .errors import PermanentError, UserError
from .faults import checkpoint
from .settings import Settings

log = logging.getLogger(__name__)

PRIVATE_UMASK = 0o077
GROUP_UMASK = 0o007
PUBLISHED_AREAS = ("published", "exports")
"""Top-level folders of the data folder whose files leave the warehouse on purpose."""

_UMASK_LOCK = threading.Lock()


class FileAccessError(UserError, RuntimeError):
    """The file group setting cannot be applied (unknown group, or the user is not a member)."""


@dataclass(frozen=True)
class Access:
    """The mode of folders and files in one part of the data folder, and their group."""

    dir_mode: int
    file_mode: int
    gid: int | None  # None: leave the group as the system made it

    def mode_for(self, st_mode: int) -> int:
        return self.dir_mode if stat.S_ISDIR(st_mode) else self.file_mode


@lru_cache(maxsize=8)
def _group_id(name: str) -> int:
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        if name.isdigit():
            return int(name)
        raise FileAccessError(
            f"PKPI_FILE_GROUP is {name!r}, which is not a group on this machine. Create the "
            "group (and add the platform's user to it), give its number instead, or unset "
            "PKPI_FILE_GROUP to keep the data folder private to the platform's user."
        ) from None


def group_id(settings: Settings) -> int | None:
    """The group id of ``settings.file_group`` (a name or a number), or None when it is unset."""
    return _group_id(settings.file_group) if settings.file_group else None


def internal_access(settings: Settings) -> Access:
    """Landing, warehouse, archive, quarantine, outbox, dbt, locks: the user (and the group)."""
    gid = group_id(settings)
    if gid is None:
        return Access(0o700, 0o600, None)
    return Access(0o2770, 0o660, gid)


def published_access(settings: Settings) -> Access:
    """published/ and exports/: the internal modes plus read access for the chosen audience."""
    base = internal_access(settings)
    extra_dir, extra_file = {"private": (0, 0), "group": (0o050, 0o040),
                             "everyone": (0o055, 0o044)}[settings.published_access]
    return Access(base.dir_mode | extra_dir, base.file_mode | extra_file, base.gid)


def data_dir_access(settings: Settings) -> Access:
    """The data folder itself: internal, plus traverse-only (no listing) for the published
    copy's audience, so they can open published/ and exports/ and nothing else."""
    base = internal_access(settings)
    traverse = {"private": 0, "group": 0o010, "everyone": 0o011}[settings.published_access]
    return Access(base.dir_mode | traverse, base.file_mode, base.gid)


def access_for(settings: Settings, path: Path) -> Access:
    """Which access a path under the data folder gets, by the top-level folder it is in."""
    try:
        relative = Path(os.path.abspath(path)).relative_to(os.path.abspath(settings.data_dir))
    except ValueError:
        return internal_access(settings)  # never more open than private outside the data folder
    if not relative.parts:
        return data_dir_access(settings)
    if relative.parts[0] in PUBLISHED_AREAS:
        return published_access(settings)
    return internal_access(settings)


# --- the process umask ----------------------------------------------------------------------


def process_umask(settings: Settings) -> int:
    """077 (the user only), or 007 when a file group is set (the user and the group)."""
    return GROUP_UMASK if settings.file_group else PRIVATE_UMASK


def current_umask() -> int:
    """The process umask (reading it means setting it, so briefly under a lock)."""
    with _UMASK_LOCK:
        mask = os.umask(0o077)
        os.umask(mask)
    return mask


@contextmanager
def restrictive_umask(settings: Settings) -> Iterator[None]:
    """Hold at least :func:`process_umask` while a library (DuckDB, dbt) creates files."""
    with _UMASK_LOCK:
        previous = os.umask(0o077)
        os.umask(previous | process_umask(settings))
    try:
        yield
    finally:
        os.umask(previous)


def secure_entry_point(settings: Settings) -> None:
    """What every entry point does first: set the process umask for good, then tighten the
    data folder (:func:`secure_tree`) in case an earlier run or another tool left it open."""
    os.umask(process_umask(settings))
    if settings.data_dir.is_dir():
        secure_tree(settings, settings.data_dir)


# --- setting modes without following links -------------------------------------------------


def _apply(settings: Settings, fd: int, st: os.stat_result, access: Access, path: Path) -> bool:
    """Give an open file or folder its group and mode; True when something changed."""
    changed = False
    if access.gid is not None and st.st_gid != access.gid:
        try:
            os.fchown(fd, -1, access.gid)  # before chmod: a chown may clear the setgid bit
        except PermissionError:
            raise FileAccessError(
                f"Cannot give {path} to group {settings.file_group} (PKPI_FILE_GROUP): the user "
                f"the platform runs as (uid {os.geteuid()}) is not a member of it. Add the user "
                "to the group, or unset PKPI_FILE_GROUP."
            ) from None
        changed = True
    want = access.mode_for(st.st_mode)
    if stat.S_IMODE(st.st_mode) != want or changed:
        os.fchmod(fd, want)
        changed = True
    return changed


def _ours(st: os.stat_result) -> bool:
    # Only the owner (or root) may change a mode; a partner's upload tool may own landing files.
    return os.geteuid() in (0, st.st_uid)


def _secure_entry(settings: Settings, name: str | Path, dir_fd: int | None, path: Path,
                  st: os.stat_result) -> bool:
    """Secure one entry known (by lstat) to be a regular file or a folder, through an fd."""
    if not _ours(st):
        return False
    access = access_for(settings, path)
    if stat.S_IMODE(st.st_mode) == access.mode_for(st.st_mode) and (
            access.gid is None or st.st_gid == access.gid):
        return False
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY
    if stat.S_ISDIR(st.st_mode):
        flags |= os.O_DIRECTORY
    try:
        fd = os.open(name, flags, dir_fd=dir_fd)
    except (FileNotFoundError, PermissionError, OSError) as exc:
        log.debug("could not open %s to set its mode: %s", path, exc)
        return False
    try:
        now = os.fstat(fd)
        if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
            return False  # replaced since it was looked at: the next run sees the new one
        return _apply(settings, fd, now, access, path)
    finally:
        os.close(fd)


def secure(settings: Settings, path: Path) -> None:
    """Give one file or folder the mode and group of its place in the data folder.

    A symbolic link (or a device, socket or pipe) is left alone: its target is never touched.
    """
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode):
        _secure_entry(settings, path, None, Path(path), st)


def secure_tree(settings: Settings, root: Path) -> int:
    """Tighten (or, in published/ and exports/, open up) every folder and file under ``root``,
    ``root`` included; returns how many were changed. Links are not followed, entries owned by
    another user (a partner's upload in landing) are left to their owner, and the walk costs
    one lstat per entry when nothing needs changing."""
    changed = 0
    try:
        st = os.lstat(root)
    except FileNotFoundError:
        return 0
    if not stat.S_ISDIR(st.st_mode):
        secure(settings, root)
        return 0
    changed += _secure_entry(settings, root, None, Path(root), st)
    stack = [Path(root)]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, PermissionError, NotADirectoryError):
            continue
        for entry in entries:
            try:
                est = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            path = Path(entry.path)
            if stat.S_ISDIR(est.st_mode):
                changed += _secure_entry(settings, path, None, path, est)
                stack.append(path)
            elif stat.S_ISREG(est.st_mode):
                changed += _secure_entry(settings, path, None, path, est)
    if changed:
        log.info("set the modes of %d folder(s) and file(s) under %s", changed, root)
    return changed


def make_dir(settings: Settings, path: Path) -> Path:
    """``mkdir -p`` that gives every folder from the data folder down to ``path`` its mode and
    group (existing ones too, so a folder left open by an older version is tightened).

    Outside the data folder it is a plain ``mkdir -p``.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    data_dir = Path(os.path.abspath(settings.data_dir))
    absolute = Path(os.path.abspath(path))
    try:
        relative = absolute.relative_to(data_dir)
    except ValueError:
        return path
    current = data_dir
    secure(settings, current)
    for part in relative.parts:
        current = current / part
        secure(settings, current)
    return path


def open_secure(settings: Settings, path: Path, flags: int = os.O_RDWR | os.O_CREAT) -> int:
    """``os.open`` a file the platform keeps (a lock file, say) with its mode and group set,
    also when it already existed with a laxer one. Never follows a link. Returns the fd."""
    make_dir(settings, Path(path).parent)
    access = access_for(settings, path)
    fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, access.file_mode)
    try:
        st = os.fstat(fd)
        if _ours(st):
            _apply(settings, fd, st, access, Path(path))
    except BaseException:
        os.close(fd)
        raise
    return fd


def write_atomic(path: Path, data: bytes | str, settings: Settings | None = None,
                 mtime: float | None = None) -> Path:
    """Write ``path`` whole or not at all; returns ``path``.

    The content goes to a temporary name in the same folder (``.<name>.<random>.tmp``, mode
    0600 from the first byte), is flushed to disk with fsync, gets ``mtime`` when given, and is
    then renamed over ``path`` (the folder is fsynced too, so the rename survives a power cut).
    A crash leaves the old file, or at worst a stale ``.tmp`` beside it, never half a file.
    With ``settings`` the folders are made by :func:`make_dir` and the file gets the mode and
    group of its place in the data folder before it appears under its name; without, the
    folder is a plain ``mkdir -p`` and the file stays 0600 (the caller opens it up later, as
    the scorecard does with :func:`secure_tree`). Text is written as UTF-8.
    """
    path = Path(path)
    if settings is not None:
        make_dir(settings, path.parent)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
            if settings is not None:
                st = os.fstat(fh.fileno())
                _apply(settings, fh.fileno(), st, access_for(settings, path), path)
        if mtime is not None:
            os.utime(tmp, (mtime, mtime))
        checkpoint("files.written")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (best effort: some filesystems refuse)."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_paths(paths) -> None:
    """Remove each of ``paths`` that exists: a file, a folder with its contents, or a symbolic
    link (the link itself, never what it points to)."""
    for path in paths:
        path = Path(path)
        if path.is_symlink():
            path.unlink()
        elif path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def replace_folder(finished: Path, final: Path) -> None:
    """Put a finished folder (built beside ``final``) in place of ``final``: the old one is
    renamed aside first, then removed, so a reader finds the old folder or the new one whole."""
    old = final.with_name(final.name + ".old")
    remove_paths((old,))
    if final.exists():
        final.rename(old)
    finished.rename(final)
    remove_paths((old,))


INGEST_LOCK_NAME = "ingest.lock"


@contextmanager
def exclusive_lock(settings: Settings, name: str) -> Iterator[None]:
    """Hold the private lock file ``name`` in the data folder, waiting for it (blocking)."""
    fd = open_secure(settings, settings.data_dir / name)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def ingest_lock(settings: Settings):
    """Hold the data folder's ingest lock: one run at a time moves partners' files into, or
    deletes them from, archive/ and quarantine/ (pkpi.ingest and pkpi.retention)."""
    return exclusive_lock(settings, INGEST_LOCK_NAME)


# --- safe paths -----------------------------------------------------------------------------


class UnsafePath(PermanentError, ValueError):
    """A path that would leave its folder, or pass through a symbolic link."""


def relative_parts(root: Path, path: Path | str) -> tuple[str, ...]:
    """The components of ``path`` below ``root``, checked lexically: no ``..``, no absolute
    escape. Raises :class:`UnsafePath` when the path is not inside ``root``."""
    absolute = Path(os.path.normpath(os.path.join(os.path.abspath(root), str(path))))
    try:
        parts = absolute.relative_to(os.path.abspath(root)).parts
    except ValueError:
        raise UnsafePath(f"{path} is not inside {root}.") from None
    if not parts:
        raise UnsafePath(f"{path} is {root} itself, not a path inside it.")
    return parts


def open_dir_beneath(root: Path, parts: tuple[str, ...] = ()) -> list[int]:
    """Open ``root`` and then each folder in ``parts`` below it, one component at a time with
    ``O_NOFOLLOW``, so no symbolic link is followed anywhere on the way (the root included).

    Returns the chain of folder descriptors, root first; the caller closes them (see
    :func:`close_all`). Raises :class:`UnsafePath` when a component is a link or not a folder.
    """
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    chain: list[int] = []
    try:
        for index, part in enumerate((str(root), *parts)):
            if index and (part in ("", ".", "..") or "/" in part or "\0" in part):
                raise UnsafePath(f"{part!r} is not a plain folder name.")
            try:
                chain.append(os.open(part, flags, dir_fd=chain[-1] if chain else None))
            except FileNotFoundError:
                raise
            except OSError:  # ELOOP: a link; ENOTDIR: a file
                raise UnsafePath(f"{part} ({root}) is a symbolic link or not a folder.") from None
    except BaseException:
        close_all(chain)
        raise
    return chain


def close_all(fds: list[int]) -> None:
    for fd in reversed(fds):
        try:
            os.close(fd)
        except OSError:
            pass


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes, read a megabyte at a time."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def source_files(root: Path, pattern: str) -> list[Path]:
    """The regular files under ``root`` matching ``pattern``, sorted, without links or bytecode
    caches: what a digest of code or configuration is taken over."""
    return [path for path in sorted(root.rglob(pattern))
            if path.is_file() and not path.is_symlink() and "__pycache__" not in path.relative_to(root).parts]
