"""Reading a partner's file into a table of text, exactly as the partner wrote it.

The reader knows file formats, not contracts: it turns CSV (UTF-8 with or without a BOM, or
Windows-1252 decoded correctly) or XLSX (the sheet named after the return type, else the first
sheet) into a header and rows of trimmed strings, with the file's own row numbers. Anything it
cannot read safely becomes a :class:`FileProblem` whose message tells the partner what to do.
"""

from __future__ import annotations

import csv
import io
import zipfile
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path

MAX_FILE_BYTES = 200 * 1024 * 1024
MAX_FIELD_CHARS = 1_000_000
csv.field_size_limit(MAX_FIELD_CHARS)

XLSX_MAGIC = b"PK\x03\x04"
OLE_MAGIC = b"\xd0\xcf\x11\xe0"  # legacy .xls, .doc
UTF8_BOM = b"\xef\xbb\xbf"
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


@dataclass(frozen=True)
class FileProblem(Exception):
    """The file as a whole cannot be read; ``rule`` names the contract rule it breaks."""

    rule: str
    message: str
    row: int | None = None

    def __str__(self) -> str:  # pragma: no cover - convenience
        return self.message


@dataclass
class TextTable:
    """A file's header and rows as trimmed text (None for blank cells)."""

    header: list[str]
    rows: list[list[str | None]]
    source_rows: list[int]  # the file's row number of each row (header is row 1)
    encoding: str = "utf-8"
    notes: list[str] = field(default_factory=list)


def read_table(path: Path, content: bytes, sheet_hint: str) -> TextTable:
    """Read ``content`` (the bytes of ``path``) as CSV or XLSX into a :class:`TextTable`."""
    suffix = path.suffix.lower()
    if len(content) > MAX_FILE_BYTES:
        raise FileProblem(
            "file_too_large",
            f"The file is {len(content) / 1e6:.0f} MB; the limit is {MAX_FILE_BYTES / 1e6:.0f} MB. "
            "Split it or contact the partnership data team.",
        )
    if not content.strip(b" \t\r\n" + UTF8_BOM):
        raise FileProblem(
            "file_empty",
            "The file is empty: it has no header row. To report nothing this period, send a nil "
            "return: the header row with no data rows (use the blank template).",
        )
    if suffix == ".csv":
        if content.startswith(XLSX_MAGIC):
            raise FileProblem(
                "file_format",
                "The file is named .csv but is an Excel workbook. Save it as CSV UTF-8, or rename "
                "it to .xlsx.",
            )
        return _read_csv(content)
    if suffix == ".xlsx":
        return _read_xlsx(content, sheet_hint)
    if suffix == ".xls" or content.startswith(OLE_MAGIC):
        raise FileProblem(
            "file_format",
            "Old-style .xls workbooks are not accepted. Save the file as .xlsx or as CSV UTF-8.",
        )
    raise FileProblem(
        "file_format",
        f"Files of type '{suffix or '(no extension)'}' are not accepted. Send a .csv (UTF-8) or "
        ".xlsx file built from the blank template.",
    )


def _decode(content: bytes) -> tuple[str, str]:
    if content.startswith(UTF16_BOMS) or _looks_like_utf16(content):
        raise FileProblem(
            "encoding",
            "The file is saved as UTF-16 ('Unicode Text'). Save it as 'CSV UTF-8 (Comma "
            "delimited)' and send it again.",
        )
    if b"\x00" in content:
        raise FileProblem(
            "file_format",
            "The file contains binary data (NUL bytes), so it is not a CSV text file. Save it as "
            "'CSV UTF-8 (Comma delimited)' and send it again.",
        )
    if content.startswith(UTF8_BOM):
        content = content[len(UTF8_BOM):]
    try:
        return content.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    # Not UTF-8: Excel's plain "CSV (Comma delimited)" writes Windows-1252. Decode it as such
    # (so "£" and "é" stay what they were) unless it holds bytes 1252 does not define.
    try:
        return content.decode("cp1252"), "windows-1252"
    except UnicodeDecodeError as exc:
        raise FileProblem(
            "encoding",
            f"The file is neither UTF-8 nor Windows-1252 text (byte 0x{content[exc.start]:02x} at "
            f"position {exc.start}). Save it as 'CSV UTF-8 (Comma delimited)' and send it again.",
        ) from None


def _looks_like_utf16(content: bytes) -> bool:
    """UTF-16 saved without a byte order mark: ASCII text with a NUL beside every character."""
    sample = content[:4096]
    if len(sample) < 4:
        return False
    even, odd = sample[0::2], sample[1::2]
    return even.count(0) > 0.9 * len(even) or odd.count(0) > 0.9 * len(odd)


