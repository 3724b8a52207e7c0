"""No direct identifier gets in, by column or by value (issue 10, item 4).

Headers: an identifier-looking header is recognised whatever its punctuation or spelling, and
no contract column is mistaken for one. Values: a cell that looks like an NHS number (with a
valid check digit), an email address, a UK postcode, a UK phone number or (in an id column) a
person's name is refused by the GX values suite under ``identifier_value``, in whatever column it
is typed, and is reported once, never repeated: not in the errors file, the report, the audit
row, the partner's notice or the logs. An id is a code (``id_format``).

The files go through one real ingest run (module fixture), as in tests/test_gate_corpus.py.
"""

from __future__ import annotations

import csv
import email
import email.policy
import json
import logging
from dataclasses import dataclass
from datetime import datetime

import pytest

from conftest import REPO
from pkpi.contracts import load_contracts, looks_like_identifier
from pkpi.identifiers import FALSE_POSITIVES, ID_KINDS, VALUE_KINDS, identifier_kind, nhs_check_digit_valid
from pkpi.ingest import ingest_landing
from pkpi.settings import Settings
from pkpi.warehouse import connect
from support.logs import LogCapture
from support.returns import FINANCIAL_YEAR, MONTH, TODAY, csv_bytes, drop_file, make_reference, table

# --- headers ---------------------------------------------------------------------------------

IDENTIFIER_HEADERS = [
    "D.O.B", "DOB", "DoB", "Date Of Birth", "DateOfBirth", "date_of_birth", "Birth date", "Post.Code",
    "PostCode", "post code", "Tel No", "TelNo", "Telephone", "Phone No", "Addr Line 1", "Address_1",
    "Address1", "home address", "Contact Number", "ContactNumber", "contact no", "Mobile", "Surname",
    "First Name", "FirstName", "first-name", "Forename", "Given name", "Full Name", "last_name",
    "child_name", "Child's name", "Name", "UPN", "Unique Pupil Number", "ULN", "NI number",
    "N.I. Number", "NINO", "NHS No", "NHSNumber", "nhs_number", "N.H.S. number", "CHI", "CHI number",
    "Email", "E-mail", "E.Mail", "carer email", "\uff25\uff4d\uff41\uff49\uff4c",  # full-width Email
]
NOT_IDENTIFIERS = ["notes", "Sex", "gender", "age", "course_name", "team name", "contact_notes",
                   "Contact source", "instructions", "=1+2", "contact_sorce"]
CONTRACT_COLUMNS = sorted({c.name for contract in load_contracts().values() for c in contract.columns})


@pytest.mark.parametrize("header", IDENTIFIER_HEADERS)
def test_identifier_headers_are_recognised_whatever_the_spelling(header):
    assert looks_like_identifier(header)


@pytest.mark.parametrize("header", CONTRACT_COLUMNS + NOT_IDENTIFIERS)
def test_contract_and_ordinary_headers_are_not_identifiers(header):
    assert not looks_like_identifier(header)


# --- values ----------------------------------------------------------------------------------

@pytest.mark.parametrize("value, kind", [
    ("943 476 5919", "nhs_number"), ("9434765919", "nhs_number"), ("943-476-5919", "nhs_number"),
    ("401 023 2137", "nhs_number"), ("NHS 943 476 5919", "nhs_number"),
    ("\uff19\uff14\uff13\uff14\uff17\uff16\uff15\uff19\uff11\uff19", "nhs_number"),  # full-width digits
    ("\u0669\u0664\u0663\u0664\u0667\u0666\u0665\u0669\u0661\u0669", "nhs_number"),  # Arabic-Indic
    ("carer.zeta@example.org", "email"), ("GRAN.Y@EXAMPLE.NET", "email"), ("see m.x@example.com", "email"),
    ("ZX9 4QJ", "postcode"), ("nn1 4ab", "postcode"), ("QQ17ZZ", "postcode"), ("EC1A 1BB", "postcode"),
    ("17 Larkspur Crescent NN1 4AB", "postcode"),
    ("07700 900461", "phone"), ("+44 7700 900462", "phone"), ("01604 496000", "phone"),
    ("07700900463", "phone"), ("(01604) 496000", "phone"), ("+44 (0)1604 496000", "phone"),
    ("0044 7700 900462", "phone"),
    ("Jemima Quillfeather", "name"), ("JOHN SMITH", "name"), ("Brack, Ottoline", "name"),
    ("Quillfeather", "name"), ("O'Brien", "name"), ("McDonald", "name"), ("Smith-Jones", "name"),
])
def test_identifier_values_are_recognised(value, kind):
    assert identifier_kind(value, ID_KINDS) == kind


