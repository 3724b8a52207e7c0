"""Hostile and careless files against the reader's bounds (issue 10, items 5 and 6).

A partner's file is untrusted input: whatever its size, shape or construction, reading it must
end in a table or a :class:`FileProblem` naming the limit it broke, never in an out-of-memory
crash. Workbooks are checked part by part before openpyxl expands them; the memory tests run the
read in a subprocess and measure its peak resident size (a memory bound, never a time bound).
The XLSX tests at the end check the sheet partners' workbooks are read from and their dates.
"""

from __future__ import annotations

import io
import re
import struct
import subprocess
import sys
import zipfile
import zlib
from datetime import date, datetime
from pathlib import Path

import pytest

from pkpi.gate import judge
from pkpi.ingest import ingest_landing
from pkpi.reading import MAX_ROW_CHARS, XLSX_MAX_PARTS, XLSX_MAX_SHEETS, FileProblem, read_table
from pkpi.reference import load_reference
from pkpi.settings import FileLimits, Settings
from support.returns import HEADERS, MONTH, TODAY, csv_bytes, drop_file, table, typed_cells, xlsx_bytes

MB = 1024 * 1024
CONTACTS = table("contacts")  # header and 4 valid rows
CSV_PATH = Path(f"contacts/NCT/{MONTH}/return.csv")
XLSX_PATH = CSV_PATH.with_suffix(".xlsx")

# Peak memory is the process's VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over
# exec from the forked parent (here pytest with Great Expectations loaded, some 250 MB).
PROBE = r"""
import re, sys
from pathlib import Path
from pkpi.reading import FileProblem, read_table
path = Path(sys.argv[1])
content = path.read_bytes()
try:
    outcome = "rows=%d" % len(read_table(path, content, "contacts").rows)
except FileProblem as problem:
    outcome = problem.rule + " " + problem.message.replace("\n", " ")
status = Path("/proc/self/status").read_text()
print(int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) * 1024)
print(outcome)
"""


def read_in_subprocess(path: Path) -> tuple[int, str]:
    """(peak resident bytes, outcome) of reading ``path`` with the default limits, in a fresh process."""
    done = subprocess.run([sys.executable, "-c", PROBE, str(path)], capture_output=True, text=True,
                          timeout=600, check=True)
    peak, outcome = done.stdout.strip().split("\n", 1)
    return int(peak), outcome


def problem(content: bytes, path: Path = CSV_PATH, limits: FileLimits | None = None) -> FileProblem:
    with pytest.raises(FileProblem) as caught:
        read_table(path, content, "contacts", limits)
    return caught.value


# --- building workbooks ------------------------------------------------------------------------

