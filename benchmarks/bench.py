"""The national-scale benchmark behind ``make bench`` (issue 13): wall, CPU and peak memory.

Not a test (never part of ``make test``); run it on a quiet machine:

    make bench                       # or: .venv/bin/python benchmarks/bench.py
    .venv/bin/python benchmarks/bench.py [--partnerships 153] [--gate-rows 300000]
        [--month 2026-03] [--root DIR] [--keep] [--only gate|ingest ...]

What runs, in a temporary folder (or ``--root``), each measurement in a fresh Python process so
that its peak memory is its own (VmHWM from /proc, read after each measurement: the process's
peak so far, imports included); the timings cover the work only, not the interpreter's start or
the imports:

* ``gate``: one all-valid contacts file of ``--gate-rows`` rows (benchmarks/gate_throughput.py's
  file, March 2025, the shipped reference data), and beside it DuckDB's ``read_csv`` of the same
  file into a table, in the same run; the ratio of the two is printed. The gate's process first
  judges a 1,000-row file (its row is printed too), so the big file's figure is the gate's cost
  in a running ingest, not the set-up a process pays once;
* ``ingest``: the national month (benchmarks/national_data.py: ``--partnerships`` partnerships,
  three returns each, about 448,000 rows for 153) is generated into landing and ingested by
  :func:`pkpi.ingest.ingest_landing` into an empty warehouse, as ``pkpi ingest`` would; the row
  also gives the cost per file.

Each measurement prints one row: what was measured, wall seconds, CPU seconds (every thread of
the process) and peak resident memory in MB, and what it worked on.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

# Runs in the measured process: argv[1] is the measurement, argv[2] its arguments as JSON.
_CHILD = r"""
import json, os, sys, time
sys.path[:0] = [os.path.join(sys.argv[3], "include"), os.path.join(sys.argv[3], "benchmarks")]
what, spec = sys.argv[1], json.loads(sys.argv[2])

def peak_mb():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")

def timed(work):
    wall, cpu = time.perf_counter(), time.process_time()
    detail = work()
    return {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu, "detail": detail}

rows = []
if what == "read_csv":
    import duckdb
    def work():
        con = duckdb.connect()
        con.execute("create table contacts as select * from read_csv(?, header = true)", [spec["file"]])
        return f"{con.execute('select count(*) from contacts').fetchone()[0]:,} rows"
    rows.append(("DuckDB read_csv, same file", timed(work), peak_mb()))
elif what == "gate":
    from datetime import date
    from pathlib import Path
    from pkpi.gate import judge
    from pkpi.reference import load_reference
    from pkpi.settings import Settings
    settings = Settings.from_env({"PKPI_DATA_DIR": spec["data_dir"], "PKPI_REFERENCE_DIR": spec["reference_dir"]})
    reference = load_reference(settings)
    today = date.fromisoformat(spec["today"])
    for label, name in (("gate, first file of the process", "small"), ("gate, one contacts file", "file")):
        path = Path(spec[name])
        content = path.read_bytes()
        lines = content.count(b"\n") - 1
        def work():
            verdict = judge(path, content, settings.landing_dir, reference, today=today)
            if not verdict.accepted:
                raise SystemExit(f"the benchmark file was rejected: {verdict.problems[:3]}")
            return f"{lines:,} rows, accepted"
        rows.append((label, timed(work), peak_mb()))
elif what == "ingest":
    from pkpi.ingest import ingest_landing
    from pkpi.settings import Settings
    settings = Settings.from_env({"PKPI_DATA_DIR": spec["data_dir"], "PKPI_REFERENCE_DIR": spec["reference_dir"]})
    def work():
        report = ingest_landing(settings)
        accepted = [o for o in report.outcomes if o.status == "accepted"]
        if len(accepted) != spec["files"]:
            raise SystemExit(f"only {len(accepted)} of {spec['files']} files were accepted: {report.summary()}")
        return (f"{len(accepted)} files, {sum(o.row_count for o in accepted):,} rows accepted")
    rows.append(("monthly ingest, national month", timed(work), peak_mb()))