@pytest.mark.parametrize("value", [
    "9434765918",  # wrong check digit: not an NHS number
    "K-4010232137", "K4010232137", "NCT-C2503-00001", "C123456", "K-1001", "C001", "a1", "K-Zo\u00eb",
    "EL-AWARE", "F2F-DA", "2025-03-05", "05/03/2025", "125000.00", "10000000", "17", "not_known",
    "x@y", "SMITH", "K-text_file",
])
def test_codes_are_not_identifier_values(value):
    assert identifier_kind(value, ID_KINDS) is None


def test_names_are_only_looked_for_in_id_columns():
    assert identifier_kind("Jemima Quillfeather", VALUE_KINDS) is None
    assert identifier_kind("Jemima Quillfeather", ID_KINDS) == "name"


def test_the_nhs_check_digit():
    assert nhs_check_digit_valid("9434765919")
    assert not nhs_check_digit_valid("9434765918")
    # 6 x 2 = 12 leaves remainder 1, so the check digit would be 10: no such NHS number exists.
    assert not any(nhs_check_digit_valid(f"000000006{d}") for d in "0123456789")


def test_the_false_positive_trade_off_is_in_every_contract_page():
    for contract in load_contracts().values():
        page = (REPO / "docs" / "returns" / f"{contract.return_type}.md").read_text(encoding="utf-8")
        assert FALSE_POSITIVES in page
        assert "identifier_value" in page


def test_the_committed_gx_suites_hold_the_identifier_rule_on_every_column():
    for contract in load_contracts().values():
        doc = json.loads((REPO / "expectations" / "gx" / "expectations" / contract.return_type
                          / "values.json").read_text())
        rules = {}
        for exp in doc["expectations"]:
            rules.setdefault(exp["meta"]["column"], {})[exp["meta"]["rule"]] = exp
        for c in contract.columns:
            exp = rules[c.name]["identifier_value"]
            assert exp["type"] == "expect_column_values_to_not_look_like_identifiers"
            assert ("name" in exp["kwargs"]["kinds"]) is c.is_id
            assert ("id_format" in rules[c.name]) is c.is_id


# --- the gate, through one ingest run --------------------------------------------------------

C = f"contacts/NCT/{MONTH}"  # NCT has a data contact: its rejections send a notice
D = f"child_deaths/ICB/{MONTH}"  # so does ICB
T = f"training/NNC/{MONTH}"
F = f"finance/NNC/{FINANCIAL_YEAR}"
LONG_EMAIL = "carer." + "z" * 70 + "@example.org"  # also longer than contact_id's 64 characters


@dataclass(frozen=True)
class Case:
    id: str
    path: str
    content: bytes
    cell: tuple[str, int, str] | None = None  # the one problem the file must have: (rule, row, column)
    secret: str | None = None  # never repeated anywhere

    @property
    def accepted(self) -> bool:
        return self.cell is None


def contacts(cells: dict) -> bytes:
    return csv_bytes(table("contacts", cells))


def value_case(case_id: str, folder: str, return_type: str, row: int, column: str, value: str,
               rule: str = "identifier_value") -> Case:
    return Case(case_id, f"{folder}/{case_id}.csv", csv_bytes(table(return_type, {(row, column): value})),
                (rule, row, column), value)


def header_case(index: int, header: str) -> Case:
    secret = f"Ottoline Brack{index}"
    content = csv_bytes(table("contacts", add={header: [secret, "", "", ""]}))
    return Case(f"header_{index}", f"{C}/header_{index}.csv", content, ("column_identifier", 1, header), secret)


