"""Reading a partner's file into a table of text, exactly as the partner wrote it.

The reader knows file formats, not contracts: it turns CSV (UTF-8 with or without a BOM, or
Windows-1252 decoded correctly) or XLSX (the visible sheet named after the return type, else the
first visible sheet) into a header and rows of trimmed strings, with the file's own row numbers.
Anything it cannot read safely becomes a :class:`FileProblem` whose message tells the partner
what to do.

Every file is treated as possibly hostile: its size, rows, columns and row length are bounded
by :class:`~pkpi.settings.FileLimits` while it is read, and a workbook is checked part by part
(declared and actual expanded sizes, shared strings, sheets, rows, columns, no DTDs) before
openpyxl expands any of it. A breach is a rejection, never an out-of-memory crash.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
import re
import struct
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from xml.parsers import expat

from .errors import PermanentError
from .settings import FileLimits

# openpyxl parses through defusedxml when it is installed, which swaps the C XML parser for a
# pure-Python one (about five times slower on large sheets). Every part is scanned here first
# and refused if it has a DOCTYPE, the only way in for entity expansion and external entities,
# so the fast parser is safe. Set before openpyxl is first imported; an explicit value wins.
os.environ.setdefault("OPENPYXL_DEFUSEDXML", "False")

MAX_FIELD_CHARS = 1_000_000
"""The longest value (CSV field, XLSX cell or any run of XML text) read; Excel's own cell limit
is 32,767 characters."""
MAX_ROW_CHARS = 1_000_000
"""The longest CSV row read, counted before it is split (a return row is well under 1 KB), so a
single enormous line can never be expanded into millions of fields."""
csv.field_size_limit(MAX_FIELD_CHARS)

XLSX_MAX_PARTS = 1_000  # zip members; a workbook from the template has about 15
XLSX_MAX_SHEETS = 250
XLSX_MAX_OTHER_PART_BYTES = 32 * 1024 * 1024
"""Parts other than worksheets and shared strings (styles, workbook, relationships...) are read
whole by openpyxl into element trees of roughly ten times their size, so they get a tighter bound."""
EXCEL_MAX_COLUMN = 16_384  # XFD
EXCEL_MAX_ROW = 1_048_576
INFLATE_CHUNK = 1024 * 1024

XLSX_MAGIC = b"PK\x03\x04"
OLE_MAGIC = b"\xd0\xcf\x11\xe0"  # legacy .xls, .doc
UTF8_BOM = b"\xef\xbb\xbf"
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
CP1252_UNDEFINED = re.compile(rb"[\x81\x8d\x8f\x90\x9d]")


@dataclass(frozen=True)
class FileProblem(PermanentError):
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
    rows: Sequence[list[str | None]]
    source_rows: list[int]  # the file's row number of each row (header is row 1)
    encoding: str = "utf-8"
    notes: list[str] = field(default_factory=list)
    columns: list[list[str | None]] | None = None  # the same cells column by column, when read so

    def column(self, index: int) -> list[str | None]:
        """Every row's cell in column ``index`` (0-based), in row order."""
        if self.columns is not None:
            return self.columns[index]
        return [row[index] for row in self.rows]


class _ColumnRows(Sequence):
    """The rows of a table held column by column, built only when something asks for them."""

    def __init__(self, columns: list[list[str | None]], length: int) -> None:
        self._columns, self._length = columns, length

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._length))]
        return [column[index] for column in self._columns]

    def __iter__(self):
        return map(list, zip(*self._columns)) if self._columns else iter([[]] * self._length)


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):,.0f} MB"


