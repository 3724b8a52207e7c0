"""How far long work has got, redrawn on one line of a terminal: ``ingest: 12/218 files checked``.

One home for the progress of ``pkpi ingest``, ``pkpi build`` and the demo writer. It is for a
person watching: it is drawn only when stderr is a terminal, and never when CI or NO_COLOR is
set or pkpi's INFO log lines are on (``pkpi -v``, an Airflow task: the log says what happens,
and a redrawn line would break it). A pipe or a file (a log, CI, a task log) gets nothing. The
line is cleared when the work ends, so what the command prints next starts on a clean line.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import threading
import time
from contextlib import contextmanager
from typing import Iterator, TextIO

REDRAW_SECONDS = 0.1
"""At most this often (the last count is always drawn): a terminal need not see every file."""


def wanted(stream: TextIO) -> bool:
    """Whether progress is drawn on ``stream`` (see the module docstring)."""
    if os.environ.get("NO_COLOR") or os.environ.get("CI", "").lower() not in ("", "0", "false"):
        return False
    if os.environ.get("TERM") == "dumb":
        return False
    if logging.getLogger("pkpi").isEnabledFor(logging.INFO) and logging.getLogger().handlers:
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or not a real stream
        return False


class Progress:
    """One redrawn line; :meth:`show` is safe from several threads (dbt's)."""

    def __init__(self, stream: TextIO | None = None):
        self._stream = stream if stream is not None else sys.stderr
        self.shown = wanted(self._stream)
        self._lock = threading.Lock()
        self._drawn = 0  # width of the line on screen
        self._last = float("-inf")

    def show(self, text: str, final: bool = False) -> None:
        """Redraw the line as ``text``; ``final`` draws it even if the last draw was just now."""
        if not self.shown:
            return
        with self._lock:
            now = time.monotonic()
            if not final and now - self._last < REDRAW_SECONDS:
                return
            self._last = now
            text = text[: max(shutil.get_terminal_size().columns - 1, 20)]  # a wrapped line cannot be redrawn
            self._write("\r" + text.ljust(self._drawn))
            self._drawn = len(text)

    def count(self, name: str, done: int, total: int, what: str) -> None:
        """``name: done/total what``, e.g. ``build: 120/345 dbt nodes``."""
        self.show(f"{name}: {done}/{total} {what}", final=done >= total)

    def clear(self) -> None:
        with self._lock:
            if self._drawn:
                self._write("\r" + " " * self._drawn + "\r")
                self._drawn = 0

    def _write(self, text: str) -> None:
        try:
            self._stream.write(text)
            self._stream.flush()
        except (OSError, ValueError):  # the terminal went away: the work itself carries on
            self.shown = False


@contextmanager
def progress(stream: TextIO | None = None) -> Iterator[Progress]:
    """A :class:`Progress` whose line is cleared however the work ends."""
    line = Progress(stream)
    try:
        yield line
    finally:
        line.clear()