CASES = [
    # identifiers in id columns
    value_case("nhs_spaced_contact_id", C, "contacts", 2, "contact_id", "943 476 5919"),
    value_case("nhs_plain_child_id", C, "contacts", 3, "child_id", "9434765919"),
    value_case("nhs_hyphens_child_id", C, "contacts", 4, "child_id", "401-023-2137"),
    value_case("nhs_fullwidth_child_id", C, "contacts", 5, "child_id",
               "\uff19\uff14\uff13\uff14\uff17\uff16\uff15\uff19\uff11\uff19"),
    value_case("email_child_id", C, "contacts", 2, "child_id", "carer.zeta@example.org"),
    value_case("postcode_child_id", C, "contacts", 3, "child_id", "ZX9 4QJ"),
    value_case("postcode_unspaced_contact_id", C, "contacts", 4, "contact_id", "QQ17ZZ"),
    value_case("mobile_child_id", C, "contacts", 5, "child_id", "07700 900461"),
    value_case("phone_plus44_child_id", C, "contacts", 2, "child_id", "+44 7700 900462"),
    value_case("name_child_id", C, "contacts", 3, "child_id", "Jemima Quillfeather"),
    value_case("surname_forename_child_id", C, "contacts", 4, "child_id", "Brack, Ottoline"),
    value_case("one_name_child_id", C, "contacts", 5, "child_id", "Quillfeather"),
    value_case("name_record_id", T, "training", 2, "record_id", "Peregrine Vole"),
    value_case("email_notification_id", D, "child_deaths", 3, "notification_id", "gran.y@example.net"),
    # an identifier in a column that is not an id: refused as one, not under that column's rule
    value_case("email_course_code", T, "training", 3, "course_code", "m.x@example.com"),
    value_case("nhs_in_age", C, "contacts", 2, "child_age_years", "9434765919"),
    value_case("phone_in_date", C, "contacts", 3, "contact_date", "01604 496000"),
    value_case("email_in_enum", C, "contacts", 4, "sex", "dad.w@example.org"),
    value_case("nhs_in_amount", F, "finance", 2, "amount_gbp", "9434765919"),
    value_case("phone_in_deaths_enum", D, "child_deaths", 2, "ethnicity", "07700 900463"),
    # one bad cell, one problem: an email address that is also too long for contact_id
    value_case("long_email_contact_id", C, "contacts", 2, "contact_id", LONG_EMAIL),
    # ids that are not codes: refused under id_format, their value not repeated either
    value_case("id_with_space", C, "contacts", 3, "child_id", "K 1001", rule="id_format"),
    value_case("id_with_pound", C, "contacts", 2, "contact_id", "C\u00a31", rule="id_format"),
    value_case("id_arabic_digits", C, "contacts", 4, "child_id", "K-\u0661\u0660\u0660\u0661", rule="id_format"),
    value_case("id_address", C, "contacts", 5, "child_id", "17 Larkspur Crescent", rule="id_format"),
    value_case("id_at_sign", D, "child_deaths", 2, "notification_id", "N@1", rule="id_format"),
    # codes that look a little like identifiers, written as the contract advises: accepted
    Case("ok_codes", f"{C}/ok_codes.csv", contacts({
        (2, "child_id"): "K-4010232137", (3, "child_id"): "NCT-C2503-00001", (4, "child_id"): "K-Zo\u00eb",
        (5, "child_id"): "a/b.c_d", (2, "contact_id"): "EC-1A1BB"})),
    *[header_case(i, h) for i, h in enumerate(
        ["D.O.B", "Date Of Birth", "Post.Code", "Tel No", "Telephone", "Addr Line 1", "Address_1",
         "Contact Number", "Mobile", "Surname", "First Name", "Forename", "Given name", "Full Name",
         "UPN", "ULN", "NI number", "NINO", "NHS No", "CHI", "Email", "E-mail"])],
]
BAD = [c for c in CASES if not c.accepted]