print("@@" + json.dumps(rows))
"""


def _measure(what: str, spec: dict) -> list[tuple[str, dict, float]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PKPI_")}
    env.setdefault("GX_ANALYTICS_ENABLED", "false")
    env["PKPI_LANDING_QUIET_SECONDS"] = "0"  # the generated files are old already; no waiting
    done = subprocess.run([sys.executable, "-c", _CHILD, what, json.dumps(spec), str(REPO)],
                          env=env, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("@@")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"the {what} measurement failed:\n{done.stderr[-3000:]}")
    return json.loads(lines[-1][2:])


def _row(label: str, result: dict | None, peak: float | None, detail: str = "") -> None:
    if result is None:
        print(f"{label:<40} {'':>9} {'':>9} {'':>9}  {detail}")
        return
    print(f"{label:<40} {result['wall']:9.2f} {result['cpu']:9.2f} {peak:9.0f}  {result['detail']}{detail}")


def bench_gate(root: Path, rows: int) -> None:
    from gate_throughput import PERIOD, TODAY, contacts_csv

    data_dir = root / "gate" / "data"
    folder = data_dir / "landing" / "contacts" / "NCT" / PERIOD
    folder.mkdir(parents=True)
    big, small = folder / "contacts.csv", folder / "contacts_first.csv"
    big.write_bytes(contacts_csv(rows))
    small.write_bytes(contacts_csv(1_000, seed=1))
    spec = {"file": str(big), "small": str(small), "data_dir": str(data_dir),
            "reference_dir": str(REPO / "seeds"), "today": TODAY.isoformat()}
    gate = _measure("gate", spec)
    read = _measure("read_csv", spec)
    for label, result, peak in gate + read:
        _row(label, result, peak)
    wall = gate[-1][1]["wall"] / read[0][1]["wall"]
    cpu = gate[-1][1]["cpu"] / read[0][1]["cpu"]
    _row("gate / DuckDB read_csv", None, None,
         f"{wall:.1f}x wall, {cpu:.1f}x CPU, same file, same run (must reach <= 2x)")


def bench_ingest(root: Path, partnerships: int, month: str) -> None:
    from national_data import write_months, write_reference

    from pkpi.settings import Settings

    data_dir = root / "national" / "data"
    reference_dir = write_reference(root / "national" / "reference", partnerships)
    settings = Settings.from_env({"PKPI_DATA_DIR": str(data_dir), "PKPI_REFERENCE_DIR": str(reference_dir)})
    started = time.perf_counter()
    written = write_months(settings, month)
    _row("generate the national month", {"wall": time.perf_counter() - started, "cpu": float("nan"),
                                         "detail": f"{written.files} files, {written.rows:,} rows, "
                                                   f"{written.bytes / 1e6:.0f} MB"}, float("nan"))
    spec = {"data_dir": str(data_dir), "reference_dir": str(reference_dir), "files": written.files}
    for label, result, peak in _measure("ingest", spec):
        _row(label, result, peak, f"; {1000 * result['cpu'] / written.files:.0f} ms CPU a file")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--partnerships", type=int, default=153)
    parser.add_argument("--gate-rows", type=int, default=300_000)
    parser.add_argument("--month", default="2026-03", help="the national month to ingest (YYYY-MM, in the past)")
    parser.add_argument("--root", type=Path, help="work here instead of a temporary folder")
    parser.add_argument("--keep", action="store_true", help="keep the generated data")
    parser.add_argument("--only", nargs="+", choices=("gate", "ingest"), default=("gate", "ingest"))
    args = parser.parse_args()

    sys.path[:0] = [str(HERE), str(REPO / "include")]
    root = args.root or Path(tempfile.mkdtemp(prefix="pkpi-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    print(f"pkpi benchmark in {root}: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    print(f"{'measurement':<40} {'wall s':>9} {'CPU s':>9} {'peak MB':>9}  on")
    try:
        if "gate" in args.only:
            bench_gate(root, args.gate_rows)
        if "ingest" in args.only:
            bench_ingest(root, args.partnerships, args.month)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
