"""Out of disk, clearly: a full disk during ``pkpi ingest`` or ``pkpi build`` is said plainly.

The data folder is put on a small tmpfs of its own (``mount -t tmpfs``, which needs root; the
tests are skipped, saying why, where that is not allowed) and a filler file takes all but a
little of it, so the real commands, run as subprocesses, run out of space part-way. Then:
exit 1, a message that says the disk is full, where and what to free, no Python or DuckDB
traceback and no secondary error ("cannot rollback") in place of the real one, an ingest
summary that counts exactly what audit.loads holds; and after the filler is deleted, the same
command again completes everything: each file one audit row and one stored copy with its
original bytes, nothing left in landing or in the staging folders, the build published.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from pkpi.demo import write_sample_returns
from pkpi.errors import DiskFull, classify
from pkpi.ingest import ingest_landing
from pkpi.settings import Settings
from pkpi.warehouse import connect, transaction

REPO = Path(__file__).resolve().parents[1]
PKPI = Path(sys.executable).with_name("pkpi")
DISK_MB = 64
FIRST_MONTH, LAST_MONTH = "2026-02", "2026-03"  # 21 demo returns, one planted to be rejected
# Free space left for the command: measured so that the ingest runs out part-way (the first
# files load, a later COMMIT and a later copy fail) and dbt runs out in the middle of the build.
INGEST_FREE = 400 * 1024
BUILD_FREE = 6000 * 1024


@pytest.fixture
def small_disk(tmp_path):
    """A tmpfs of DISK_MB mounted for the test (unmounted afterwards, whatever happens)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_MB}m,mode=0755", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill (needs root or CAP_SYS_ADMIN): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _settings(disk: Path) -> Settings:
    return Settings.from_env({"PKPI_DATA_DIR": str(disk / "data"), "PKPI_REFERENCE_DIR": str(REPO / "seeds")})


def _env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PKPI_")}
    env.update(PKPI_DATA_DIR=str(settings.data_dir), PKPI_REFERENCE_DIR=str(settings.reference_dir),
               PKPI_PROJECT_DIR=str(settings.project_dir), PKPI_LANDING_QUIET_SECONDS="0")
    return env


def _pkpi(settings: Settings, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(PKPI), *args], env=_env(settings), capture_output=True, text=True, timeout=900)


def _fill(disk: Path, leave: int) -> Path:
    """Take all but ``leave`` bytes of the file system with one file (deleting it frees them)."""
    filler = disk / "filler"
    st = os.statvfs(disk)
    with filler.open("wb") as out:
        remaining = st.f_bavail * st.f_frsize - leave
        block = b"\0" * (1 << 20)
        while remaining > 0:
            remaining -= out.write(block[:remaining])
    return filler