def rewrite(workbook: bytes, changes: dict[str, bytes | None] | None = None, add: dict[str, bytes] | None = None,
            level: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A workbook with some parts replaced (None deletes) or added."""
    changes = changes or {}
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(workbook)) as source, zipfile.ZipFile(out, "w", level) as target:
        for name in source.namelist():
            data = changes.get(name, source.read(name))
            if data is not None:
                target.writestr(name, data)
        for name, data in (add or {}).items():
            target.writestr(name, data)
    return out.getvalue()


def part(workbook: bytes, name: str) -> bytes:
    with zipfile.ZipFile(io.BytesIO(workbook)) as archive:
        return archive.read(name)


def sheet_xml(rows_xml: bytes, dimension: bytes = b"A1:I5") -> bytes:
    return (b'<?xml version="1.0" encoding="UTF-8"?>'
            b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
            b'<dimension ref="' + dimension + b'"/><sheetData>' + rows_xml + b"</sheetData></worksheet>")


def inline_row(number: int, values: list[str]) -> bytes:
    cells = b"".join(b'<c t="inlineStr"><is><t>%s</t></is></c>' % v.encode() for v in values)
    return b'<row r="%d">%s</row>' % (number, cells)


CONTACTS_XLSX = xlsx_bytes(("contacts", CONTACTS))
SHEET = "xl/worksheets/sheet1.xml"


# --- XLSX: checked before it is expanded ---------------------------------------------------------

@pytest.fixture(scope="module")
def workbook_bomb(tmp_path_factory) -> Path:
    """A few-MB workbook whose one sheet expands to 1.5 GB of repeated cells, written streaming."""
    path = tmp_path_factory.mktemp("bomb") / "bomb.xlsx"
    row = inline_row(2, CONTACTS[1]).replace(b' r="2"', b"")  # rows without r: one after another
    chunk = row * (MB // len(row))
    with zipfile.ZipFile(io.BytesIO(CONTACTS_XLSX)) as source, \
            zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as target:
        for name in source.namelist():
            if name != SHEET:
                target.writestr(name, source.read(name))
        with target.open(SHEET, "w") as sheet:
            head = sheet_xml(inline_row(1, CONTACTS[0]), b"A1:I2")
            sheet.write(head[: head.index(b"</sheetData>")])
            for _ in range(1500):
                sheet.write(chunk)
            sheet.write(b"</sheetData></worksheet>")
    return path


def test_a_workbook_that_expands_to_1_5_gb_is_rejected_before_it_is_expanded(workbook_bomb):
    with zipfile.ZipFile(workbook_bomb) as archive:
        expands_to = sum(info.file_size for info in archive.infolist())
    assert workbook_bomb.stat().st_size < 10 * MB and expands_to > 1.4e9
    peak, outcome = read_in_subprocess(workbook_bomb)
    assert outcome.startswith("xlsx_too_large")
    assert "400 MB" in outcome  # the message names the limit
    assert peak < 150 * MB, f"peak {peak / MB:.0f} MB reading a {expands_to / MB:.0f} MB workbook"


def _lie_about_size(workbook: bytes, name: str, declared: bytes) -> bytes:
    """Patch the zip so that member ``name`` declares the size and CRC of ``declared``."""
    data = bytearray(workbook)
    size, crc = len(declared), zlib.crc32(declared)
    with zipfile.ZipFile(io.BytesIO(workbook)) as archive:
        local = archive.getinfo(name).header_offset
    struct.pack_into("<I", data, local + 14, crc)
    struct.pack_into("<I", data, local + 22, size)
    eocd = data.rfind(b"PK\x05\x06")
    (entry,) = struct.unpack_from("<I", data, eocd + 16)  # where the central directory starts
    while True:  # walk the central directory to the member's entry
        name_len = struct.unpack_from("<H", data, entry + 28)[0]
        extra_len, comment_len = struct.unpack_from("<HH", data, entry + 30)
        if bytes(data[entry + 46: entry + 46 + name_len]) == name.encode():
            struct.pack_into("<I", data, entry + 16, crc)
            struct.pack_into("<I", data, entry + 24, size)
            return bytes(data)
        entry += 46 + name_len + extra_len + comment_len


def test_a_part_that_lies_about_its_size_is_stopped_at_the_size_it_declares(tmp_path):
    # zipfile's ZipFile.read() (which openpyxl uses for styles, workbook and relationships)
    # decompresses a member in one step and only then cuts it to the declared size: with the
    # CRC of the declared prefix forged, 300 MB would be expanded and the lie go unnoticed.
    styles = part(CONTACTS_XLSX, "xl/styles.xml")
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(CONTACTS_XLSX)) as source, \
            zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as target:
        for name in source.namelist():
            if name == "xl/styles.xml":
                with target.open(name, "w") as handle:
                    handle.write(styles + b"<!--")
                    for _ in range(300):
                        handle.write(b" " * MB)
                    handle.write(b"-->")
            else:
                target.writestr(name, source.read(name))
    path = tmp_path / "liar.xlsx"
    path.write_bytes(_lie_about_size(out.getvalue(), "xl/styles.xml", styles))
    peak, outcome = read_in_subprocess(path)
    assert outcome.startswith("file_format") and "beyond the size it declares" in outcome
    assert peak < 150 * MB, f"peak {peak / MB:.0f} MB"


def shared_strings(count: int) -> dict[str, bytes]:
    items = b"".join(b"<si><t>s%d</t></si>" % n for n in range(count))
    return {"xl/sharedStrings.xml": b'<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
                                    b'count="1" uniqueCount="1">' + items + b"</sst>"}


def test_shared_strings_are_counted_not_taken_from_the_count_attribute():
    limits = FileLimits(xlsx_max_shared_strings=1000)
    within = rewrite(CONTACTS_XLSX, add=shared_strings(1000))
    assert len(read_table(XLSX_PATH, within, "contacts", limits).rows) == 4
    found = problem(rewrite(CONTACTS_XLSX, add=shared_strings(1001)), XLSX_PATH, limits)
    assert found.rule == "xlsx_too_large" and "1,000 different text values" in found.message


def test_rows_are_counted_as_they_stream_whatever_the_dimension_claims():
    rows = inline_row(1, CONTACTS[0]) + b"".join(
        inline_row(n, [f"C{n:03}", f"K-{n}"] + CONTACTS[1][2:]) for n in range(2, 14))  # 12 data rows
    workbook = rewrite(CONTACTS_XLSX, {SHEET: sheet_xml(rows, dimension=b"A1:I2")})
    # The dimension says one data row: all twelve are still read, none silently dropped...
    read = read_table(XLSX_PATH, workbook, "contacts", FileLimits(max_rows=12))
    assert [r[0] for r in read.rows] == [f"C{n:03}" for n in range(2, 14)]
    # ...and counted against the limit.
    found = problem(workbook, XLSX_PATH, FileLimits(max_rows=11))
    assert found.rule == "too_many_rows" and "11 data rows" in found.message


def test_a_value_far_down_or_far_right_breaks_the_row_or_column_limit():
    far_down = rewrite(CONTACTS_XLSX, {SHEET: sheet_xml(
        inline_row(1, CONTACTS[0]) + b'<row r="1048576"><c r="A1048576"><v>1</v></c></row>')})
    assert problem(far_down, XLSX_PATH).rule == "too_many_rows"
    far_right = rewrite(CONTACTS_XLSX, {SHEET: sheet_xml(
        inline_row(1, CONTACTS[0]) + b'<row r="2"><c r="KN2"><v>1</v></c></row>')})  # column 300
    found = problem(far_right, XLSX_PATH)
    assert found.rule == "too_many_columns" and "column 300" in found.message


def test_a_dimension_claiming_the_whole_sheet_costs_nothing():
    workbook = rewrite(CONTACTS_XLSX, {SHEET: part(CONTACTS_XLSX, SHEET).replace(
        b'<dimension ref="A1:I5"/>', b'<dimension ref="A1:XFD1048576"/>')})
    read = read_table(XLSX_PATH, workbook, "contacts")
    assert len(read.rows) == 4 and len(read.header) == 9


def test_a_row_with_more_cells_than_excel_allows_is_refused_before_openpyxl_builds_it():
    # openpyxl holds a whole <row> element in memory until it ends; cells out of order or past
    # column XFD (16,384) are the only way to make one huge, and Excel never writes them.
    row = b'<row r="2">' + b'<c r="A2"><v>1</v></c>' * 20_000 + b"</row>"
    workbook = rewrite(CONTACTS_XLSX, {SHEET: sheet_xml(inline_row(1, CONTACTS[0]) + row)})
    found = problem(workbook, XLSX_PATH)
    assert found.rule == "file_format" and "out of order" in found.message


LAUGHS = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
          + b"".join(b'<!ENTITY lol%d "%s">' % (n, (b"&lol%d;" % (n - 1) if n > 1 else b"&lol;") * 10)
                     for n in range(1, 10))
          + b"]>")


@pytest.mark.parametrize("member, doctype", [
    ("xl/workbook.xml", LAUGHS),  # billion laughs: 10^9 "lol"s from a few hundred bytes
    (SHEET, b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'),
    ("[Content_Types].xml", b'<?xml version="1.0"?><!DOCTYPE x SYSTEM "http://attacker.example/x.dtd">'),
])
def test_a_document_type_declaration_in_any_part_is_refused(member, doctype):
    original = part(CONTACTS_XLSX, member)
    body = re.sub(rb"^<\?xml[^>]*\?>", b"", original)
    if member == SHEET:  # the external entity is used in a cell, as an attacker would
        body = body.replace(b"<t>K-1001</t>", b"<t>&e;</t>")
    found = problem(rewrite(CONTACTS_XLSX, {member: doctype + body}), XLSX_PATH)
    assert found.rule == "file_format" and "DOCTYPE" in found.message
    assert "root:" not in found.message


def test_thousands_of_sheets_or_parts_are_refused():
    from openpyxl import Workbook

    many = Workbook()
    for n in range(XLSX_MAX_SHEETS):
        many.create_sheet(f"s{n}")
    buffer = io.BytesIO()
    many.save(buffer)
    found = problem(buffer.getvalue(), XLSX_PATH)
    assert found.rule == "xlsx_too_large" and f"{XLSX_MAX_SHEETS} sheets" in found.message
    junk = {f"xl/media/image{n}.png": b"" for n in range(XLSX_MAX_PARTS)}
    found = problem(rewrite(CONTACTS_XLSX, add=junk), XLSX_PATH)
    assert found.rule == "xlsx_too_large" and "1,000 parts" in found.message


def test_an_enormous_cell_is_refused():
    workbook = rewrite(CONTACTS_XLSX, {SHEET: sheet_xml(
        inline_row(1, CONTACTS[0]) + inline_row(2, ["C1", "x" * 1_100_000]))})
    found = problem(workbook, XLSX_PATH)
    assert found.rule == "xlsx_too_large" and "1,000,000 characters" in found.message
    assert "xxxx" not in found.message


# --- CSV ------------------------------------------------------------------------------------------

def test_csv_size_rows_and_columns_are_limited_by_settings():
    content = csv_bytes(CONTACTS)
    assert problem(content, limits=FileLimits(max_file_bytes=len(content) - 1)).rule == "file_too_large"
    assert len(read_table(CSV_PATH, content, "contacts", FileLimits(max_rows=4)).rows) == 4
    found = problem(content, limits=FileLimits(max_rows=3))
    assert found.rule == "too_many_rows" and "3 data rows" in found.message
    wide = csv_bytes([HEADERS["contacts"] + [f"extra{n}" for n in range(200)]])
    found = problem(wide)
    assert found.rule == "too_many_columns" and "209 columns" in found.message and "200" in found.message


def test_the_limits_come_from_the_environment():
    limits = Settings.from_env({"PKPI_DATA_DIR": "/tmp/x", "PKPI_MAX_FILE_MB": "2", "PKPI_MAX_ROWS": "3",
                                "PKPI_MAX_COLUMNS": "9", "PKPI_XLSX_MAX_UNCOMPRESSED_MB": "5",
                                "PKPI_XLSX_MAX_SHARED_STRINGS": "7"}).limits
    assert limits == FileLimits(max_file_bytes=2 * MB, max_rows=3, max_columns=9,
                                xlsx_max_uncompressed_bytes=5 * MB, xlsx_max_shared_strings=7)


def test_an_enormous_field_is_refused_without_repeating_it():
    rows = [list(r) for r in CONTACTS]
    rows[2][1] = "K" + "9" * (MAX_ROW_CHARS + 10)
    found = problem(csv_bytes(rows))
    assert found.rule == "row_too_large" and found.row == 3
    assert "999" not in found.message


def test_one_field_split_over_many_lines_is_bounded_as_one_row():
    # Quoted line breaks join lines into one record: the bound is on the record, not the line.
    header = ",".join(HEADERS["contacts"]).encode()
    body = b'"a\r\n",' * (MAX_ROW_CHARS // 6 + 10) + b"x\r\n"
    assert problem(header + b"\r\n" + body).rule == "row_too_large"


def test_a_single_200_mb_line_is_refused_using_little_memory(tmp_path):
    path = tmp_path / "contacts" / "NCT" / MONTH / "line.csv"
    path.parent.mkdir(parents=True)
    with path.open("wb") as handle:  # 100 million empty fields on one line, written in pieces
        for _ in range(100):
            handle.write(b"a," * (MB // 2))
    peak, outcome = read_in_subprocess(path)
    assert outcome.startswith("row_too_large")
    # The file's own bytes are held once; splitting the line would take gigabytes.
    assert peak < path.stat().st_size + 150 * MB, f"peak {peak / MB:.0f} MB"


def test_a_limit_breach_at_ingest_is_a_rejection_with_its_rule(tmp_path):
    settings = Settings.from_env({"PKPI_DATA_DIR": str(tmp_path / "data"), "PKPI_MAX_ROWS": "3",
                                  "PKPI_REFERENCE_DIR": str(Path(__file__).resolve().parents[1] / "seeds")})
    drop_file(settings.landing_dir, str(CSV_PATH), csv_bytes(CONTACTS))
    report = ingest_landing(settings, today=TODAY)
    [outcome] = report.outcomes
    assert outcome.status == "rejected"
    assert [p.rule for p in outcome.problems] == ["too_many_rows"]
    assert "3 data rows" in outcome.problems[0].message


# --- XLSX as partners make it (item 6) -------------------------------------------------------------

def workbook(*sheets: tuple[str, list[list[object]], str]) -> bytes:
    """(title, rows, state) sheets in order; state is visible, hidden or veryHidden."""
    from openpyxl import Workbook

    book = Workbook()
    for index, (title, rows, state) in enumerate(sheets):
        sheet = book.active if index == 0 else book.create_sheet()
        sheet.title = title
        for r in rows:
            sheet.append(r)
        sheet.sheet_state = state
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


OLD_COPY = table("contacts", {(2, "contact_id"): "OLD"})


@pytest.mark.parametrize("state", ["hidden", "veryHidden"])
def test_hidden_sheets_are_never_read(state):
    content = workbook(("Sheet1", OLD_COPY, state), ("Data", CONTACTS, "visible"))
    read = read_table(XLSX_PATH, content, "contacts")
    assert read.rows[0][0] == "C001" and read.notes == []


def test_a_hidden_sheet_named_after_the_return_is_passed_over_and_the_partner_told():
    content = workbook(("Contacts", OLD_COPY, "hidden"), ("Sheet2", CONTACTS, "visible"))
    read = read_table(XLSX_PATH, content, "contacts")
    assert read.rows[0][0] == "C001"
    assert read.notes == ["the sheet named 'Contacts' is hidden, so the first visible sheet 'Sheet2' "
                          "was read; unhide it or delete it"]


def test_the_visible_sheet_named_after_the_return_wins_over_the_first():
    content = workbook(("Notes", [["Read me"]], "visible"), (" CONTACTS ", CONTACTS, "visible"))
    assert read_table(XLSX_PATH, content, "contacts").rows[0][0] == "C001"


def test_a_date_cell_with_a_time_of_day_is_its_date(settings):
    rows = typed_cells(CONTACTS)
    rows[1][2] = datetime(2025, 3, 4, 13, 45)  # contact_date typed with a time
    rows[2][8] = datetime(2025, 3, 11, 23, 59, 59)  # referral_date
    path = drop_file(settings.landing_dir, str(XLSX_PATH), xlsx_bytes(("contacts", rows)))
    verdict = judge(path, path.read_bytes(), settings.landing_dir, load_reference(settings), today=TODAY)
    assert verdict.accepted, verdict.problems
    assert verdict.rows["contact_date"].tolist()[:2] == [date(2025, 3, 4), date(2025, 3, 10)]
    assert verdict.rows["referral_date"].tolist()[1] == date(2025, 3, 11)
