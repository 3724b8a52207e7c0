"""How many rows a second the gate validates, on a large all-valid contacts return.

Not a test: run it by hand when the gate changes and compare the figures.

    .venv/bin/python benchmarks/gate_throughput.py [--rows 300000] [--profile]

It writes a realistic contacts file (every row valid) for 2025-03 into a temporary data folder
with the shipped reference data, then times, in the same process (wall and CPU seconds):

* DuckDB's own ``read_csv`` of the same file into a table (the yardstick the gate is held to);
* ``judge()``: reading, header, both Great Expectations suites and typing (the gate alone);
* ``judge_many()`` on ``--small`` small files (the cost per file of a batch of returns);
* ``ingest_file()``: judge plus the DuckDB load, the audit row and archiving.

The Great Expectations context is built before timing (it is built once per process in real
runs too). ``--profile`` prints where judge() spends its time.
"""

from __future__ import annotations

import argparse
import cProfile
import csv
import io
import os
import pstats
import random
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "include"))
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

import duckdb  # noqa: E402

from pkpi.gate import _duckdb_runner, _pandas_runner, judge, judge_many  # noqa: E402
from pkpi.ingest import ingest_file  # noqa: E402
from pkpi.reference import load_reference  # noqa: E402
from pkpi.settings import Settings  # noqa: E402

PERIOD = "2025-03"
TODAY = date(2025, 4, 15)
SOURCES = ["police"] * 30 + ["education"] * 20 + ["health"] * 15 + ["local_authority"] * 8 + [
    "housing", "probation", "legal_agency", "voluntary_sector", "family_friend", "self",
    "anonymous", "other"] * 3 + ["family_friend"] * 3
ETHNICITY = ["white"] * 70 + ["mixed"] * 8 + ["asian"] * 9 + ["black"] * 6 + ["other"] * 3 + ["not_known"] * 4
OUTCOMES = ["nfa"] * 35 + ["advice"] * 25 + ["early_help"] * 18 + ["referral"] * 22


def contacts_csv(rows: int, seed: int = 2025) -> bytes:
    """An all-valid contacts return for March 2025 with plausible proportions."""
    rng = random.Random(seed)
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(["contact_id", "child_id", "contact_date", "contact_source", "child_age_years",
                     "sex", "ethnicity", "outcome", "referral_date"])
    first = date(2025, 3, 1)
    for n in range(rows):
        contact = first + timedelta(days=rng.randrange(31))
        outcome = rng.choice(OUTCOMES)
        referral = ""
        if outcome == "referral":
            referral = (contact + timedelta(days=rng.choice((0, 0, 0, 1, 1, 2, 3)))).isoformat()
        # A tenth of dates written the UK way, as an Excel user would.
        written = contact.strftime("%d/%m/%Y") if rng.random() < 0.1 else contact.isoformat()
        writer.writerow([
            f"CT-{2025030000000 + n}", f"NCT-{rng.randrange(10_000_000):07d}", written,
            rng.choice(SOURCES), rng.randrange(18), rng.choice(("female", "male", "male", "female", "not_known")),
            rng.choice(ETHNICITY), outcome, referral,
        ])
    return buffer.getvalue().encode("utf-8")


def _clock() -> tuple[float, float]:
    times = os.times()
    return time.perf_counter(), times.user + times.system


def _since(started: tuple[float, float]) -> tuple[float, float]:
    wall, cpu = _clock()
    return wall - started[0], cpu - started[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--small", type=int, default=200, help="small files for judge_many (0: skip)")
    parser.add_argument("--profile", action="store_true", help="print the top functions of judge()")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="pkpi-bench-") as tmp:
        settings = Settings.from_env({"PKPI_DATA_DIR": str(Path(tmp) / "data"),
                                      "PKPI_REFERENCE_DIR": str(REPO / "seeds")})
        reference = load_reference(settings)
        content = contacts_csv(args.rows)
        path = settings.landing_dir / "contacts" / "NCT" / PERIOD / "contacts.csv"
        path.parent.mkdir(parents=True)
        path.write_bytes(content)
        print(f"{args.rows:,} rows, {len(content) / 1e6:.1f} MB")

        _pandas_runner(), _duckdb_runner()  # each built once per process in real runs too
        started = _clock()
        with duckdb.connect() as con:
            con.execute("CREATE TABLE t AS SELECT * FROM read_csv(?, header = true, all_varchar = true)",
                        [str(path)])
            assert con.execute("SELECT count(*) FROM t").fetchone()[0] == args.rows
        read_wall, read_cpu = _since(started)
        print(f"duckdb read_csv: {read_wall:7.2f} s wall {read_cpu:7.2f} s CPU")

        profiler = cProfile.Profile() if args.profile else None
        started = _clock()
        if profiler:
            profiler.enable()
        verdict = judge(path, content, settings.landing_dir, reference, today=TODAY)
        if profiler:
            profiler.disable()
        judged, judged_cpu = _since(started)
        if not verdict.accepted:
            print("the benchmark file was rejected:", verdict.problems[:5])
            return 1
        print(f"judge():         {judged:7.2f} s wall {judged_cpu:7.2f} s CPU {args.rows / judged:10,.0f} rows/s")
        print(f"judge / read_csv: {judged / read_wall:5.1f}x wall {judged_cpu / max(read_cpu, 1e-9):5.1f}x CPU")

        if args.small:
            small = contacts_csv(20, seed=7)
            files = []
            for n in range(args.small):
                one = settings.landing_dir / "contacts" / "NCT" / PERIOD / f"small-{n:04d}.csv"
                # distinct ids per file, so uniqueness lets them share one run
                one.write_bytes(small.replace(b"CT-2025030", f"CT-{n:04d}X".encode()))
                files.append((one, one.read_bytes()))
            judge_many(files[:2], settings.landing_dir, reference, today=TODAY)  # warm
            started = _clock()
            verdicts = judge_many(files, settings.landing_dir, reference, today=TODAY)
            many, many_cpu = _since(started)
            assert all(getattr(v, "accepted", False) for v in verdicts), verdicts[:3]
            print(f"judge_many():    {args.small} files of 20 rows: {1000 * many / args.small:6.2f} ms/file wall "
                  f"{1000 * many_cpu / args.small:6.2f} ms/file CPU")
            for one, _ in files:
                one.unlink()

        old = time.time() - 3600  # quiet for an hour: a finished upload, not one being written
        os.utime(path, (old, old))
        started = _clock()
        outcome = ingest_file(settings, path, reference, today=TODAY)
        ingested, _ = _since(started)
        assert outcome is not None and outcome.status == "accepted", outcome
        print(f"ingest_file():   {ingested:7.2f} s wall {args.rows / ingested:10,.0f} rows/s")
        if profiler:
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
