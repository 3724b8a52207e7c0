"""Peak memory of ingesting the largest partner files the default FileLimits allow.

Not a test: run it by hand when the limits or the reader change, and put the figures in the
README ("Limits on partner files").

    .venv/bin/python benchmarks/file_limits.py [--case NAME ...] [--rows 1000000]

Each case writes one file into a temporary landing folder (in this process), then ingests it
with ``ingest_file()`` (read, gate, load or quarantine, audit) in a fresh subprocess and reports
that subprocess's peak resident memory (VmHWM from /proc; getrusage's ru_maxrss would include
the parent's memory, which Linux carries over exec), the time taken and the outcome. The child's
baseline (Python, pandas, Great Expectations, DuckDB imported) is measured by the ``baseline``
case.

Cases (rows default to the default ``max_rows``):

* ``csv_rows``: ``--rows`` realistic, valid contacts rows (about 75 bytes a row);
* ``csv_bytes``: the same rows padded with spaces to ``max_file_bytes`` (accepted);
* ``csv_bad``: ``--rows`` contacts rows that all fail one rule (the errors-file path);
* ``csv_over``: realistic rows up to ``max_file_bytes`` (more than ``max_rows``: rejected);
* ``csv_wide``: ``max_file_bytes`` of ``max_columns``-wide rows (rejected by the gate after
  reading: the reader's worst case);
* ``xlsx_rows``: ``--rows`` contacts rows as Excel writes them (shared strings, date cells);
* ``xlsx_wide``: a sheet of small numbers up to ``xlsx_max_uncompressed_bytes`` (the workbook
  reader's worst case).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import zipfile
from datetime import date, timedelta
from pathlib import Path
from xml.sax.saxutils import escape

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "include"))
sys.path.insert(0, str(REPO / "benchmarks"))
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

from gate_throughput import ETHNICITY, OUTCOMES, PERIOD, SOURCES  # noqa: E402
from pkpi.settings import FileLimits  # noqa: E402

HEADER = ["contact_id", "child_id", "contact_date", "contact_source", "child_age_years", "sex",
          "ethnicity", "outcome", "referral_date"]
LIMITS = FileLimits()

CHILD = r"""
import json, re, sys, time
from pathlib import Path
from datetime import date
sys.path.insert(0, sys.argv[1] + "/include")
from pkpi.gate import _duckdb_runner, _pandas_runner
from pkpi.ingest import ingest_file
from pkpi.reference import load_reference
from pkpi.settings import Settings
settings = Settings.from_env({"PKPI_DATA_DIR": sys.argv[2], "PKPI_REFERENCE_DIR": sys.argv[1] + "/seeds"})
reference = load_reference(settings)
_pandas_runner(), _duckdb_runner()
outcome = None
start = time.perf_counter()
if sys.argv[3] != "-":
    outcome = ingest_file(settings, Path(sys.argv[3]), reference, today=date(2025, 4, 15))
elapsed = time.perf_counter() - start
hwm = int(re.search(r"VmHWM:\s+(\d+) kB", Path("/proc/self/status").read_text()).group(1)) * 1024
print(json.dumps({"peak": hwm, "seconds": elapsed,
                  "status": outcome.status if outcome else "-",
                  "rules": sorted({p.rule for p in outcome.problems}) if outcome else [],
                  "errors": outcome.error_count if outcome else 0}))
