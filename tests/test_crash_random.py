"""Random ``kill -9`` of real `pkpi` processes, then recovery and the invariants (issue 11, item 9).

Each iteration puts a mixed landing in a fresh data folder (a return, the same bytes again, a
rejected file whose partner is notified, a symbolic link), then ends ``pkpi ingest`` with
SIGKILL one to three times in a row, each run starting from what the last one left, with SMTP
pointed at a real server on loopback. Each kill falls either at a random moment of the run or
just after a random change of the data folder seen from outside (a file appearing in staging,
archive or quarantine, leaving landing, the warehouse's WAL growing: the start or end of a
step), so kills land in the short windows between steps too. Then ``pkpi ingest`` runs to its
end, twice, and :func:`support.crash.crash_problems` checks every file has one outcome, its
bytes are kept once, nothing temporary is left and every notice arrived once (or, when the kill
fell while the mail server had it, is recorded as "may have been sent" and arrived at most once).

Moments and changes are drawn by a seeded RNG from an uninterrupted run of the same landing;
the seed of every iteration is in the test id and in the failure message, and a failure is
replayed with ``PKPI_SOAK_SEED=<seed> PKPI_SOAK_ITERATIONS=1 pytest tests/test_crash_random.py
-m soak -k hundreds``.

``make test`` runs a few iterations (:data:`ITERATIONS`). The long series is ``make soak``:
``PKPI_SOAK_ITERATIONS=300 pytest tests/test_crash_random.py -m soak`` runs hundreds of ingest
kills and a few killed ``pkpi build`` runs (the published release stays whole and consistent and
the mart, once rebuilt, equals a clean full-refresh build). The processes come from the fork
server of :mod:`support.crash`, so a kill lands in the platform's work, not in its imports.
"""

from __future__ import annotations

import os
import random
import time

import pytest

from pkpi.settings import Settings
from support.crash import (
    Dropped, assert_crash_safe, copy_data, crash_problems, drop, drop_link, pkpi_env,
)
from support.returns import CONTACT_PARTNERS, MONTH, csv_bytes, table
from support.crash import processes, reference  # noqa: F401 - fixtures
from support.smtp import running_smtp_server

SOAK = int(os.environ.get("PKPI_SOAK_ITERATIONS") or 0)
"""Iterations of the soak series (``make soak``); 0: only the quick series runs."""
QUICK_SEED = 20261201
ITERATIONS = 5
"""Iterations in ``make test``: seeds QUICK_SEED, QUICK_SEED + 1, ..."""
SOAK_SEED = int(os.environ.get("PKPI_SOAK_SEED") or QUICK_SEED + 1000)
"""The soak series' first seed (the others follow it)."""
UPLOADED = 1743843600.0  # 2025-04-05 09:00 UTC

V1 = csv_bytes(table("contacts"))
BAD = csv_bytes(table("contacts", {(2, "sex"): "f", (4, "child_age_years"): "18"}))




def landing(root, reference) -> tuple[Settings, list[Dropped]]:
    """A fresh data folder and its mixed landing, in upload order."""
    settings = Settings.from_env({"PKPI_DATA_DIR": str(root / "data"), "PKPI_REFERENCE_DIR": str(reference)})
    folder = f"contacts/NCT/{MONTH}"
    target = root / "elsewhere.csv"
    target.write_bytes(V1)
    dropped = [
        drop(settings, f"{folder}/contacts.csv", V1, mtime=UPLOADED, expect="accepted"),
        drop(settings, f"{folder}/contacts_again.csv", V1, mtime=UPLOADED + 60, expect="duplicate"),
        drop(settings, f"{folder}/contacts_bad.csv", BAD, mtime=UPLOADED + 120, expect="rejected",
             notice_to=CONTACT_PARTNERS["NCT"]),
        drop_link(settings, f"{folder}/linked.csv", target, notice_to=CONTACT_PARTNERS["NCT"]),
    ]
    return settings, dropped


def snapshot(settings: Settings) -> frozenset:
    """What can be seen of a data folder from outside: every entry (with its size) outside dbt's
    folder, and the warehouse's WAL. Each change is the start or end of some step."""
    seen = []
    for folder, dirs, files in os.walk(settings.data_dir):
        if folder == str(settings.data_dir):
            dirs[:] = [d for d in dirs if d != "dbt"]
        for name in dirs + files:
            path = os.path.join(folder, name)
            try:
                seen.append((path, os.lstat(path).st_size if name in files else -1))
            except FileNotFoundError:
                continue
    return frozenset(seen)


def watch(settings: Settings, running, stop_at: int | None = None) -> int:
    """Count the changes of :func:`snapshot` while ``running`` runs; kill it -9 at the
    ``stop_at``-th (at once: the kill lands at the start or end of a step). Returns the count."""
    events, before = 0, snapshot(settings)
    while not running.done():
        time.sleep(0.001)  # a core of its own would slow the run it watches
        now = snapshot(settings)
        if now != before:
            events, before = events + 1, now
            if events == stop_at:
                running.kill()
                break
    return events