def read_table(path: Path, content: bytes, sheet_hint: str, limits: FileLimits | None = None) -> TextTable:
    """Read ``content`` (the bytes of ``path``) as CSV or XLSX into a :class:`TextTable`.

    ``limits`` (default: :class:`FileLimits` defaults) bound the file's size, rows and columns
    and how far a workbook may expand; a breach raises :class:`FileProblem`.
    """
    limits = limits or FileLimits()
    suffix = path.suffix.lower()
    if len(content) > limits.max_file_bytes:
        raise FileProblem(
            "file_too_large",
            f"The file is {_mb(len(content))}; the largest file accepted is "
            f"{_mb(limits.max_file_bytes)}. Check it is the right file (a monthly return is "
            "normally well under 10 MB); if it really is this large, contact the partnership "
            "data team, who can raise the limit.",
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
        return _read_csv(content, limits)
    if suffix == ".xlsx":
        return _read_xlsx(content, sheet_hint, limits)
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


def _too_many_rows(limits: FileLimits, where: str = "The file") -> FileProblem:
    return FileProblem(
        "too_many_rows",
        f"{where} has more than {limits.max_rows:,} data rows, the most a return may hold. Check "
        "it is the right file and holds only this return's rows; if it really has more, contact "
        "the partnership data team, who can raise the limit.",
    )


def _too_many_columns(limits: FileLimits, found: str) -> FileProblem:
    return FileProblem(
        "too_many_columns",
        f"{found}, more than the {limits.max_columns:,} columns a return may have. Keep only the "
        "contract's columns (see the blank template) and delete everything to their right.",
        row=1,
    )


# --- CSV ----------------------------------------------------------------------------------------

def _encoding(content: bytes) -> str:
    """The encoding to read ``content`` with, found without decoding it all into memory at once."""
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
    view = memoryview(content)[len(UTF8_BOM) if content.startswith(UTF8_BOM) else 0:]
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        for start in range(0, len(view), INFLATE_CHUNK):
            decoder.decode(view[start:start + INFLATE_CHUNK])
        decoder.decode(b"", final=True)
        return "utf-8"
    except UnicodeDecodeError:
        pass
    # Not UTF-8: Excel's plain "CSV (Comma delimited)" writes Windows-1252. Decode it as such
    # (so "£" and "é" stay what they were) unless it holds bytes 1252 does not define.
    bad = CP1252_UNDEFINED.search(view)
    if bad:
        raise FileProblem(
            "encoding",
            f"The file is neither UTF-8 nor Windows-1252 text (byte 0x{view[bad.start()]:02x} at "
            f"position {bad.start()}). Save it as 'CSV UTF-8 (Comma delimited)' and send it again.",
        )
    return "windows-1252"


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


class _RecordLines:
    """The file's lines for csv.reader, decoded as they are read, at most MAX_ROW_CHARS per record.

    csv.reader only hands back a record once it is complete, so the bound has to sit underneath
    it: ``record_done`` is called after each record, and a record (one line, or several joined by
    quoted line breaks) that grows past the bound stops the read before it is split into fields.
    """

    def __init__(self, content: bytes, encoding: str) -> None:
        source = io.BytesIO(content)  # shares the bytes; no copy
        source.seek(len(UTF8_BOM) if content.startswith(UTF8_BOM) else 0)
        self.stream = io.TextIOWrapper(source, encoding=encoding, newline="")
        self.pending = 0
        self.row = 1

    def __iter__(self) -> "_RecordLines":
        return self

    def __next__(self) -> str:
        line = self.stream.readline(MAX_ROW_CHARS + 1)
        if not line:
            raise StopIteration
        self.pending += len(line)
        if self.pending > MAX_ROW_CHARS:
            raise FileProblem(
                "row_too_large",
                f"Row {self.row} is longer than {MAX_ROW_CHARS:,} characters, far longer than any "
                "return row. Check the file was saved as 'CSV UTF-8 (Comma delimited)' from the "
                "template and that no quote is left open.",
                row=self.row,
            )
        return line

    def record_done(self) -> None:
        self.pending = 0
        self.row += 1


_WHITESPACE = re.compile(r"\s")
PLAIN_CSV_MIN_BYTES = 256 * 1024
"""Files at least this large are first tried by :func:`_read_plain_csv` (below it the record
reader is as fast, and every small file takes one well-trodden path)."""


def _read_csv(content: bytes, limits: FileLimits) -> TextTable:
    encoding = _encoding(content)
    if len(content) >= PLAIN_CSV_MIN_BYTES:
        table = _read_plain_csv(content, encoding, limits)
        if table is not None:
            return table
    return _read_records(content, encoding, limits)


def _read_plain_csv(content: bytes, encoding: str, limits: FileLimits) -> TextTable | None:
    """The table :func:`_read_records` reads, for a file it provably reads as plain lines of
    comma-separated values; None (read it record by record) for anything else.

    A file without a single quote character is split by csv.reader exactly at its commas and
    line breaks, so splitting the whole text at once (C string methods, no per-cell Python)
    gives the same cells. Every case where the record reader would say something (a row of the
    wrong width, a blank or over-long line, mixed line breaks, too many rows or columns, one
    column only) is left to it, so every problem keeps its exact rule, row and message.
    """
    start = len(UTF8_BOM) if content.startswith(UTF8_BOM) else 0
    if b'"' in content:
        return None
    text = str(content[start:], encoding)
    if "\r" not in text:
        newline = "\n"
    elif text.count("\r") == text.count("\r\n") == text.count("\n"):
        newline = "\r\n"
    else:
        return None  # lone carriage returns, or both kinds of line break
    lines = text.split(newline)
    del text
    if lines[-1] == "":
        lines.pop()
    if len(lines) < 2 or len(lines) - 1 > limits.max_rows or "" in lines:
        return None
    if max(map(len, lines)) + len(newline) > MAX_ROW_CHARS:
        return None
    header = lines[0].split(",")
    width = len(header)
    if width < 2 or width > limits.max_columns:
        return None
    commas = width - 1
    if set(map(str.count, lines, [","] * len(lines))) != {commas}:
        return None
    joined = ",".join(lines[1:])
    count = len(lines) - 1
    del lines
    # As _clean() does to each cell, column by column at C speed: stripped (only when the text
    # holds any whitespace; \s is exactly what str.strip removes), blanks as None.
    padded = _WHITESPACE.search(joined) is not None
    cells = joined.split(",")
    del joined
    columns, blanks = [], []
    for j in range(width):
        column = cells[j::width]
        if padded:
            column = list(map(str.strip, column))
        blanks.append("" in column)
        columns.append([c or None for c in column] if blanks[-1] else column)
    del cells
    source_rows = list(range(2, count + 2))
    if all(blanks):  # some row may be wholly blank: spreadsheet programs leave them; skip them
        keep = [i for i, row in enumerate(zip(*columns)) if any(row)]
        if len(keep) < count:
            columns = [[column[i] for i in keep] for column in columns]
            source_rows = [source_rows[i] for i in keep]
            count = len(keep)
    table = TextTable(header=[h.strip() for h in header], rows=_ColumnRows(columns, count),
                      source_rows=source_rows, encoding=encoding, columns=columns)
    if encoding != "utf-8":
        table.notes.append("read as Windows-1252 text; please send CSV UTF-8 in future")
    return table


def _read_records(content: bytes, encoding: str, limits: FileLimits) -> TextTable:
    lines = _RecordLines(content, encoding)
    reader = csv.reader(lines, strict=True)
    try:
        header = next(reader, None)
        if header is None:
            raise FileProblem("file_empty", "The file has no header row.")
        lines.record_done()
        _check_delimiter(header)
        if len(header) > limits.max_columns:
            raise _too_many_columns(limits, f"The header has {len(header):,} columns")
        table = TextTable(header=[h.strip() for h in header], rows=[], source_rows=[], encoding=encoding)
        if encoding != "utf-8":
            table.notes.append("read as Windows-1252 text; please send CSV UTF-8 in future")
        width = len(header)
        rows, source_rows = table.rows, table.source_rows
        last_row = limits.max_rows + 1
        for index, record in enumerate(reader, start=2):
            lines.record_done()
            if index > last_row:
                raise _too_many_rows(limits)
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
    except csv.Error as exc:
        raise FileProblem(
            "csv_structure",
            f"The file is not valid CSV near row {reader.line_num} ({exc}). Check for an unclosed "
            "quote; quote any value that contains a comma, quote or line break.",
            row=reader.line_num,
        ) from None
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


# --- XLSX: checked part by part before openpyxl expands anything -----------------------------------

def _xlsx_too_large(what: str) -> FileProblem:
    return FileProblem(
        "xlsx_too_large",
        f"{what} Copy the data sheet alone into a new workbook (or save it as CSV UTF-8) and send "
        "that; if the return really is this large, contact the partnership data team.",
    )


def _crafted(what: str) -> FileProblem:
    return FileProblem(
        "file_format",
        f"The workbook {what}, which Excel never writes: it may be damaged or made to attack the "
        "reader. Save it again from Excel as .xlsx, or send CSV UTF-8.",
    )


def _directory_extent(content: bytes) -> tuple[int, int]:
    """(entries, bytes) of the zip's central directory, read from its end record.

    zipfile parses the whole directory into objects on opening, so its size is bounded first.
    """
    eocd = content.rfind(b"PK\x05\x06", max(0, len(content) - 65_557))
    if eocd < 0:
        raise _unreadable_xlsx(zipfile.BadZipFile("no end of central directory"))
    entries, size = struct.unpack_from("<HI", content, eocd + 10)
    locator = eocd - 20
    if locator >= 0 and content[locator:locator + 4] == b"PK\x06\x07":  # zip64: sizes live elsewhere
        (record,) = struct.unpack_from("<Q", content, locator + 8)
        if content[record:record + 4] != b"PK\x06\x06":
            raise _unreadable_xlsx(zipfile.BadZipFile("bad zip64 record"))
        entries, size = struct.unpack_from("<QQ", content, record + 32)
    return entries, size


def _inflated(content: bytes, info: zipfile.ZipInfo):
    """A member's bytes, decompressed at most INFLATE_CHUNK at a time, from the raw zip data.

    Done here rather than with ZipFile.read(): that decompresses a member in one call of up to
    2 GiB and only then cuts it to the size the directory declares, so a part that lies about
    its size would be expanded in full first. Streaming ZipExtFile reads are bounded, but this
    also notices data beyond the declared size instead of silently cutting it off.
    """
    start = info.header_offset
    if content[start:start + 4] != XLSX_MAGIC:
        raise _unreadable_xlsx(zipfile.BadZipFile("bad local header"))
    name_len, extra_len = struct.unpack_from("<HH", content, start + 26)
    start += 30 + name_len + extra_len
    raw = memoryview(content)[start:start + info.compress_size]
    if info.compress_type == zipfile.ZIP_STORED:
        for offset in range(0, len(raw), INFLATE_CHUNK):
            yield raw[offset:offset + INFLATE_CHUNK]
        return
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    offset = 0
    pending: bytes | memoryview = b""
    while not inflater.eof:
        if not pending:
            if offset >= len(raw):
                out = inflater.decompress(b"", INFLATE_CHUNK)  # what zlib still holds, if anything
                if not out:
                    raise _unreadable_xlsx(zipfile.BadZipFile("truncated member"))
                yield out
                continue
            pending, offset = raw[offset:offset + INFLATE_CHUNK], offset + INFLATE_CHUNK
        out = inflater.decompress(pending, INFLATE_CHUNK)
        pending = inflater.unconsumed_tail
        if out:
            yield out


class _PartScan:
    """What one streaming pass of expat over a part found (no tree is built).

    Every part is offered to expat, whatever its name, since openpyxl parses whatever the
    workbook's relationships point at; a part expat cannot parse (a picture) is simply not XML.
    The handlers run once per element of sheets of a million rows, so they are kept lean.
    """

    def __init__(self, limits: FileLimits) -> None:
        self.limits = limits
        self.root: str | None = None
        self.is_xml = True
        self.shared_strings = 0
        self.sheets = 0
        # worksheets: the extent of the cells that hold something, and the first thing wrong
        self.last_value_row = 0
        self.last_value_column = 0
        self.problem: FileProblem | None = None
        self._row = 0
        self._column = 0
        self._cell_column = 0
        self._text = 0
        parser = self._parser = expat.ParserCreate(namespace_separator="}")
        parser.buffer_text = True
        parser.StartDoctypeDeclHandler = self._doctype
        parser.EntityDeclHandler = self._doctype
        parser.StartElementHandler = self._first
        parser.CharacterDataHandler = self._chars

    def feed(self, data: bytes, final: bool = False) -> None:
        if not self.is_xml:
            return
        try:
            self._parser.Parse(data, final)
        except expat.ExpatError:
            self.is_xml = False  # openpyxl fails the same way if it needs the part

    def _doctype(self, *_args) -> None:
        # No part of a workbook has a DTD; refusing one rules out entity expansion ("billion
        # laughs") and external entities, whatever XML library openpyxl happens to use.
        raise _crafted("contains an XML document type declaration (DOCTYPE)")

    def _chars(self, data: str) -> None:
        self._text += len(data)
        if self._text > MAX_FIELD_CHARS:
            raise _xlsx_too_large(f"The workbook holds a value longer than {MAX_FIELD_CHARS:,} "
                                  "characters (an Excel cell holds at most 32,767).")

    def _first(self, name: str, attrs: dict) -> None:
        self.root = name[name.rfind("}") + 1:]
        handler = {"worksheet": self._worksheet, "sst": self._strings, "workbook": self._workbook}
        self._parser.StartElementHandler = handler.get(self.root, self._other)
        self._text = 0

    def _other(self, name: str, attrs: dict) -> None:
        self._text = 0

    def _strings(self, name: str, attrs: dict) -> None:
        self._text = 0
        if name.endswith("}si"):
            # Counted here, not taken from the part's count attribute, which may say anything.
            self.shared_strings += 1
            if self.shared_strings > self.limits.xlsx_max_shared_strings:
                raise _xlsx_too_large(
                    f"The workbook holds more than {self.limits.xlsx_max_shared_strings:,} "
                    "different text values, the most accepted.")

    def _workbook(self, name: str, attrs: dict) -> None:
        self._text = 0
        if name.endswith("}sheet"):
            self.sheets += 1
            if self.sheets > XLSX_MAX_SHEETS:
                raise _xlsx_too_large(f"The workbook has more than {XLSX_MAX_SHEETS:,} sheets, "
                                      "the most accepted.")

    def _worksheet(self, name: str, attrs: dict) -> None:
        # Rows and cells as openpyxl will place them (an r attribute, else one after the last),
        # counted as they stream past: the sheet's <dimension> may claim anything. Disorder is
        # refused in any sheet: openpyxl holds a whole row in memory, and measures every sheet
        # without a <dimension> when it opens the workbook, so a row of millions of cells would
        # be built even on a sheet that is not read. The limits only matter on the data sheet,
        # so the first breach is kept until it is known which sheet that is.
        self._text = 0
        local = name[name.rfind("}") + 1:]
        if local == "c":
            ref = attrs.get("r")
            column = self._column + 1 if ref is None else _column_number(ref)
            if not self._column < column <= EXCEL_MAX_COLUMN:
                raise _crafted("has worksheet cells out of order or beyond column XFD")
            self._column = self._cell_column = column
        elif local in ("v", "is", "f"):
            column = self._cell_column
            if not column:
                return
            self._cell_column = 0  # one value per cell is enough
            if self.problem is not None:
                pass
            elif column > self.limits.max_columns:
                self.problem = _too_many_columns(self.limits, f"The worksheet has a value in column {column:,}")
            elif self._row > self.limits.max_rows + 1:
                self.problem = _too_many_rows(self.limits, "The worksheet")
            self.last_value_row = self._row
            if column > self.last_value_column:
                self.last_value_column = column
        elif local == "row":
            ref = attrs.get("r")
            row = int(ref) if ref and ref.isdigit() else (self._row + 1 if ref is None else -1)
            if not self._row < row <= EXCEL_MAX_ROW:
                raise _crafted("has worksheet rows out of order or beyond row 1,048,576")
            self._row, self._column, self._cell_column = row, 0, 0


_COLUMN_REF = re.compile(r"\$?([A-Za-z]{1,3})\$?[0-9]+")


def _column_number(ref: str) -> int:
    match = _COLUMN_REF.fullmatch(ref)
    if not match:
        return -1
    number = 0
    for letter in match.group(1).upper():
        number = number * 26 + ord(letter) - 64
    return number


def _check_workbook(content: bytes, limits: FileLimits) -> dict[str, _PartScan]:
    """Check every part of a workbook before it is opened; the scans of its XML parts by name."""
    entries, directory_bytes = _directory_extent(content)
    if entries > XLSX_MAX_PARTS or directory_bytes > XLSX_MAX_PARTS * 1024:
        raise _xlsx_too_large(f"The workbook has more than {XLSX_MAX_PARTS:,} parts (sheets, "
                              "styles, pictures...), the most accepted.")
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        infos = archive.infolist()
    if len(infos) > XLSX_MAX_PARTS:
        raise _xlsx_too_large(f"The workbook has more than {XLSX_MAX_PARTS:,} parts, the most accepted.")
    limit = limits.xlsx_max_uncompressed_bytes
    declared = sum(info.file_size for info in infos)
    if declared > limit or any(info.file_size > limit for info in infos):
        raise _xlsx_too_large(f"The workbook expands to {_mb(declared)} when opened; the most "
                              f"accepted is {_mb(limit)}.")
    scans: dict[str, _PartScan] = {}
    for info in infos:
        if info.flag_bits & 0x1:
            raise FileProblem("file_format", "The workbook is password-protected. Remove the "
                              "password (File > Info > Protect Workbook), save, and send it again.")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise _crafted("uses a compression method other than deflate")
        scan = _PartScan(limits)
        produced, crc = 0, 0
        for chunk in _inflated(content, info):
            produced += len(chunk)
            if produced > info.file_size:
                raise _crafted("has a part that expands beyond the size it declares")
            crc = zlib.crc32(chunk, crc)
            scan.feed(bytes(chunk))
        if produced != info.file_size or crc != info.CRC:
            raise _unreadable_xlsx(zipfile.BadZipFile("size or CRC mismatch"))
        scan.feed(b"", final=True)
        if scan.root not in (None, "worksheet", "sst") and info.file_size > XLSX_MAX_OTHER_PART_BYTES:
            raise _xlsx_too_large(f"A part of the workbook other than its sheets expands to "
                                  f"{_mb(info.file_size)}; the most accepted is "
                                  f"{_mb(XLSX_MAX_OTHER_PART_BYTES)}.")
        if scan.is_xml:
            scans[info.filename] = scan
    return scans


def _xlsx_cell_text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, datetime):
        # A date cell someone typed a time into (or a =NOW() pasted as a value) is still the date.
        return value.date().isoformat()
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