"""


def contact_rows(rows: int, seed: int = 2025, bad: bool = False):
    """Realistic contacts rows as lists of text (see benchmarks/gate_throughput.py)."""
    rng = random.Random(seed)
    first = date(2025, 3, 1)
    for n in range(rows):
        contact = first + timedelta(days=rng.randrange(31))
        outcome = rng.choice(OUTCOMES)
        referral = ""
        if outcome == "referral":
            referral = (contact + timedelta(days=rng.choice((0, 0, 1, 2)))).isoformat()
        sex = "unknown" if bad else rng.choice(("female", "male", "male", "female", "not_known"))
        yield [f"CT-{2025030000000 + n}", f"NCT-{rng.randrange(10_000_000):07d}", contact.isoformat(),
               rng.choice(SOURCES), str(rng.randrange(18)), sex, rng.choice(ETHNICITY), outcome, referral]


def write_csv(path: Path, rows, pad_to: int | None = None, stop_at: int | None = None) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\r\n")
        writer.writerow(HEADER)
        written = 0
        for row in rows:
            line = io.StringIO()
            csv.writer(line, lineterminator="\r\n").writerow(row)
            text = line.getvalue()
            if pad_to:
                text = text.replace(",", " " * pad_to + ",", 1)  # spaces around values are trimmed
            handle.write(text)
            written += len(text)
            if stop_at and written >= stop_at:
                break


def case_csv_rows(path: Path, rows: int) -> None:
    write_csv(path, contact_rows(rows))


def case_csv_bytes(path: Path, rows: int) -> None:
    pad = max(0, (LIMITS.max_file_bytes - 1024) // rows - 80)
    write_csv(path, contact_rows(rows), pad_to=pad)


def case_csv_bad(path: Path, rows: int) -> None:
    write_csv(path, contact_rows(rows, bad=True))


def case_csv_over(path: Path, rows: int) -> None:
    write_csv(path, contact_rows(10 * LIMITS.max_rows), stop_at=LIMITS.max_file_bytes - 1024)


def case_csv_wide(path: Path, rows: int) -> None:
    width = LIMITS.max_columns
    header = ",".join(HEADER + [f"extra_{n}" for n in range(width - len(HEADER))]) + "\r\n"
    row = "1" + "," * (width - 1) + "\r\n"  # one value a row, or the row would be skipped as blank
    count = min(rows, (LIMITS.max_file_bytes - len(header)) // len(row))
    with path.open("w", newline="") as handle:
        handle.write(header)
        for _ in range(count // 1000):
            handle.write(row * 1000)


SHEET_HEAD = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
              '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
              '<dimension ref="A1:{last}"/><sheetData>')  # Excel always writes the dimension


def write_xlsx(path: Path, sheet_rows, strings: list[str] | None, last: str) -> None:
    """A workbook made from openpyxl's own parts, with its sheet (and shared strings) streamed in."""
    from openpyxl import Workbook

    book = Workbook()
    book.active.title = "contacts"
    book.active["A1"] = date(2025, 3, 1)  # gives the workbook a date style, s="1"
    template = io.BytesIO()
    book.save(template)
    with zipfile.ZipFile(template) as source, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
        for name in source.namelist():
            data = source.read(name)
            if name == "[Content_Types].xml" and strings is not None:
                data = data.replace(b"</Types>", b'<Override PartName="/xl/sharedStrings.xml" ContentType='
                                    b'"application/vnd.openxmlformats-officedocument.spreadsheetml.'
                                    b'sharedStrings+xml"/></Types>')
            if name == "xl/_rels/workbook.xml.rels" and strings is not None:
                data = data.replace(b"</Relationships>", b'<Relationship Id="rIdS" Type="http://schemas.'
                                    b'openxmlformats.org/officeDocument/2006/relationships/sharedStrings" '
                                    b'Target="sharedStrings.xml"/></Relationships>')
            if name != "xl/worksheets/sheet1.xml":
                target.writestr(name, data)
        with target.open("xl/worksheets/sheet1.xml", "w") as sheet:
            sheet.write(SHEET_HEAD.format(last=last).encode())
            buffer = []
            for xml in sheet_rows:
                buffer.append(xml)
                if len(buffer) == 10_000:
                    sheet.write("".join(buffer).encode())
                    buffer = []
            sheet.write(("".join(buffer) + "</sheetData></worksheet>").encode())
        if strings is not None:
            with target.open("xl/sharedStrings.xml", "w") as table:
                table.write(b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<sst xmlns='
                            b'"http://schemas.openxmlformats.org/spreadsheetml/2006/main">')
                for start in range(0, len(strings), 10_000):
                    table.write("".join(f"<si><t>{escape(s)}</t></si>" for s in strings[start:start + 10_000]).encode())
                table.write(b"</sst>")


