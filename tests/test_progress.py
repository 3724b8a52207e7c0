"""Long work shows progress to a person at a terminal and nothing to a log (pkpi.progress), and
pkpi's log says what matters: no Great Expectations start-up chatter (pkpi.quiet_logs), and a run
ends with one line per file (pkpi.ingest).

Real `pkpi` processes throughout: one with its stderr on a pseudo-terminal (Python's pty), as a
person running it sees it, and the same commands with stderr a pipe, as a log or CI gets it.
The Airflow task log's end is checked on a real `airflow dags test` run in test_e2e_airflow.py.
"""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from conftest import SEEDS

PKPI = str(Path(sys.executable).with_name("pkpi"))
CHECKED = re.compile(r"ingest: (\d+)/(\d+) files checked, (\d+) done")
BUILT = re.compile(r"build: (\d+)/(\d+) dbt nodes")


def _environment(settings) -> dict[str, str]:
    """pkpi's environment for a person's shell: no CI, no NO_COLOR (either turns progress off)."""
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "NO_COLOR", "TERM")}
    env.update(PKPI_DATA_DIR=str(settings.data_dir), PKPI_REFERENCE_DIR=str(SEEDS), TERM="xterm")
    return env


def _on_a_terminal(args: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    """Run ``pkpi`` with stderr on a pseudo-terminal; returns its status, stdout and what the
    terminal received."""
    main, terminal = pty.openpty()
    received = bytearray()

    def drain() -> None:  # read all along, so the command never blocks on a full terminal
        while True:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # EIO: the command ended and closed the terminal
                return
            if not chunk:
                return
            received.extend(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        done = subprocess.run([PKPI, *args], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=terminal, text=True, timeout=900)
    finally:
        os.close(terminal)
        reader.join(timeout=60)
        os.close(main)
    return done.returncode, done.stdout, received.decode("utf-8", errors="replace")


def _piped(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([PKPI, *args], env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=900)


@pytest.fixture
def one_month(settings):
    """March 2026's sample returns (and 2025-26's finance returns) waiting in landing."""
    from pkpi.demo import write_sample_returns

    return write_sample_returns(settings, first_month="2026-03", last_month="2026-03")


def test_ingest_and_build_show_progress_on_a_terminal_and_clear_it(settings, one_month):
    status, out, terminal = _on_a_terminal(["run", "--period", "2026-03"], _environment(settings))

    assert status == 0, terminal[-3000:]
    counts = [tuple(map(int, m)) for m in CHECKED.findall(terminal)]
    files = one_month.files_written
    assert counts and counts[-1] == (files, files, files), terminal[-3000:]
    assert all(total == files for _, total, _ in counts)
    assert [checked for checked, _, _ in counts] == sorted(checked for checked, _, _ in counts)
    nodes = [tuple(map(int, m)) for m in BUILT.findall(terminal)]
    assert nodes and nodes[-1][0] == nodes[-1][1] > 100  # every dbt node, counted as dbt finished it
    assert "build: publishing the copy for analysts" in terminal
    assert "\r" in terminal and terminal.rstrip(" ").endswith("\r")  # redrawn in place, then cleared
    assert "ingest:" not in out and "build:" not in out  # stdout keeps the results only
    assert f"{files} file(s): {files - 1} accepted, 1 rejected" in out


def test_the_demo_writer_shows_progress_on_a_terminal(settings):
    status, out, terminal = _on_a_terminal(["demo", "--returns-only"], _environment(settings))

    assert status == 0, terminal[-3000:]
    assert "demo: 24/24 months of sample returns" in terminal
    assert "Wrote 218 sample returns" in out


@pytest.mark.parametrize("setting", ["CI=true", "NO_COLOR=1"])
def test_no_progress_on_a_terminal_in_ci_or_with_no_color(settings, setting):
    name, value = setting.split("=")
    status, _, terminal = _on_a_terminal(["demo", "--returns-only"], {**_environment(settings), name: value})

    assert status == 0, terminal[-3000:]
    assert terminal == ""


def test_piped_ingest_logs_one_line_per_file_and_no_progress_or_gx_chatter(settings, one_month):
    env = _environment(settings)
    quiet = _piped(["ingest"], env)

    assert quiet.returncode == 0, quiet.stderr[-3000:]
    assert quiet.stderr == ""  # no progress, and none of GX's start-up lines
    files = one_month.files_written
    assert f"{files} file(s): {files - 1} accepted, 1 rejected" in quiet.stdout
    [rejected] = [line for line in quiet.stdout.splitlines() if line.startswith("  rejected ")]
    assert "rules enum, in_period (see quarantine/training/NPOL/2026-03/" in rejected

    from pkpi.demo import write_sample_returns

    write_sample_returns(settings, first_month="2026-03", last_month="2026-03")  # the same bytes again
    verbose = _piped(["-v", "ingest"], env)

    assert verbose.returncode == 0, verbose.stderr[-3000:]
    lines = verbose.stderr.splitlines()
    assert not [line for line in lines if "great_expectations" in line or "Skipping registering" in line]
    assert "\r" not in verbose.stderr and not CHECKED.search(verbose.stderr)
    summary = next(i for i, line in enumerate(lines) if line.endswith(
        f"pkpi.ingest: ingest: {files} file(s): 0 accepted, 1 rejected, {files - 1} duplicate(s)"))
    per_file = [line.split("pkpi.ingest: ", 1)[1] for line in lines[summary + 1:summary + 1 + files]]
    assert sorted(line.split(" ", 1)[0] for line in per_file) == ["duplicate"] * (files - 1) + ["rejected"]
    assert all(" the same bytes as load " in line for line in per_file if line.startswith("duplicate"))
