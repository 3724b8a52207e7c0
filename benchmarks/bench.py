"""The national-scale benchmark behind ``make bench`` (issue 13): wall, CPU and peak memory.

Not a test (never part of ``make test``); run it on a quiet machine:

    make bench                       # or: .venv/bin/python benchmarks/bench.py
    .venv/bin/python benchmarks/bench.py [--partnerships 153] [--years 1 10] [--gate-rows 300000]
        [--month 2026-03] [--root DIR] [--keep] [--markdown]
        [--only gate ingest build scorecard full check demo decide]

What runs, in a temporary folder (or ``--root``), each measurement in a fresh Python process so
that its peak memory is its own (VmHWM from /proc, read after each measurement: the process's
peak so far, imports included); the timings cover the work only, not the interpreter's start or
the imports (benchmarks/README.md lists every row):

* ``gate``: one all-valid contacts file of ``--gate-rows`` rows (benchmarks/gate_throughput.py's
  file, March 2025, the shipped reference data), and beside it DuckDB's ``read_csv`` of the same
  file into a table, in the same run; the ratio of the two is printed. The gate's process first
  judges a 1,000-row file (its row is printed too), so the big file's figure is the gate's cost
  in a running ingest, not the set-up a process pays once;
* the history: the twelve months before ``--month`` (benchmarks/national_data.py,
  ``--partnerships`` partnerships, three returns each) are generated and ingested for real once,
  then for each ``--years`` the warehouse is copied and replicated back in time
  (benchmarks/history.py; ``check``: one replicated month equals a real ingest of the same
  files) and built; on it are measured the ``ingest`` of the national month ``--month``, the
  incremental ``build`` after it, the ``scorecard`` of that month and, at the longest history,
  the ``full`` refresh, and (``decide``) the disclosure decisions on a copy of the built
  warehouse: from scratch, with nothing changed, and with the latest financial year's units to
  decide again. Ratios between the longest and the shortest history are printed;
* ``demo``: ``pkpi demo --returns-only`` (218 files), then their ingest into an empty warehouse
  (with ``decide``: then built, and its decisions measured as above).

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

def settings_of(spec):
    from pkpi.settings import Settings
    env = {k: v for k, v in os.environ.items() if k.startswith("PKPI_")}  # the DuckDB tuning passed on
    env.update({"PKPI_DATA_DIR": spec["data_dir"], "PKPI_REFERENCE_DIR": spec["reference_dir"]})
    return Settings.from_env(env)

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
    import pkpi.suites  # noqa: F401 - GX, which the gate imports for its first file: an import, not the gate's work
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
    import pkpi.suites  # noqa: F401 - GX: imported by the first file to judge, not the ingest's work
    settings = settings_of(spec)
    def work():
        report = ingest_landing(settings)
        accepted = [o for o in report.outcomes if o.status == "accepted"]
        if spec.get("files") is not None and len(accepted) != spec["files"]:
            raise SystemExit(f"only {len(accepted)} of {spec['files']} files were accepted: {report.summary()}")
        return (f"{len(report.outcomes)} files ({len(accepted)} accepted), "
                f"{sum(o.row_count or 0 for o in accepted):,} rows accepted")
    rows.append((spec["label"], timed(work), peak_mb()))
elif what == "replicate":
    from history import replicate
    settings = settings_of(spec)
    def work():
        added = replicate(settings, spec["first"], spec["last"], spec["years"])
        return ", ".join(f"{table} +{count:,}" for table, count in added.items()) or "nothing to add"
    rows.append((spec["label"], timed(work), peak_mb()))
elif what == "compare":
    from pathlib import Path
    from history import compare
    def work():
        differences = compare(Path(spec["real"]), Path(spec["replicated"]), spec["period"])
        if differences:
            raise SystemExit("the replicated history differs from a real ingest of the same files:\n"
                             + "\n".join(differences))
        return f"{spec['period']}: every table equal to a real ingest of the same files"
    rows.append((spec["label"], timed(work), peak_mb()))
elif what == "build":
    import duckdb
    from pkpi.build import build_mart
    settings = settings_of(spec)
    def work():
        result = build_mart(settings, full_refresh=spec["full_refresh"])
        con = duckdb.connect(str(settings.warehouse_path), read_only=True)
        try:
            contacts, months = con.execute(
                "SELECT count(*), count(DISTINCT return_period) FROM mart.fct_contacts").fetchone()
        finally:
            con.close()
        return f"{result.count('model')} models, {result.count('test')} tests; {contacts:,} contacts, {months} months"
    rows.append((spec["label"], timed(work), peak_mb()))
elif what == "scorecard":
    from pkpi.scorecard import produce_scorecard
    # The drawing libraries, imported when a month is drawn: imports, not the scorecard's work.
    import pkpi.scorecard.charts, pkpi.scorecard.pdf, pkpi.scorecard.xlsx  # noqa: F401
    settings = settings_of(spec)
    def work():
        output = produce_scorecard(settings, spec["period"])
        return f"{spec['period']}: {len(list(output.directory.iterdir()))} files"
    rows.append((spec["label"], timed(work), peak_mb()))
elif what == "decide":
    import shutil
    import duckdb
    from pkpi.disclosure.stored import store_decisions
    settings = settings_of(spec)
    shutil.copy2(settings.warehouse_path, spec["copy"])  # the build's own decisions stay as they are
    con = duckdb.connect(spec["copy"])
    year = con.execute("select max(financial_year) from mart.dim_month").fetchone()[0]
    for label, reuse, changed in ((f"decide from scratch, {spec['label']}", False, None),
                                  (f"decide, nothing changed, {spec['label']}", True, None),
                                  (f"decide, {year} changed, {spec['label']}", True, year)):
        def work():
            if changed:  # as if a month of the latest year had arrived: its units are decided again
                con.execute("delete from mart.disclosure_decision_units where component like ?", [f"% {changed}"])
            return store_decisions(con, settings.disclosure_threshold, reuse=reuse).summary()
        rows.append((label, timed(work), peak_mb()))
    con.close()
    os.remove(spec["copy"])
elif what == "demo":
    from pkpi.demo import write_sample_returns
    settings = settings_of(spec)
    def work():
        return str(write_sample_returns(settings)).splitlines()[0]
    rows.append(("write the demo's returns", timed(work), peak_mb()))
print("@@" + json.dumps(rows))
"""