def case_xlsx_rows(path: Path, rows: int) -> None:
    strings: dict[str, int] = {}

    def shared(text: str) -> int:
        return strings.setdefault(text, len(strings))

    excel_epoch = date(1899, 12, 30)

    def sheet_rows():
        yield "<row>" + "".join(f'<c t="s"><v>{shared(h)}</v></c>' for h in HEADER) + "</row>"
        for r in contact_rows(rows):
            cells = [f'<c t="s"><v>{shared(r[0])}</v></c>', f'<c t="s"><v>{shared(r[1])}</v></c>',
                     f'<c s="1"><v>{(date.fromisoformat(r[2]) - excel_epoch).days}</v></c>']
            cells += [f'<c t="s"><v>{shared(r[3])}</v></c>', f"<c><v>{r[4]}</v></c>"]
            cells += [f'<c t="s"><v>{shared(v)}</v></c>' for v in r[5:8]]
            if r[8]:
                cells.append(f'<c s="1"><v>{(date.fromisoformat(r[8]) - excel_epoch).days}</v></c>')
            yield "<row>" + "".join(cells) + "</row>"

    # The sheet refers to strings as it goes; write_xlsx writes the table after the sheet, by
    # which time this list holds every string in index order.
    listed: list[str] = []

    def rows_then_list():
        yield from sheet_rows()
        listed.extend(strings)

    write_xlsx(path, rows_then_list(), listed, f"I{rows + 1}")


def case_xlsx_wide(path: Path, rows: int) -> None:
    width = 25  # <c><v>42</v></c> is 17 bytes: 25 columns of 1M rows fill the uncompressed limit
    cell_rows = min(rows, LIMITS.xlsx_max_uncompressed_bytes // (width * 17 + 11) - 100)

    def sheet_rows():
        yield "<row>" + "".join(f'<c t="inlineStr"><is><t>{h}</t></is></c>'
                                for h in HEADER + [f"extra_{n}" for n in range(width - len(HEADER))]) + "</row>"
        row = "<row>" + "".join(f"<c><v>{10 + n}</v></c>" for n in range(width)) + "</row>"
        for _ in range(cell_rows):
            yield row

    write_xlsx(path, sheet_rows(), None, f"Y{cell_rows + 1}")


CASES = {name[5:]: fn for name, fn in globals().items() if name.startswith("case_")}


def run(name: str, rows: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="pkpi-limits-") as tmp:
        data = Path(tmp) / "data"
        target = "-"
        size = expanded = 0
        if name != "baseline":
            ext = "xlsx" if name.startswith("xlsx") else "csv"
            path = data / "landing" / "contacts" / "NCT" / PERIOD / f"{name}.{ext}"
            path.parent.mkdir(parents=True)
            CASES[name](path, rows)
            old = time.time() - 3600  # an upload finished an hour ago, not one still being written
            os.utime(path, (old, old))
            target, size = str(path), path.stat().st_size
            if ext == "xlsx":  # measured now: ingest moves the file away
                with zipfile.ZipFile(path) as archive:
                    expanded = sum(i.file_size for i in archive.infolist())
        done = subprocess.run([sys.executable, "-c", CHILD, str(REPO), str(data), target],
                              capture_output=True, text=True, check=False)
        if done.returncode:
            return {"case": name, "size": size, "failed": done.stderr[-2000:]}
        result = json.loads(done.stdout.strip().splitlines()[-1])
        return {"case": name, "size": size, "expanded": expanded, **result}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", action="append", choices=["baseline", *CASES])
    parser.add_argument("--rows", type=int, default=LIMITS.max_rows)
    args = parser.parse_args()
    mb = 1024 * 1024
    print(f"limits: {LIMITS}")
    for name in args.case or ["baseline", *CASES]:
        r = run(name, args.rows)
        if "failed" in r:
            print(f"{name:10} FAILED: {r['failed']}")
            continue
        expanded = f" (expands to {r['expanded'] / mb:,.0f} MB)" if r["expanded"] else ""
        print(f"{name:10} file {r['size'] / mb:7,.1f} MB{expanded}: peak {r['peak'] / mb:7,.0f} MB, "
              f"{r['seconds']:6.1f} s, {r['status']} {','.join(r['rules'])} ({r['errors']:,} errors)",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
