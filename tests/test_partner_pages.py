"""What partners are given to get a return right (issue 14, item 11): the generated partner
pages say each thing once and say how often landing is checked as the ingest DAG's schedule
does; the XLSX template has a drop-down on every coded column and a Codes sheet naming each code.

The pages and workbooks are generated for real from the shipped contracts; the workbook is read
back with openpyxl, the schedule from the DAG file as Airflow parses it.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from pkpi.contracts import load_contracts
from pkpi.reference import read_reference
from pkpi.templates_gen import CODES_SHEET, contract_markdown, partner_index, write_templates

REPO = Path(__file__).resolve().parents[1]
GUIDE = REPO / "docs" / "returns" / "README.md"
LONG = 8
"""A sentence this many words long, said twice on one page, is a repetition."""


def sentences(markdown: str) -> list[str]:
    """The page's sentences, as lower-case words: table cells, list items and lines are
    boundaries too, and markup and comments are dropped."""
    text = re.sub(r"<!--.*?-->", "\n", markdown, flags=re.S)
    out = []
    for piece in re.split(r"(?<=[.!?;:])\s+|\s*\|\s*|\n", text):
        words = re.findall(r"[\w'’/,.-]*\w", piece.lower())
        if words:
            out.append(" ".join(words))
    return out


def repeated(markdown: str) -> list[str]:
    counts = Counter(s for s in sentences(markdown) if len(s.split()) >= LONG)
    return sorted(s for s, n in counts.items() if n > 1)


def generated_pages() -> dict[str, str]:
    pages = {f"{rt}.md": contract_markdown(c) for rt, c in load_contracts().items()}
    pages["README.md"] = partner_index(GUIDE.read_text(encoding="utf-8"))
    return pages


def test_the_repetition_check_finds_a_sentence_said_twice():
    page = ("| a | the date the contact was received by the front door |\n\n"
            "- The date the contact was received by the front door.\n")
    assert repeated(page) == ["the date the contact was received by the front door"]
    assert repeated("One short line.\nOne short line.\n") == []


@pytest.mark.parametrize("name", sorted(generated_pages()))
def test_no_generated_page_says_the_same_sentence_twice(name):
    assert repeated(generated_pages()[name]) == []


@pytest.fixture(scope="module")
def ingest_dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags" / "partner_returns_ingest.py"))
    assert bag.import_errors == {}
    [dag] = bag.dags.values()
    return dag


def test_the_pages_say_how_often_landing_is_checked_as_the_schedule_does(ingest_dag):
    from airflow.serialization.encoders import coerce_to_core_timetable

    # The words Airflow's UI shows for the DAG's timetable ("Every hour" for "0 * * * *").
    timetable = coerce_to_core_timetable(ingest_dag.timetable)
    words = timetable.description
    assert words
    said = f"checked {words[:1].lower()}{words[1:]} ({timetable._timezone.name} time)"
    for name, page in generated_pages().items():
        assert said in page, name
    assert "several times a day" not in GUIDE.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def workbooks(tmp_path_factory):
    from openpyxl import load_workbook

    folder = tmp_path_factory.mktemp("templates")
    reference = read_reference(REPO / "seeds")
    write_templates(folder, reference)
    return reference, {rt: load_workbook(folder / f"{rt}.xlsx") for rt in load_contracts()}


def _listed(workbook, formula: str) -> list[str]:
    """The codes a list validation's formula (=Codes!$B$2:$B$13) offers."""
    match = re.fullmatch(rf"={CODES_SHEET}!\$B\$(\d+):\$B\$(\d+)", formula)
    assert match, formula
    first, last = map(int, match.groups())
    return [workbook[CODES_SHEET].cell(row=r, column=2).value for r in range(first, last + 1)]


@pytest.mark.parametrize("return_type", sorted(load_contracts()))
def test_every_coded_column_has_a_drop_down_of_its_codes(workbooks, return_type):
    reference, books = workbooks
    workbook, contract = books[return_type], load_contracts()[return_type]
    sheet = workbook[return_type]
    assert workbook.sheetnames[0] == return_type
    by_column = {}
    for rule in sheet.data_validations.dataValidation:
        assert rule.type == "list" and rule.showErrorMessage
        start, end = str(rule.sqref).split(":")
        letter = start.rstrip("0123456789")
        assert start == f"{letter}2" and end.startswith(letter)
        by_column[sheet[f"{letter}1"].value] = _listed(workbook, rule.formula1)
    coded = [c for c in contract.columns if c.type == "enum" or c.reference]
    assert sorted(by_column) == sorted(c.name for c in coded)
    for column in coded:
        if column.reference:
            assert column.reference == ("courses", "course_code")
            assert by_column[column.name] == [c.course_code for c in reference.courses]
        else:
            assert by_column[column.name] == list(column.values)


def test_the_codes_sheet_names_every_code(workbooks):
    reference, books = workbooks
    training = books["training"][CODES_SHEET]
    rows = [tuple(c.value for c in row) for row in training.iter_rows()]
    assert rows[0] == ("column", "code", "name")
    assert training.sheet_state == "visible"
    courses = {code: name for column, code, name in rows[1:] if column == "course_code"}
    assert courses == {c.course_code: c.course_name for c in reference.courses}
    assert all(name for _, _, name in rows[1:])
    contacts = {(column, code): name for column, code, name in
                (tuple(c.value for c in row) for row in books["contacts"][CODES_SHEET].iter_rows(min_row=2))}
    assert contacts[("outcome", "nfa")] == "No further action"  # a label from the contract
    assert contacts[("sex", "not_known")] == "Not known"  # a value that explains itself
    finance = {code: name for _, code, name in books["finance"][CODES_SHEET].iter_rows(min_row=2, values_only=True)}
    assert "Dedicated Schools Grant" in finance["dsg"]
