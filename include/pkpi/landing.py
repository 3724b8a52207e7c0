"""What is waiting in landing/: the cheap look that decides whether an ingest is worth starting.

The partner returns ingest DAG looks at landing/ every minute or so while it waits for files,
in Airflow's triggerer, so this module imports nothing but the standard library: no pandas,
Great Expectations or DuckDB (:mod:`pkpi.gate` loads all three, which takes seconds).

A file counts as waiting unless it is still being uploaded or is not a return at all: names
starting with ``.`` (hidden files, our own temporary files) or ``~$`` (an editor's lock file),
and names ending in an upload tool's in-progress suffix such as ``.part`` or ``.crdownload``.
The gate applies the same rule when it lists the files to judge.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

IN_PROGRESS_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", ".filepart")
"""Suffixes upload tools give a file while they are still writing it."""


def is_in_progress(path: Path) -> bool:
    """Uploads still being written, editor lock files and hidden files are left alone."""
    name = path.name
    return name.startswith((".", "~$")) or name.lower().endswith(IN_PROGRESS_SUFFIXES)


def _walk_files(root: Path) -> Iterator[Path]:
    for folder, _, names in os.walk(root):
        for name in names:
            yield Path(folder) / name


def waiting_returns(landing_dir: Path, limit: int | None = None) -> list[Path]:
    """Files in ``landing_dir`` ready to be ingested (at most ``limit`` of them, unsorted).

    A missing landing folder simply has nothing waiting. ``limit`` lets a caller that only
    needs to know *whether* something waits stop at the first file.
    """
    found: list[Path] = []
    if not Path(landing_dir).is_dir():
        return found
    for path in _walk_files(Path(landing_dir)):
        if is_in_progress(path) or not path.is_file():
            continue
        found.append(path)
        if limit is not None and len(found) >= limit:
            break
    return found
