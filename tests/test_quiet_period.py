"""A file still being written is never loaded (issue 11, item 7).

A return is taken only once it has not changed for ``settings.quiet_seconds``
(PKPI_LANDING_QUIET_SECONDS) and it is still, after the read, exactly the file that was
scanned. Until then it stays in landing untouched, with no audit row; ``pkpi status`` lists it
as arriving and the Airflow sensor does not fire for it.

A real writer thread writes half a file and stalls. Time passing is simulated by setting the
modification time back with ``os.utime`` (never by sleeping), so nothing here depends on how
fast the machine is.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import threading
import time
from contextlib import redirect_stdout
from datetime import datetime, timedelta, timezone
from unittest import mock

import pytest

from pkpi import landing
from pkpi.cli import main
from pkpi.ingest import _ingest_entry, ingest_landing
from pkpi.reference import load_reference
from pkpi.settings import Settings, SettingsError
from pkpi.status import landing_entries
from pkpi.warehouse import connect
from support.returns import MONTH, TODAY, csv_bytes, drop_file, make_reference, table

CONTACTS = f"contacts/NCT/{MONTH}"
QUIET = 30.0


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings.from_env({"PKPI_DATA_DIR": str(tmp_path / "data"),
                              "PKPI_REFERENCE_DIR": str(make_reference(tmp_path / "reference")),
                              "PKPI_LANDING_QUIET_SECONDS": f"{QUIET:g}"})


def _whole() -> bytes:
    return csv_bytes(table("contacts"))


def _audit_count(settings: Settings) -> int:
    if not settings.warehouse_path.exists():
        return 0
    with connect(settings, read_only=True) as con:
        return con.execute("SELECT count(*) FROM audit.loads").fetchone()[0]


def _quiet_since(path, seconds: float) -> None:
    """As if the file had last been written ``seconds`` ago (time passing, without waiting)."""
    then = time.time() - seconds
    os.utime(path, (then, then))


class StalledUpload(threading.Thread):
    """A partner's upload tool: writes the first half, stalls until told, writes the rest."""

    def __init__(self, path, content: bytes):
        super().__init__(daemon=True)
        self.path, self.content = path, content
        # Cut at a line end: the half is itself a valid, shorter return, the worst case.
        self.cut = content.index(b"\n", len(content) // 2) + 1
        self.half_written, self.resume, self.done = threading.Event(), threading.Event(), threading.Event()

    def run(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "wb") as handle:
            handle.write(self.content[: self.cut])
            handle.flush()
            os.fsync(handle.fileno())
            self.half_written.set()
            self.resume.wait(30)
            handle.write(self.content[self.cut:])
        self.done.set()


def test_a_stalled_upload_is_left_until_it_completes_then_loaded_whole(settings):
    path = settings.landing_dir / CONTACTS / "march.csv"
    content = _whole()
    writer = StalledUpload(path, content)
    writer.start()
    assert writer.half_written.wait(30)
    try:
        # The upload has stalled half-way: the ingest leaves it, records nothing, keeps every byte.
        assert ingest_landing(settings, today=TODAY).outcomes == []
        assert _audit_count(settings) == 0
        assert path.read_bytes() == content[: writer.cut]
        assert [i.state for i in landing_entries(settings)] == ["arriving"]
        printed = io.StringIO()
        env = {"PKPI_DATA_DIR": str(settings.data_dir), "PKPI_REFERENCE_DIR": str(settings.reference_dir),
               "PKPI_LANDING_QUIET_SECONDS": f"{QUIET:g}"}
        with mock.patch.dict(os.environ, env), redirect_stdout(printed):
            assert main(["status", "--period", MONTH]) == 0
        assert "arriving" in printed.getvalue() and "march.csv" in printed.getvalue()
    finally:
        writer.resume.set()
        assert writer.done.wait(30)
    # Just completed: still within the quiet period, still left.
    assert ingest_landing(settings, today=TODAY).outcomes == []
    # After the quiet period it is loaded, whole.
    _quiet_since(path, QUIET + 1)
    (outcome,) = ingest_landing(settings, today=TODAY).outcomes
    assert outcome.status == "accepted" and outcome.row_count == len(table("contacts")) - 1
    with connect(settings, read_only=True) as con:
        (size, checksum), = con.execute("SELECT size_bytes, checksum_sha256 FROM audit.loads").fetchall()
    assert (size, checksum) == (len(content), hashlib.sha256(content).hexdigest())
    assert not path.exists()


def test_a_file_changed_after_the_scan_is_left_untouched(settings):
    path = drop_file(settings.landing_dir, f"{CONTACTS}/march.csv", _whole())
    _quiet_since(path, QUIET + 1)
    (entry,) = landing.scan(settings.landing_dir)
    assert not entry.is_arriving(settings.quiet_seconds)
    with open(path, "ab") as handle:  # the tool writes more after we looked
        handle.write(b"C9,K-9,2025-03-03,police,7,female,white,nfa,\n")
    with pytest.raises(landing.StillArriving):
        landing.read_regular(entry, settings.limits.max_file_bytes)
    assert _ingest_entry(settings, entry, load_reference(settings), TODAY) is None
    assert _audit_count(settings) == 0 and path.exists()


def test_a_file_changed_while_it_is_read_is_left_untouched(settings, monkeypatch):
    """The partner's tool writes between two of our reads: fstat after the read differs."""
    path = drop_file(settings.landing_dir, f"{CONTACTS}/march.csv", _whole())
    _quiet_since(path, QUIET + 1)
    (entry,) = landing.scan(settings.landing_dir)
    real_read, calls = os.read, []

    def read_while_the_tool_writes(fd, n):
        chunk = real_read(fd, n)
        if not calls:  # after our first read, the tool appends (a real write to the real file)
            with open(path, "ab") as handle:
                handle.write(b"C9,K-9,2025-03-03,police,7,female,white,nfa,\n")
        calls.append(n)
        return chunk

    monkeypatch.setattr(landing.os, "read", read_while_the_tool_writes)
    with pytest.raises(landing.StillArriving):
        landing.read_regular(entry, settings.limits.max_file_bytes)
    calls.clear()
    assert _ingest_entry(settings, entry, load_reference(settings), TODAY) is None
    monkeypatch.undo()
    assert _audit_count(settings) == 0 and path.exists()


def test_the_sensor_does_not_fire_for_a_file_still_arriving(settings):
    from pkpi.airflow.landing_sensor import ReturnsWaitingTrigger

    path = drop_file(settings.landing_dir, f"{CONTACTS}/march.csv", _whole())
    assert landing.waiting_returns(settings.landing_dir, quiet_seconds=settings.quiet_seconds) == []
    deadline = (datetime.now(timezone.utc) + timedelta(seconds=0.3)).isoformat()
    trigger = ReturnsWaitingTrigger(str(settings.landing_dir), deadline, 0.05,
                                    settings.abandoned_after_hours, settings.quiet_seconds)
    _, kwargs = trigger.serialize()
    assert kwargs["quiet_seconds"] == QUIET  # survives the trip through Airflow's database

    async def first():
        return await asyncio.wait_for(anext(ReturnsWaitingTrigger(**kwargs).run()), 10)

    assert asyncio.run(first()).payload == {"waiting": 0}
    _quiet_since(path, QUIET + 1)
    assert landing.waiting_returns(settings.landing_dir, quiet_seconds=settings.quiet_seconds) == [path]


def test_a_future_modification_time_does_not_keep_a_file_arriving_forever(settings):
    """The kernel's change time (which no tool sets) measures the quiet period instead."""
    path = drop_file(settings.landing_dir, f"{CONTACTS}/march.csv", _whole(), time.time() + 10 * 365 * 86400)
    (entry,) = landing.scan(settings.landing_dir)
    assert entry.is_arriving(QUIET, now=entry.ctime + 1)
    assert not entry.is_arriving(QUIET, now=entry.ctime + QUIET + 1)
    assert path.exists()


def test_the_quiet_period_is_a_setting(tmp_path):
    base = {"PKPI_DATA_DIR": str(tmp_path)}
    assert Settings.from_env({**base, "PKPI_LANDING_QUIET_SECONDS": "5"}).quiet_seconds == 5
    assert Settings.quiet_seconds == 60  # the shipped default (the test suite runs with 0)
    with pytest.raises(SettingsError, match="PKPI_LANDING_QUIET_SECONDS"):
        Settings.from_env({**base, "PKPI_LANDING_QUIET_SECONDS": "-1"})