def _files(folder: Path) -> dict[str, str]:
    """Relative path -> sha256 of every regular file under ``folder``."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _loads(settings: Settings) -> list[tuple]:
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        return con.execute("SELECT landing_path, status, stored_path, checksum_sha256 FROM audit.loads").fetchall()
    finally:
        con.close()


def _assert_said_clearly(run: subprocess.CompletedProcess, settings: Settings) -> None:
    out = run.stdout + run.stderr
    assert run.returncode == 1, out[-3000:]
    said = [line for line in run.stderr.splitlines() if line.startswith("pkpi: ")]  # (the rest is the log)
    assert said and said[0].startswith("pkpi: The disk is full:"), run.stderr[-3000:]
    assert "Make room on that file system" in run.stderr and "run the same command again" in run.stderr
    assert str(settings.data_dir) in run.stderr  # which folder, and what is in it
    assert "Traceback" not in out and "Logging error" not in out, out[-3000:]
    assert "cannot rollback" not in out and "no transaction is active" not in out, out[-3000:]


def _staged(settings: Settings) -> list[Path]:
    """Files left in any staging or temporary place of the data folder."""
    data = settings.data_dir
    return [p for p in data.rglob("*") if p.is_file() and p.parts[len(data.parts)] not in ("dbt",)
            and any(part.startswith(".") or part.endswith((".tmp", ".part")) for part in p.relative_to(data).parts)]


def test_a_commit_that_fails_on_a_full_disk_raises_the_real_error_and_keeps_nothing(small_disk):
    settings = _settings(small_disk)
    with connect(settings) as con:
        con.execute("CREATE TABLE raw.filler_probe (v VARCHAR)")
    filler = _fill(small_disk, 0)
    with connect(settings) as con:
        with pytest.raises(duckdb.Error) as failed:
            with transaction(con):
                con.execute("INSERT INTO raw.filler_probe SELECT repeat('x', 200) || i FROM range(20000) t(i)")
        # DuckDB's own error, not "cannot rollback - no transaction is active" in its place.
        assert "No space left on device" in str(failed.value), failed.value
        full = classify(failed.value, settings.data_dir)
        assert isinstance(full, DiskFull) and full.path == Path(f"{settings.warehouse_path}.wal")
        assert con.execute("SELECT count(*) FROM raw.filler_probe").fetchone()[0] == 0
    filler.unlink()
    with connect(settings) as con:
        with transaction(con):
            con.execute("INSERT INTO raw.filler_probe VALUES ('one')")
    with connect(settings, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM raw.filler_probe").fetchone()[0] == 1


def test_a_disk_that_fills_during_ingest_is_said_clearly_and_the_next_run_completes(small_disk):
    settings = _settings(small_disk)
    write_sample_returns(settings, first_month=FIRST_MONTH, last_month=LAST_MONTH)
    waiting = _files(settings.landing_dir)
    assert len(waiting) == 21
    filler = _fill(small_disk, INGEST_FREE)

    run = _pkpi(settings, "ingest")
    _assert_said_clearly(run, settings)
    # The summary counts exactly what was recorded; every other file is still in landing.
    counted = re.search(r"(\d+) file\(s\): (\d+) accepted, (\d+) rejected, (\d+) duplicate", run.stderr)
    assert counted, run.stderr
    loads = _loads(settings)
    statuses = [status for _, status, _, _ in loads]
    assert [int(n) for n in counted.groups()] == [len(loads), statuses.count("accepted"),
                                                   statuses.count("rejected"), statuses.count("duplicate")]
    left = _files(settings.landing_dir)
    assert len(left) >= 1, "the disk did not fill: lower INGEST_FREE"
    assert sorted(left) == sorted(set(waiting) - {path for path, _, _, _ in loads})
    assert all(left[p] == waiting[p] for p in left)  # untouched

    filler.unlink()  # the engineer frees the space and runs the same command again
    again = _pkpi(settings, "ingest")
    assert again.returncode == 0, (again.stdout + again.stderr)[-3000:]
    assert "Traceback" not in again.stdout + again.stderr

    loads = _loads(settings)
    assert sorted(path for path, _, _, _ in loads) == sorted(waiting)  # one outcome per file, exactly
    assert _files(settings.landing_dir) == {}
    archived, quarantined = _files(settings.archive_dir), _files(settings.quarantine_dir)
    for path, status, stored, checksum in loads:
        assert status in ("accepted", "rejected"), (path, status)  # never a duplicate of itself
        assert checksum == waiting[path]
        kept = archived if status == "accepted" else quarantined
        folder = settings.archive_dir if status == "accepted" else settings.quarantine_dir
        assert kept.get(Path(stored).relative_to(folder.name).as_posix()) == waiting[path], path
    # One stored copy per file: the originals in archive/, and in quarantine/ the rejected
    # original with its errors file and report; beside each, its validation.json.
    results = [name for name in (*archived, *quarantined) if name.endswith("/validation.json")]
    assert len(results) == len(loads)
    assert sorted(h for name, h in archived.items() if not name.endswith("/validation.json")) == \
        sorted(waiting[p] for p, s, _, _ in loads if s == "accepted")
    rejected = [waiting[p] for p, s, _, _ in loads if s == "rejected"]
    assert sorted(h for h in quarantined.values() if h in waiting.values()) == sorted(rejected)
    assert _staged(settings) == []


def test_a_disk_that_fills_during_build_is_said_clearly_and_the_next_build_publishes(small_disk):
    settings = _settings(small_disk)
    write_sample_returns(settings, first_month=FIRST_MONTH, last_month=LAST_MONTH)
    ingest_landing(settings)
    filler = _fill(small_disk, BUILD_FREE)

    run = _pkpi(settings, "build")
    _assert_said_clearly(run, settings)
    assert "dbt" in run.stderr  # and the build's own account follows the disk's
    assert run.stdout.strip() == "", run.stdout[-3000:]  # nothing from dbt's console either
    # Nothing half-published: no release, and no temporary one left behind.
    assert not (settings.published_dir / "current").exists()
    releases = settings.published_dir / "releases"
    assert not releases.exists() or list(releases.iterdir()) == []

    filler.unlink()
    again = _pkpi(settings, "build")
    assert again.returncode == 0, (again.stdout + again.stderr)[-3000:]
    assert "all passed" in again.stdout
    con = duckdb.connect(str(settings.published_dir / "kpi_mart.duckdb"), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM kpi_values").fetchone()[0] > 0
    finally:
        con.close()
    assert [p.name for p in releases.iterdir() if p.name.startswith(".")] == []
