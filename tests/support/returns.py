"""Building partner return files for the gate and ingest tests.

Every file starts from a small valid return per type (``VALID``), edited cell by cell, and is
written as CSV bytes (any encoding, delimiter or line ending) or as an XLSX workbook built with
openpyxl. Periods: monthly returns are for 2025-03 and finance for 2024-25; the tests run the
gate "today" = 2025-04-15 so that dates in April 2025 are outside the month and
2025-04-20 is in the future.

:func:`make_reference` copies the shipped seeds into a test folder with two changes: only NCT
and ICB keep a data contact (so most rejections send no notice), and a partner OLD whose
membership ended before 2025 is added.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
from datetime import date, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SEEDS = REPO / "seeds"

MONTH = "2025-03"
FINANCIAL_YEAR = "2024-25"
TODAY = date(2025, 4, 15)
CONTACT_PARTNERS = {"NCT": "data@nct.example", "ICB": "cdop.data@icb.example"}
INACTIVE_PARTNER = "OLD"

HEADERS = {
    "contacts": ["contact_id", "child_id", "contact_date", "contact_source", "child_age_years",
                 "sex", "ethnicity", "outcome", "referral_date"],
    "training": ["record_id", "course_code", "delivery_mode", "event_type", "event_date",
                 "learner_sector", "impact_positive"],
    "child_deaths": ["notification_id", "notification_date", "age_band", "sex", "ethnicity",
                     "death_type", "jar_within_72h"],
    "finance": ["contribution_type", "amount_gbp", "agreed_amount_gbp"],
}

# Valid data rows; file row numbers start at 2 (the header is row 1).
VALID = {
    "contacts": [
        ["C001", "K-1001", "2025-03-03", "police", "7", "female", "white", "nfa", ""],          # row 2
        ["C002", "K-1002", "2025-03-10", "education", "12", "male", "asian", "referral", "2025-03-11"],  # 3
        ["C003", "K-1003", "2025-03-20", "health", "0", "not_known", "black", "advice", ""],    # row 4
        ["C004", "K-1004", "2025-03-31", "self", "17", "female", "mixed", "early_help", ""],    # row 5
    ],
    "training": [
        ["T001", "EL-AWARE", "elearning", "completed", "2025-03-04", "health", "yes"],         # row 2
        ["T002", "F2F-DA", "face_to_face", "attended", "2025-03-12", "police", "no"],           # row 3
        ["T003", "F2F-WT", "virtual", "did_not_attend", "2025-03-20", "education", ""],         # row 4
        ["T004", "EL-ONLINE", "elearning", "commenced", "2025-03-25", "early_years", ""],       # row 5
    ],
    "child_deaths": [
        ["N001", "2025-03-02", "under_28_days", "male", "white", "expected", ""],               # row 2
        ["N002", "2025-03-15", "10_to_14", "female", "mixed", "unexpected", "yes"],             # row 3
        ["N003", "2025-03-28", "1_to_4", "not_known", "not_known", "not_known", ""],            # row 4
    ],
    "finance": [
        ["core", "125000.00", "125000"],                                                         # row 2
        ["dsg", "40000.5", ""],                                                                  # row 3
        ["grant", "0", ""],                                                                      # row 4
    ],
}


def table(return_type: str, cells: dict[tuple[int, str], str] | None = None, *,
          drop: tuple[str, ...] = (), rename: dict[str, str] | None = None,
          add: dict[str, list[str]] | None = None, rows: list[list[str]] | None = None,
          extra_rows: list[list[str]] | None = None) -> list[list[str]]:
    """A return as a list of rows (header first), edited.

    ``cells`` maps (file row number, column name) to a new value; ``drop`` removes columns,
    ``rename`` renames header cells, ``add`` appends columns (header -> one value per data row).
    """
    header = list(HEADERS[return_type])
    body = [list(r) for r in (VALID[return_type] if rows is None else rows)] + list(extra_rows or [])
    for (row_number, column), value in (cells or {}).items():
        body[row_number - 2][header.index(column)] = value
    for column in drop:
        index = header.index(column)
        header.pop(index)
        for r in body:
            r.pop(index)
    for old, new in (rename or {}).items():
        header[header.index(old)] = new
    for column, values in (add or {}).items():
        header.append(column)
        for r, v in zip(body, values):
            r.append(v)
    return [header] + body


def csv_bytes(rows: list[list[str]], *, encoding: str = "utf-8", delimiter: str = ",",
              newline: str = "\r\n", bom: bool = False) -> bytes:
    buffer = io.StringIO(newline="")
    csv.writer(buffer, delimiter=delimiter, lineterminator=newline).writerows(rows)
    data = buffer.getvalue().encode(encoding)
    return (b"\xef\xbb\xbf" + data) if bom else data


def xlsx_bytes(*sheets: tuple[str, list[list[object]]]) -> bytes:
    """A workbook with the given (title, rows) sheets, in order. Strings starting with = are formulas."""
    from openpyxl import Workbook

    workbook = Workbook()
    for index, (title, rows) in enumerate(sheets):
        sheet = workbook.active if index == 0 else workbook.create_sheet()
        sheet.title = title
        for r in rows:
            sheet.append(r)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def typed_cells(rows: list[list[str]]) -> list[list[object]]:
    """Rows as a spreadsheet would hold them: ISO dates as date cells, whole numbers as numbers."""
    out = []
    for r in rows:
        cells: list[object] = []
        for v in r:
            if len(v) == 10 and v[4] == "-" and v[7] == "-":
                cells.append(datetime.fromisoformat(v))  # Excel date cells come back as datetimes
            elif v.isdigit():
                cells.append(int(v))
            else:
                cells.append(v or None)
        out.append(cells)
    return out


def drop_file(landing: Path, relative: str, content: bytes, mtime: float | None = None) -> Path:
    """Put a file in landing, as a partner's upload would, optionally with a given mtime."""
    path = landing / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def make_reference(folder: Path) -> Path:
    """A reference folder: the seeds, contacts only for NCT and ICB, plus an inactive partner."""
    shutil.copytree(SEEDS, folder)
    path = folder / "partners.csv"
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    header = rows[0]
    code, contact = header.index("partner_code"), header.index("data_contact_email")
    for r in rows[1:]:
        r[contact] = CONTACT_PARTNERS.get(r[code], "")
    rows.append([INACTIVE_PARTNER, "Former Partner Agency", "other", "false", "2020-04-01",
                 "2024-12-31", ""])
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle, lineterminator="\n").writerows(rows)
    return folder