def _clean(cell: str | None) -> str | None:
    if cell is None:
        return None
    cell = cell.strip()
    return cell or None


def _read_csv(content: bytes) -> TextTable:
    text, encoding = _decode(content)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        records = list(reader)
    except csv.Error as exc:
        raise FileProblem(
            "csv_structure",
            f"The file is not valid CSV near row {reader.line_num} ({exc}). Check for an unclosed "
            "quote; quote any value that contains a comma, quote or line break.",
            row=reader.line_num,
        ) from None
    if not records:
        raise FileProblem("file_empty", "The file has no header row.")
    header, body = records[0], records[1:]
    _check_delimiter(header)
    table = TextTable(header=[h.strip() for h in header], rows=[], source_rows=[], encoding=encoding)
    if encoding != "utf-8":
        table.notes.append("read as Windows-1252 text; please send CSV UTF-8 in future")
    width = len(header)
    rows, source_rows = table.rows, table.source_rows
    for index, record in enumerate(body, start=2):
        # Inline rather than _clean(): this loop runs once per cell of files of 100,000s of rows.
        cells = [c.strip() or None for c in record]
        if not any(cells):
            continue  # spreadsheet programs leave wholly blank lines; they carry nothing
        if len(record) != width:
            raise FileProblem(
                "csv_structure",
                f"Row {index} has {len(record)} values but the header has {width} columns. Check "
                "for unquoted commas in values, or a missing value.",
                row=index,
            )
        rows.append(cells)
        source_rows.append(index)
    return table


def _check_delimiter(header: list[str]) -> None:
    if len(header) == 1:
        only = header[0]
        for sep, name in ((";", "semicolons"), ("\t", "tabs"), ("|", "vertical bars")):
            if sep in only:
                raise FileProblem(
                    "delimiter",
                    f"The file is separated by {name}, not commas. Save it as 'CSV UTF-8 (Comma "
                    "delimited)' and send it again.",
                    row=1,
                )


def _xlsx_cell_text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, datetime):
        if value.time() == time(0, 0):
            return value.date().isoformat()
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return _clean(str(value))


def _unreadable_xlsx(exc: Exception) -> FileProblem:
    return FileProblem(
        "file_format",
        f"The file is named .xlsx but cannot be opened as an Excel workbook ({type(exc).__name__}). "
        "Save it again from Excel as .xlsx, or send CSV UTF-8.",
    )


def _read_xlsx(content: bytes, sheet_hint: str) -> TextTable:
    # A damaged workbook can fail anywhere in openpyxl (XML parse errors, missing parts,
    # IndexError on a broken shared-string table), while opening or while reading rows. Any
    # such failure is the file's problem: it must be quarantined, never stop the ingest run.
    try:
        return _read_workbook(content, sheet_hint)
    except FileProblem:
        raise
    except Exception as exc:  # noqa: BLE001 - see above
        raise _unreadable_xlsx(exc) from None


def _read_workbook(content: bytes, sheet_hint: str) -> TextTable:
    from openpyxl import load_workbook  # imported here: CSV-only runs need not pay for it

    workbook = load_workbook(io.BytesIO(content), read_only=True, data_only=False)
    try:
        names = {name.lower(): name for name in workbook.sheetnames}
        sheet = workbook[names.get(sheet_hint.lower(), workbook.sheetnames[0])]
        rows_iter = sheet.iter_rows(values_only=True)
        header_row = next(rows_iter, None)
        if header_row is None or not any(v is not None and str(v).strip() for v in header_row):
            raise FileProblem(
                "file_empty",
                f"The worksheet '{sheet.title}' has no header in row 1. Put the column names in "
                "row 1 (use the blank template).",
            )
        header = ["" if v is None else str(v).strip() for v in header_row]
        while header and header[-1] == "":
            header.pop()
        table = TextTable(header=header, rows=[], source_rows=[], encoding="xlsx")
        width = len(header)
        for index, values in enumerate(rows_iter, start=2):
            cells = [_xlsx_cell_text(v) for v in values]
            extra = [c for c in cells[width:] if c is not None]
            cells = (cells + [None] * width)[:width]
            if not any(cells) and not extra:
                continue
            if extra:
                raise FileProblem(
                    "csv_structure",
                    f"Row {index} has values beyond the last named column. Give every column a "
                    "header or delete the stray values.",
                    row=index,
                )
            table.rows.append(cells)
            table.source_rows.append(index)
        return table
    finally:
        workbook.close()