@pytest.fixture(scope="module")
def uninterrupted(processes, reference, tmp_path_factory) -> tuple[float, int]:
    """How long an uninterrupted ingest of the landing takes here, and how many changes of the
    data folder it makes (the kills fall within them)."""
    settings, dropped = landing(tmp_path_factory.mktemp("uninterrupted"), reference)
    with running_smtp_server() as server:
        running = processes.start(["ingest"], pkpi_env(settings, server.port))
        events = watch(settings, running)
        run = running.wait()
        length = time.monotonic() - running.started
        assert run.returncode == 0, run
        assert_crash_safe(settings, dropped, smtp=server)
    return length, events


def kill_and_recover(processes, reference, root, seed: int, uninterrupted: tuple[float, int]) -> list[str]:
    """One iteration (see the module docstring); the problems found, each naming the seed."""
    length, events = uninterrupted
    rng = random.Random(seed)
    settings, dropped = landing(root, reference)
    kills = []
    with running_smtp_server() as server:
        env = pkpi_env(settings, server.port)
        for _ in range(rng.randint(1, 3)):
            running = processes.start(["ingest"], env)
            if rng.random() < 0.5:  # at a random moment
                delay = rng.uniform(0.0, length * 1.1)
                time.sleep(max(0.0, delay - (time.monotonic() - running.started)))
                running.kill()
                what = f"at {delay:.2f}s"
            else:  # as a random change of the data folder is seen
                stop_at = rng.randint(1, max(1, events))
                watch(settings, running, stop_at)
                what = f"at change {stop_at}"
            kills.append(f"{what} (exit {running.wait().returncode})")
        for attempt in range(2):
            again = processes.run(["ingest"], env)
            if again.returncode != 0:
                return [f"seed {seed} (killed {kills}): recovery run {attempt + 1} failed: {again}"]
        problems = crash_problems(settings, dropped, smtp=server, uncertain_ok=True)
    return [f"seed {seed} (killed {', '.join(kills)}): {p}" for p in problems]


@pytest.mark.parametrize("seed", range(QUICK_SEED, QUICK_SEED + ITERATIONS), ids=lambda s: f"seed{s}")
def test_ingest_killed_at_random_moments_recovers_every_file(processes, reference, uninterrupted, tmp_path, seed):
    problems = kill_and_recover(processes, reference, tmp_path, seed, uninterrupted)
    assert not problems, "\n".join(problems)


@pytest.mark.soak
@pytest.mark.timeout(0)  # hundreds of iterations: longer than the suite's per-test limit
@pytest.mark.skipif(not SOAK, reason="the long series: make soak (PKPI_SOAK_ITERATIONS)")
def test_soak_hundreds_of_random_ingest_kills(processes, reference, uninterrupted, tmp_path):
    failures = []
    for i in range(SOAK):
        root = tmp_path / f"i{i}"
        root.mkdir()
        failures += kill_and_recover(processes, reference, root, SOAK_SEED + i, uninterrupted)
        if len(failures) > 20:
            break
    assert not failures, f"{len(failures)} problem(s) in {SOAK} iterations:\n" + "\n".join(failures)


@pytest.mark.soak
@pytest.mark.timeout(0)  # hundreds of iterations: longer than the suite's per-test limit
@pytest.mark.skipif(not SOAK, reason="the long series: make soak (PKPI_SOAK_ITERATIONS)")
def test_soak_build_killed_at_random_moments_keeps_one_whole_release(processes, tmp_path_factory):
    from pkpi.build import build_mart
    from support.catalogue import built_catalogue
    from support.crash import published_problems

    built = built_catalogue(tmp_path_factory)
    rng = random.Random(SOAK_SEED)
    started = time.monotonic()
    build_mart(built.settings)  # how long a build of this mart takes here (the kills fall within it)
    length = time.monotonic() - started
    failures = []
    for i in range(max(1, min(SOAK // 50, 6))):
        settings = copy_data(built.settings, tmp_path_factory.mktemp(f"build{i}"))
        env = pkpi_env(settings)
        delay = rng.uniform(0.0, length * 1.1)
        running = processes.start(["build"], env)
        time.sleep(delay)
        running.kill()
        running.wait()
        failures += [f"build killed at {delay:.1f}s: {p}" for p in published_problems(settings)]
        rebuilt = processes.run(["build"], env)
        if rebuilt.returncode != 0:
            failures.append(f"build killed at {delay:.1f}s: the next build failed: {rebuilt}")
            continue
        clean = copy_data(settings, tmp_path_factory.mktemp(f"clean{i}"))
        refreshed = processes.run(["build", "--full-refresh"], pkpi_env(clean))
        assert refreshed.returncode == 0, refreshed
        failures += [f"build killed at {delay:.1f}s: {p}"
                     for p in crash_problems(settings, [], published=True, clean=clean)]
    assert not failures, "\n".join(failures)