def _read_xlsx(content: bytes, sheet_hint: str, limits: FileLimits) -> TextTable:
    # A damaged workbook can fail anywhere in zipfile, expat or openpyxl (XML parse errors,
    # missing parts, IndexError on a broken shared-string table), while checking, opening or
    # reading rows. Any such failure is the file's problem: it must be quarantined, never stop
    # the ingest run.
    try:
        scans = _check_workbook(content, limits)
        return _read_workbook(content, sheet_hint, scans, limits)
    except FileProblem:
        raise
    except Exception as exc:  # noqa: BLE001 - see above
        raise _unreadable_xlsx(exc) from None


def _data_sheet(workbook, sheet_hint: str, notes: list[str]):
    """The visible worksheet named after the return type, else the first visible worksheet.

    Hidden sheets (the template's drop-down lists, a partner's working copies) are never read:
    the partner checks what they can see. A hidden sheet carrying the return type's name is
    passed over too, and the verdict says which sheet was read instead.
    """
    worksheets = workbook.worksheets  # chartsheets hold no cells
    visible = [s for s in worksheets if s.sheet_state == "visible"]
    wanted = sheet_hint.strip().lower()
    named = [s for s in worksheets if s.title.strip().lower() == wanted]
    for sheet in named:
        if sheet.sheet_state == "visible":
            return sheet
    if not visible:
        raise FileProblem("file_empty", "The workbook has no visible worksheet. Unhide the sheet "
                          "with the return's data (right-click a sheet tab > Unhide).")
    if named:
        notes.append(f"the sheet named '{named[0].title}' is hidden, so the first visible sheet "
                     f"'{visible[0].title}' was read; unhide it or delete it")
    return visible[0]