@dataclass
class Run:
    settings: Settings
    outcomes: dict[str, object]  # file name -> FileOutcome
    audit: dict[str, dict]  # file name -> audit row
    emails: list[email.message.EmailMessage]
    logs: str


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Run:
    base = tmp_path_factory.mktemp("identifiers")
    settings = Settings.from_env({"PKPI_DATA_DIR": str(base / "data"),
                                  "PKPI_REFERENCE_DIR": str(make_reference(base / "reference"))})
    start = datetime(2025, 4, 10, 9, 0).timestamp()
    for index, case in enumerate(CASES):
        drop_file(settings.landing_dir, case.path, case.content, start + index * 60)
    capture, pkpi_logger = LogCapture(), logging.getLogger("pkpi")
    old_level = pkpi_logger.level
    logging.getLogger().addHandler(capture)
    pkpi_logger.setLevel(logging.DEBUG)
    try:
        report = ingest_landing(settings, today=TODAY)
    finally:
        logging.getLogger().removeHandler(capture)
        pkpi_logger.setLevel(old_level)
    with connect(settings, read_only=True) as con:
        cur = con.execute("SELECT * FROM audit.loads")
        names = [d[0] for d in cur.description]
        audit = {row["file_name"]: row for row in (dict(zip(names, r)) for r in cur.fetchall())}
    emails = [email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
              for p in sorted(settings.outbox_dir.glob("*.eml"))] if settings.outbox_dir.exists() else []
    return Run(settings, {o.file_name: o for o in report.outcomes}, audit, emails, "\n".join(capture.lines))


def _name(case: Case) -> str:
    return case.path.rsplit("/", 1)[-1]


def _errors(run: Run, case: Case) -> list[dict]:
    folder = (run.settings.data_dir / run.audit[_name(case)]["stored_path"]).parent
    with (folder / "errors.csv").open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _email_text(message) -> str:
    parts = [str(message["Subject"])]
    parts += [p.get_content() for p in message.walk() if p.get_content_maintype() == "text"]
    return "\n".join(parts)


@pytest.mark.parametrize("case", BAD, ids=lambda c: c.id)
def test_identifier_is_refused_once_under_its_own_rule(run, case):
    outcome = run.outcomes[_name(case)]
    assert outcome.status == "rejected"
    errors = _errors(run, case)
    rule, row, column = case.cell
    # Exactly one problem: that cell, that rule (no second max_length, range, enum, type or
    # unique problem for the same value), and the value column left blank.
    assert [(e["rule"], e["row"], e["column"]) for e in errors] == [(rule, str(row), column)], errors
    assert errors[0]["value"] == ""
    assert all(p.value is None for p in outcome.problems)
    with connect(run.settings, read_only=True) as con:
        for rt in ("contacts", "training", "child_deaths", "finance"):
            loaded = con.execute(f"SELECT count(*) FROM raw.{rt} WHERE load_id = ?", [outcome.load_id]).fetchone()
            assert loaded == (0,)


@pytest.mark.parametrize("case", BAD, ids=lambda c: c.id)
def test_identifier_value_is_never_repeated(run, case):
    folder = (run.settings.data_dir / run.audit[_name(case)]["stored_path"]).parent
    notices = [m for m in run.emails if f"({_name(case)})" in str(m["Subject"])]
    places = {
        "errors.csv": (folder / "errors.csv").read_text(encoding="utf-8"),
        "report.html": (folder / "report.html").read_text(encoding="utf-8"),
        "validation.json": (folder / "validation.json").read_text(encoding="utf-8"),
        "audit message": str(run.audit[_name(case)]["message"]),
        "notice email": "\n".join(_email_text(m) for m in notices),
        "logs": run.logs,
    }
    if case.path.split("/")[1] in ("NCT", "ICB"):
        assert notices, "the partner's data contact should have been told"
        assert case.cell[0] in places["notice email"]
    for where, text in places.items():
        assert case.secret not in text, f"the value leaked into the {where}"


def test_codes_written_as_the_contract_advises_are_accepted(run):
    outcome = run.outcomes["ok_codes.csv"]
    assert outcome.status == "accepted", outcome.problems
    with connect(run.settings, read_only=True) as con:
        ids = con.execute("SELECT child_id FROM raw.contacts WHERE load_id = ? ORDER BY source_row",
                          [outcome.load_id]).fetchall()
    assert [i for (i,) in ids] == ["K-4010232137", "NCT-C2503-00001", "K-Zo\u00eb", "a/b.c_d"]


def test_no_identifier_value_outside_the_quarantined_originals(run):
    secrets = [c.secret.encode() for c in BAD]
    originals = {run.settings.data_dir / run.audit[_name(c)]["stored_path"] for c in BAD}
    for path in run.settings.data_dir.rglob("*"):
        if path.is_file() and path not in originals:
            data = path.read_bytes()
            for secret in secrets:
                assert secret not in data, f"{secret!r} found in {path}"
