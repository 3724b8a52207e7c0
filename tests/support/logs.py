"""Capturing the platform's log lines, to check what an engineer would read (and what must never
appear there, such as a child's identifier)."""

from __future__ import annotations

import logging


class LogCapture(logging.Handler):
    """A handler that keeps every formatted line it is given, at every level."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))
