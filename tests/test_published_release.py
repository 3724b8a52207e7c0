"""The published DuckDB file and its Parquet files are one release, switched atomically.

Publishing, the last step of ``pkpi build``, is killed (``PKPI_CRASH_AT``, :mod:`pkpi.faults`) at
every step, in a real subprocess (publish alone: the dbt run before it changes nothing published,
so it is not repeated for each step): the current release is still whole and consistent (the DuckDB tables and the
Parquet files hold the same rows), and the next publish removes every temporary. A reader in a
thread, going through the documented paths, never sees a mix or a missing file while publish
runs again and again with figures that change between releases.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path

import duckdb
import pytest

from pkpi.publish import PUBLISHED_RELEASES_KEPT, publish
from pkpi.faults import CRASH_EXIT_CODE
from pkpi.settings import Settings
from support.catalogue import built_catalogue, copy_of
from support.crash import current_release, release_rows

# What `pkpi build` runs once dbt has built the mart and its decisions are stored.
PUBLISH = "from pkpi.publish import publish; from pkpi.settings import Settings; publish(Settings.from_env())"
STEPS = ("publish.partial", "publish.written", "publish.renamed", "publish.switched", "publish.linked")
BEFORE_THE_SWITCH = ("publish.partial", "publish.written", "publish.renamed")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return built_catalogue(tmp_path_factory)


def fingerprint(release: Path) -> str:
    """The published KPI values of a release, to tell releases with different figures apart."""
    con = duckdb.connect()
    try:
        return str(con.execute(
            f"select list(t order by t) from (select cast(k as varchar) t from "
            f"read_parquet('{release / 'parquet' / 'kpi_values.parquet'}') k)").fetchone()[0])
    finally:
        con.close()


def leftovers(settings: Settings) -> list[str]:
    """Temporaries of a publish, and releases that are neither current nor kept."""
    published = settings.published_dir
    found = [p.name for p in published.iterdir() if p.name.startswith(".")]
    releases = sorted(p.name for p in (published / "releases").iterdir())
    found += [f"releases/{name}" for name in releases if name.startswith(".")]
    finished = [name for name in releases if not name.startswith(".")]
    current = current_release(settings).name
    kept = [name for name in finished if name <= current][-PUBLISHED_RELEASES_KEPT:]
    found += [f"releases/{name}" for name in finished if name not in kept]
    return found


@pytest.mark.parametrize("step", STEPS)
def test_a_publish_killed_at_each_step_leaves_one_whole_release(built, tmp_path, step):
    settings = copy_of(built, tmp_path / "copy")
    before = current_release(settings)
    expected = release_rows(before)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PKPI_")},
           "PKPI_DATA_DIR": str(settings.data_dir), "PKPI_REFERENCE_DIR": str(settings.reference_dir),
           "PKPI_CRASH_AT": step}
    run = subprocess.run([sys.executable, "-c", PUBLISH], env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == CRASH_EXIT_CODE, run.stdout[-2000:] + run.stderr[-2000:]
    assert f"crash injected at {step}" in run.stderr

    # Whatever the moment, the current release is whole, and the stable paths lead into it.
    after = current_release(settings)
    assert release_rows(after) == expected  # same warehouse, same figures
    if step in BEFORE_THE_SWITCH:
        assert after == before
        assert leftovers(settings)  # the crashed publish left its temporary (or unused) release
    else:
        assert after != before

    # The next publish removes every temporary and every release beyond the last two.
    publish(settings)
    latest = current_release(settings)
    assert latest not in (before, after)
    assert release_rows(latest) == expected
    assert leftovers(settings) == []
    assert len(list((settings.published_dir / "releases").iterdir())) == PUBLISHED_RELEASES_KEPT


def test_readers_never_see_a_mix_or_a_missing_file_while_publish_runs(built, tmp_path):
    settings = copy_of(built, tmp_path / "copy")
    published = settings.published_dir
    stop = threading.Event()
    seen: dict[str, str] = {}  # release name -> fingerprint
    errors: list[str] = []
    reads = [0]

    def reader() -> None:
        while not stop.is_set():
            try:
                # Through the documented path, resolved once; its Parquet files beside it.
                release = Path(os.path.realpath(published / "kpi_mart.duckdb")).parent
                release_rows(release)
                seen[release.name] = fingerprint(release)
                # The stable paths themselves never go missing, not even for an instant.
                con = duckdb.connect(str(published / "kpi_mart.duckdb"), read_only=True)
                try:
                    con.execute("select count(*) from kpi_values").fetchall()
                finally:
                    con.close()
                con = duckdb.connect()
                try:
                    con.execute(f"select count(*) from '{published / 'parquet' / 'kpi_values.parquet'}'").fetchall()
                finally:
                    con.close()
                reads[0] += 1
            except Exception as exc:  # noqa: BLE001 - every failure is the finding
                errors.append(f"{type(exc).__name__}: {exc}")

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    try:
        # Thresholds that hide different figures, so consecutive releases really differ.
        for threshold in (1, 50, 1, 50, 1):
            publish(replace(settings, disclosure_threshold=threshold))
    finally:
        stop.set()
        thread.join(timeout=120)
    assert errors == []
    assert reads[0] > 0
    assert len(seen) >= 2 and len(set(seen.values())) >= 2, "the reader saw too few releases to prove anything"
    assert leftovers(settings) == []
