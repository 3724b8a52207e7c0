"""The fast CSV path (pkpi.reading._read_plain_csv) reads exactly what the record reader reads.

Large files without quotes are split at their commas and line breaks in one go instead of record
by record. A partner must never see a difference: every file here is read both ways and must
give the same header, cells, row numbers, encoding and notes, or the same problem (rule, row,
message). Files the fast path cannot prove plain must fall back to the record reader.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from pkpi import reading
from pkpi.reading import FileProblem, read_table
from pkpi.settings import FileLimits

HEADER = "contact_id,child_id,contact_date,outcome\r\n"
PLAIN = {
    "crlf": HEADER + "C-1,K-1,2025-03-01,nfa\r\nC-2,K-2,05/03/2025,referral\r\n",
    "lf_no_final_break": HEADER.replace("\r\n", "\n") + "C-1,K-1,2025-03-01,nfa\nC-2,K-2,,advice",
    "padded": HEADER + " C-1 ,\tK-1,2025-03-01 ,\u3000nfa\xa0\r\nC-2,K-2,  ,advice\r\n",
    "blank_rows": HEADER + "C-1,K-1,2025-03-01,nfa\r\n,,,\r\n , ,\t, \r\nC-2,K-2,2025-03-02,nfa\r\n",
    "blank_values": HEADER + "C-1,,,\r\n,K-2,,\r\n,,2025-03-02,\r\n,,,nfa\r\n",
    "inner_spaces": "a , b ,c\r\nnot known, x y ,z\r\n",
    "unicode": HEADER + "C-é,K-ß,2025-03-01,naïve\r\n",
    "header_only": HEADER,
}
FALLBACK = {
    "quoted": HEADER + '"C-1",K-1,2025-03-01,nfa\r\n',
    "quoted_comma": HEADER + 'C-1,"K,1",2025-03-01,nfa\r\n',
    "stray_quote": HEADER + 'C-1,K"1,2025-03-01,nfa\r\n',
    "bad_quote": HEADER + '"C-1"x,K-1,2025-03-01,nfa\r\n',
    "empty_line": HEADER + "C-1,K-1,2025-03-01,nfa\r\n\r\nC-2,K-2,2025-03-01,nfa\r\n",
    "too_wide": HEADER + "C-1,K-1,2025-03-01,nfa,extra\r\n",
    "too_narrow": HEADER + "C-1,K-1,2025-03-01\r\n",
    "short_blank": HEADER + "C-1,K-1,2025-03-01,nfa\r\n , \r\n",
    "lone_cr": HEADER.replace("\r\n", "\r") + "C-1,K-1,2025-03-01,nfa\r",
    "mixed_breaks": HEADER + "C-1,K-1,2025-03-01,nfa\nC-2,K-2,2025-03-01,nfa\r\n",
    "cr_inside": HEADER + "C-1,K-1\r,2025-03-01,nfa\r\n",
    "one_column": "contact_id;child_id\r\nC-1;K-1\r\n",
    "long_row": HEADER + "C-1,K-1,2025-03-01," + "x" * (reading.MAX_ROW_CHARS + 10) + "\r\n",
}


@pytest.fixture(autouse=True)
def plain_path_for_every_size(monkeypatch):
    """Small files normally go to the record reader; here every file is offered to the fast path."""
    monkeypatch.setattr(reading, "PLAIN_CSV_MIN_BYTES", 0)


def _outcome(content: bytes, limits: FileLimits, fast: bool):
    try:
        if fast:
            table = read_table(Path("return.csv"), content, "contacts", limits)
        else:
            table = reading._read_records(content, reading._encoding(content), limits)
    except FileProblem as exc:
        return ("problem", exc.rule, exc.row, exc.message), None
    rows = [list(r) for r in table.rows]
    return ("table", table.header, rows, table.source_rows, table.encoding, table.notes), table


def _variants(text: str) -> list[tuple[str, bytes]]:
    out = [("utf-8", text.encode("utf-8")), ("bom", reading.UTF8_BOM + text.encode("utf-8"))]
    try:
        out.append(("cp1252", text.encode("cp1252")))
    except UnicodeEncodeError:
        pass
    return out


@pytest.mark.parametrize("case", sorted(PLAIN))
def test_plain_files_read_fast_give_what_the_record_reader_gives(case):
    for encoding, content in _variants(PLAIN[case]):
        expected, _ = _outcome(content, FileLimits(), fast=False)
        got, table = _outcome(content, FileLimits(), fast=True)
        assert got == expected, (case, encoding)
        if PLAIN[case] != HEADER:
            assert table.columns is not None, f"{case} ({encoding}) should have taken the fast path"
            assert [table.column(i) for i in range(len(table.header))] == [list(c) for c in zip(*expected[2])]


@pytest.mark.parametrize("case", sorted(FALLBACK))
def test_files_that_are_not_plain_fall_back_with_the_same_verdict(case):
    for encoding, content in _variants(FALLBACK[case]):
        expected, _ = _outcome(content, FileLimits(), fast=False)
        got, table = _outcome(content, FileLimits(), fast=True)
        assert got == expected, (case, encoding)
        assert table is None or table.columns is None, f"{case} ({encoding}) must use the record reader"


def test_row_and_column_limits_are_left_to_the_record_reader():
    rows = "".join(f"C-{n},K-{n},2025-03-01,nfa\r\n" for n in range(5))
    content = (HEADER + rows).encode()
    for limits in (replace(FileLimits(), max_rows=4), replace(FileLimits(), max_columns=3)):
        expected, _ = _outcome(content, limits, fast=False)
        got, _ = _outcome(content, limits, fast=True)
        assert got == expected and got[0] == "problem"
    ok, table = _outcome(content, replace(FileLimits(), max_rows=5), fast=True)
    assert ok[0] == "table" and table.columns is not None and ok[3] == [2, 3, 4, 5, 6]
