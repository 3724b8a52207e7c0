"""One atomic file writer for the project (pkpi.files.write_atomic): a file is replaced whole
or not at all, and never appears more open than its place in the data folder allows."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from pkpi.faults import CRASH_EXIT_CODE, ENV
from pkpi.files import write_atomic

OLD = b"the old scorecard, complete\n"
NEW = b"the new scorecard, complete\n" * 50_000  # well over one write's worth


def _write_in_a_child(path: Path, crash_at: str | None) -> subprocess.CompletedProcess:
    """write_atomic(path, NEW) in another process, killed at ``crash_at`` (like kill -9)."""
    env = {k: v for k, v in os.environ.items() if k != ENV}
    if crash_at:
        env[ENV] = crash_at
    code = (
        "import sys; from pathlib import Path; from pkpi.files import write_atomic; "
        f"write_atomic(Path(sys.argv[1]), b'the new scorecard, complete\\n' * 50_000)"
    )
    return subprocess.run([sys.executable, "-c", code, str(path)], env=env, capture_output=True, timeout=120)


def test_a_crash_before_the_rename_leaves_the_old_file_whole(tmp_path):
    target = tmp_path / "scorecard.html"
    target.write_bytes(OLD)
    done = _write_in_a_child(target, "files.written")
    assert done.returncode == CRASH_EXIT_CODE, done.stderr.decode()
    assert target.read_bytes() == OLD
    # The new content was complete on disk under a temporary name in the same folder.
    [leftover] = [p for p in tmp_path.iterdir() if p != target]
    assert leftover.name.startswith(".scorecard.html.") and leftover.name.endswith(".tmp")
    assert leftover.read_bytes() == NEW
    # The next run replaces the file whole.
    done = _write_in_a_child(target, None)
    assert done.returncode == 0, done.stderr.decode()
    assert target.read_bytes() == NEW


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "body.txt"
    target.write_bytes(OLD)
    with pytest.raises(UnicodeEncodeError):
        write_atomic(target, "half a body, then \ud800")  # cannot be encoded: fails mid-write
    assert target.read_bytes() == OLD
    assert [p.name for p in tmp_path.iterdir()] == ["body.txt"]


def test_text_is_written_as_utf8_and_folders_are_made(tmp_path):
    target = write_atomic(tmp_path / "email" / "body.txt", "£1,234 – ✔ Green\n")
    assert target.read_bytes() == "£1,234 – ✔ Green\n".encode("utf-8")


def test_with_settings_a_file_has_the_mode_of_its_place_when_it_appears(settings):
    published = settings.with_overrides(published_access="everyone")
    exported = write_atomic(published.data_dir / "exports" / "2026-03" / "scorecard.csv", b"x", published)
    kept = write_atomic(published.data_dir / "outbox" / "notice.eml", b"x", published)
    assert stat.S_IMODE(exported.stat().st_mode) == 0o644  # exports/: as open as PKPI_PUBLISHED_ACCESS
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600  # everything else: the platform's user only
    # Without settings the file stays private (0600) until the caller opens it up.
    bare = write_atomic(published.data_dir / "exports" / "2026-03" / "scorecard.pdf", b"x")
    assert stat.S_IMODE(bare.stat().st_mode) == 0o600
