"""How many rows a second the gate validates, on a large all-valid contacts return.

Not a test: run it by hand when the gate changes and compare the figures.

    .venv/bin/python benchmarks/gate_throughput.py [--rows 300000] [--profile]

It writes a realistic contacts file (every row valid) for 2025-03 into a temporary data folder
with the shipped reference data, then times

* ``judge()``: reading, header, both Great Expectations suites and typing (the gate alone);
* ``ingest_file()``: the same plus the DuckDB load, the audit row and archiving.

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

from pkpi.gate import _gx, judge  # noqa: E402
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=300_000)
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

        _gx()  # built once per process in real runs too
        profiler = cProfile.Profile() if args.profile else None
        start = time.perf_counter()
        if profiler:
            profiler.enable()
        verdict = judge(path, content, settings.landing_dir, reference, today=TODAY)
        if profiler:
            profiler.disable()
        judged = time.perf_counter() - start
        if not verdict.accepted:
            print("the benchmark file was rejected:", verdict.problems[:5])
            return 1
        print(f"judge():       {judged:7.2f} s  {args.rows / judged:10,.0f} rows/s")

        start = time.perf_counter()
        outcome = ingest_file(settings, path, reference, today=TODAY)
        ingested = time.perf_counter() - start
        assert outcome.status == "accepted", outcome
        print(f"ingest_file(): {ingested:7.2f} s  {args.rows / ingested:10,.0f} rows/s")
        if profiler:
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