def _read_workbook(content: bytes, sheet_hint: str, scans: dict[str, _PartScan],
                   limits: FileLimits) -> TextTable:
    from openpyxl import load_workbook  # imported here: CSV-only runs need not pay for it

    workbook = load_workbook(io.BytesIO(content), read_only=True, data_only=False)
    try:
        notes: list[str] = []
        sheet = _data_sheet(workbook, sheet_hint, notes)
        scan = scans[sheet._worksheet_path]  # every part was scanned; openpyxl keeps the path
        if scan.problem:
            raise scan.problem
        empty = FileProblem(
            "file_empty",
            f"The worksheet '{sheet.title}' has no header in row 1. Put the column names in "
            "row 1 (use the blank template).",
        )
        if not scan.last_value_row:
            raise empty
        # Bounded by what the scan saw, not by the sheet's own (possibly lying) <dimension>.
        rows_iter = sheet.iter_rows(min_row=1, max_row=scan.last_value_row,
                                    max_col=scan.last_value_column, values_only=True)
        header_row = next(rows_iter, None)
        if header_row is None or not any(v is not None and str(v).strip() for v in header_row):
            raise empty
        header = ["" if v is None else str(v).strip() for v in header_row]
        while header and header[-1] == "":
            header.pop()
        table = TextTable(header=header, rows=[], source_rows=[], encoding="xlsx", notes=notes)
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