_KEPT_SETTINGS = ("PKPI_DUCKDB_MEMORY_LIMIT", "PKPI_DUCKDB_THREADS")
"""The only settings of the caller's environment the measured processes see (to tune DuckDB)."""

TABLE: list[tuple[str, dict | None, float | None, str]] = []
"""Every row printed, for ``--markdown``."""


def _measure(what: str, spec: dict) -> list[tuple[str, dict, float]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PKPI_") or k in _KEPT_SETTINGS}
    env.setdefault("GX_ANALYTICS_ENABLED", "false")
    env["PKPI_LANDING_QUIET_SECONDS"] = "0"  # the generated files are old already; no waiting
    done = subprocess.run([sys.executable, "-c", _CHILD, what, json.dumps(spec), str(REPO)],
                          env=env, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("@@")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"the {what} measurement failed:\n{done.stderr[-3000:]}")
    return json.loads(lines[-1][2:])


def _row(label: str, result: dict | None, peak: float | None, detail: str = "") -> None:
    TABLE.append((label, result, peak, detail))
    if result is None:
        print(f"{label:<48} {'':>9} {'':>9} {'':>9}  {detail}", flush=True)
        return
    print(f"{label:<48} {result['wall']:9.2f} {result['cpu']:9.2f} {peak:9.0f}  {result['detail']}{detail}",
          flush=True)


def _run(what: str, spec: dict, detail: str = "") -> dict:
    """Measure ``what`` in its own process, print its rows; returns the last one's timings."""
    rows = _measure(what, spec)
    for label, result, peak in rows:
        _row(label, result, peak, detail)
    return rows[-1][1]


def _markdown() -> str:
    """The rows printed, as the table of docs/performance.md."""
    lines = ["| measurement | wall s | CPU s | peak MB | on |", "|---|--:|--:|--:|---|"]
    for label, result, peak, detail in TABLE:
        if result is None:
            lines.append(f"| {label} | | | | {detail} |")
        else:
            cpu = "" if result["cpu"] != result["cpu"] else f"{result['cpu']:.1f}"  # NaN: not measured
            mb = "" if peak is None or peak != peak else f"{peak:.0f}"
            lines.append(f"| {label} | {result['wall']:.1f} | {cpu} | {mb} | {result['detail']}{detail} |")
    return "\n".join(lines)


def bench_gate(root: Path, rows: int) -> None:
    from gate_throughput import PERIOD, TODAY, contacts_csv

    data_dir = root / "gate" / "data"
    folder = data_dir / "landing" / "contacts" / "NCT" / PERIOD
    shutil.rmtree(data_dir, ignore_errors=True)
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


def _generate(label: str, settings, first: str, last: str | None = None, history_from: str | None = None):
    from national_data import write_months

    started = time.perf_counter()
    written = write_months(settings, first, last, history_from=history_from)
    _row(label, {"wall": time.perf_counter() - started, "cpu": float("nan"),
                 "detail": f"{written.files} files, {written.rows:,} rows, {written.bytes / 1e6:.0f} MB"},
         float("nan"))
    return written


def _size(path: Path) -> str:
    total = sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size
    return f"{total / 1e9:.2f} GB"


def bench_national(root: Path, partnerships: int, month: str, years: list[int], parts: set[str]) -> None:
    """The history rows: a real ingest of one year, replicated to each of ``years``, then one
    more month ingested on top and built incrementally, the scorecard, a full refresh."""
    from national_data import write_reference

    from pkpi.periods import shift_month
    from pkpi.settings import Settings

    base = root / f"national-{partnerships}"
    reference_dir = write_reference(base / "reference", partnerships)
    first, last = shift_month(month, -12), shift_month(month, -1)  # the real year, before the month

    def settings(data_dir: Path):
        return Settings.from_env({"PKPI_DATA_DIR": str(data_dir), "PKPI_REFERENCE_DIR": str(reference_dir)})

    def spec(data_dir: Path, **more) -> dict:
        return {"data_dir": str(data_dir), "reference_dir": str(reference_dir), **more}

    # The real year: generated and ingested once; kept with --root/--keep for the next run.
    year = base / "year"
    done = year / "ingested.json"
    if not done.exists() or json.loads(done.read_text())["first"] != first:
        shutil.rmtree(year, ignore_errors=True)
        written = _generate(f"generate {first} .. {last} (the real year)", settings(year), first, last)
        _run("ingest", spec(year, label="ingest the real year (setup)", files=written.files))
        done.write_text(json.dumps({"first": first, "last": last, "files": written.files}))
    else:
        _row("the real year, ingested before", None, None, f"{first} .. {last} in {year} (--root)")
    # The month ingested on top of every history, generated once.
    landing_month = base / "month"
    written_month = landing_month / "written.json"
    if not written_month.exists() or json.loads(written_month.read_text())["month"] != month:
        shutil.rmtree(landing_month, ignore_errors=True)
        month_files = _generate(f"generate the national month {month}", settings(landing_month), month).files
        written_month.write_text(json.dumps({"month": month, "files": month_files}))
    else:
        month_files = json.loads(written_month.read_text())["files"]

    incremental: dict[int, float] = {}
    scorecard: dict[int, float] = {}
    for count in years:
        work = base / f"years-{count}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        shutil.copy2(settings(year).warehouse_path, settings(work).warehouse_path)
        if count > 1:
            _run("replicate", spec(work, label=f"replicate to {count} years (setup)", first=first, last=last,
                                   years=count))
        if count > 1 and "check" in parts:
            check_month = shift_month(first, -12)
            real = base / "check"
            if not settings(real).warehouse_path.exists():
                _generate(f"generate {check_month} from {first} (check)", settings(real), check_month,
                          history_from=first)
                _run("ingest", spec(real, label=f"ingest {check_month} for real (check)", files=3 * partnerships))
            _run("compare", {"real": str(settings(real).warehouse_path),
                             "replicated": str(settings(work).warehouse_path), "period": check_month,
                             "label": "check: replicated = real ingest"})
        label = f"{count} year{'s' if count > 1 else ''}"
        _run("build", spec(work, label=f"first build, {label} (setup)", full_refresh=False))
        shutil.copytree(landing_month / "landing", settings(work).landing_dir, dirs_exist_ok=True)
        if "ingest" in parts:
            result = _run("ingest", spec(work, label=f"monthly ingest on {label}", files=month_files))
            _row("  per file", None, None, f"{1000 * result['wall'] / month_files:.0f} ms wall, "
                                           f"{1000 * result['cpu'] / month_files:.0f} ms CPU a file")
        else:
            _run("ingest", spec(work, label=f"ingest {month} (setup)", files=month_files))
        if "build" in parts:
            incremental[count] = _run("build", spec(work, label=f"incremental build, {label} + {month}",
                                                    full_refresh=False))
        elif parts & {"scorecard", "decide"}:  # they measure the month built in
            _run("build", spec(work, label=f"incremental build, {label} + {month} (setup)", full_refresh=False))
        if "scorecard" in parts:
            scorecard[count] = _run("scorecard", spec(work, label=f"scorecard {month}, {label}", period=month))
        if "decide" in parts:
            _run("decide", spec(work, label=label, copy=str(work / "decide.duckdb")))
        if "full" in parts and count == years[-1]:  # the target is at the longest history
            _run("build", spec(work, label=f"full refresh, {label} + {month}", full_refresh=True))
        _row(f"  disk, {label}", None, None,
             f"warehouse {_size(settings(work).warehouse_path)}, data folder {_size(work)}")
    for name, figures in (("incremental build", incremental), ("scorecard", scorecard)):
        if len(figures) > 1:
            low, high = min(figures), max(figures)
            _row(f"{name}, {high} / {low} years", None, None,
                 f"{figures[high]['wall'] / figures[low]['wall']:.2f}x wall, "
                 f"{figures[high]['cpu'] / figures[low]['cpu']:.2f}x CPU, same run")


def bench_demo(root: Path, parts: set[str]) -> None:
    """``pkpi demo --returns-only`` (218 files), then their ingest into an empty warehouse; with
    ``decide``, the demo's mart built and its disclosure decisions measured."""
    data_dir = root / "demo" / "data"
    shutil.rmtree(data_dir, ignore_errors=True)
    spec = {"data_dir": str(data_dir), "reference_dir": str(REPO / "seeds")}
    _run("demo", spec)
    _run("ingest", dict(spec, label="demo ingest"))
    if "decide" in parts:
        _run("build", dict(spec, label="demo build (setup)", full_refresh=False))
        _run("decide", dict(spec, label="demo", copy=str(data_dir / "decide.duckdb")))


PARTS = ("gate", "ingest", "build", "scorecard", "full", "check", "demo", "decide")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--partnerships", type=int, default=153)
    parser.add_argument("--years", type=int, nargs="+", default=[1, 10],
                        help="years of history to measure at (one real year, the others replicated)")
    parser.add_argument("--gate-rows", type=int, default=300_000)
    parser.add_argument("--month", default="2026-03",
                        help="the national month ingested on top of the history (YYYY-MM, in the past)")
    parser.add_argument("--root", type=Path, help="work here instead of a temporary folder (reuses the real year)")
    parser.add_argument("--keep", action="store_true", help="keep the generated data")
    parser.add_argument("--only", nargs="+", choices=PARTS, default=PARTS)
    parser.add_argument("--markdown", action="store_true", help="also print the rows as a markdown table")
    args = parser.parse_args()

    sys.path[:0] = [str(HERE), str(REPO / "include")]
    root = args.root or Path(tempfile.mkdtemp(prefix="pkpi-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    import duckdb

    print(f"pkpi benchmark in {root}: {os.cpu_count()} CPUs, "
          f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB, "
          f"Python {sys.version.split()[0]}, DuckDB {duckdb.__version__}; "
          f"{args.partnerships} partnerships, {', '.join(map(str, args.years))} years", flush=True)
    print(f"{'measurement':<48} {'wall s':>9} {'CPU s':>9} {'peak MB':>9}  on", flush=True)
    parts = set(args.only)
    try:
        if "gate" in parts:
            bench_gate(root, args.gate_rows)
        if parts & {"ingest", "build", "scorecard", "full", "check", "decide"}:
            bench_national(root, args.partnerships, args.month, sorted(args.years), parts)
        if parts & {"demo", "decide"}:
            bench_demo(root, parts)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    if args.markdown:
        print("\n" + _markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main())
