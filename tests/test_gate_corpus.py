"""The gate against a corpus of bad (and some good) partner files, in one ingest run.

Each case is one file a partner might really send: wrong headers, identifier columns, every
enumeration, range, date, uniqueness and cross-column rule of the contract, encodings,
delimiters, empty and nil returns, the wrong file type, XLSX variants, unknown or inactive
partners and files in the wrong place. Good files are mixed in between them: one partner's bad
file must never stop another's good one.

The whole corpus goes through a single ``ingest_landing`` run (module fixture); each test then
checks one file's fate against docs/returns/README.md, section 4: the exact rule and
cell reported, nothing in the raw tables, the original bytes in quarantine beside errors.csv and
report.html, the file gone from landing, and one audit row. Identifier values must never be
echoed anywhere: errors file, report, audit, notice email or logs.
"""

from __future__ import annotations

import csv
import email
import email.policy
import io
import logging
import zipfile
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import pytest

from pkpi.ingest import ingest_landing
from pkpi.settings import Settings
from pkpi.warehouse import connect
from support.logs import LogCapture
from support.returns import (
    CONTACT_PARTNERS, FINANCIAL_YEAR, HEADERS, INACTIVE_PARTNER, MONTH, TODAY, csv_bytes, drop_file,
    make_reference, table, typed_cells, xlsx_bytes,
)

RAW_TABLES = ("contacts", "training", "child_deaths", "finance")
C = f"contacts/NCT/{MONTH}"
T = f"training/NNC/{MONTH}"
D = f"child_deaths/ICB/{MONTH}"
F = f"finance/NNC/{FINANCIAL_YEAR}"


@dataclass(frozen=True)
class Case:
    id: str
    path: str  # under landing/
    content: bytes
    rules: frozenset[str] = frozenset()  # every rule id the errors file must name; empty: accepted
    cells: tuple[tuple[str, int | None, str | None], ...] = ()  # (rule, row, column) that must be listed
    says: str = ""  # words the plain-English message must contain
    secrets: tuple[str, ...] = ()  # identifier values that must never be repeated anywhere
    rows: int | None = None  # accepted: how many rows reach raw
    nil: bool = False

    @property
    def accepted(self) -> bool:
        return not self.rules

    @property
    def partner_with_contact(self) -> bool:
        # The partner folder is read even when the rest of the path is wrong.
        parts = self.path.split("/")
        return len(parts) >= 3 and parts[1] in CONTACT_PARTNERS


def bad(case_id: str, folder: str, content: bytes, rules: set[str] | str,
        *cells: tuple[str, int | None, str | None], ext: str = "csv", name: str | None = None,
        says: str = "", secrets: tuple[str, ...] = ()) -> Case:
    rules = {rules} if isinstance(rules, str) else rules
    path = f"{folder}/{name or case_id + '.' + ext}" if folder else (name or f"{case_id}.{ext}")
    return Case(case_id, path, content, frozenset(rules), tuple(cells), says, secrets)


def good(case_id: str, folder: str, content: bytes, rows: int, ext: str = "csv") -> Case:
    return Case(case_id, f"{folder}/{case_id}.{ext}", content, rows=rows, nil=rows == 0)


def rt_csv(return_type: str, cells: dict | None = None, **kwargs) -> bytes:
    return csv_bytes(table(return_type, cells, **kwargs))


def contacts(cells: dict | None = None, **kwargs) -> bytes:
    return rt_csv("contacts", cells, **kwargs)


def tagged(tag: str) -> bytes:
    """A valid contacts file made distinct by its first child_id (same bytes, same notice)."""
    return contacts({(2, "child_id"): f"K-{tag}"})


def identifier_case(case_id: str, column: str, values: list[str]) -> Case:
    return bad(case_id, C, contacts(add={column: values}), "column_identifier",
               ("column_identifier", 1, column), says="identifier", secrets=tuple(values))


def _ragged() -> bytes:
    rows = table("contacts")
    rows[2].append("spare value")
    return csv_bytes(rows)


def _unclosed_quote() -> bytes:
    text = csv_bytes(table("contacts")).decode()
    return text.replace("K-1002", '"K-1002', 1).encode()


def _cp1252_valid() -> bytes:
    # Ids are codes of letters (accents allowed), digits and - _ / . ("£" is not allowed).
    return csv_bytes(table("contacts", {(2, "contact_id"): "C-Åé-1", (3, "child_id"): "K-Zoë"}),
                     encoding="cp1252")


def _undecodable() -> bytes:
    return contacts({(2, "child_id"): "K-X"}).replace(b"K-X", b"K-\x81\x8d")


def _damaged_xlsx(member: str, change) -> bytes:
    """A workbook with one part of its zip rewritten, as a crashed save or a bad transfer leaves it."""
    source = zipfile.ZipFile(io.BytesIO(xlsx_bytes(("contacts", CONTACT_ROWS))))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for name in source.namelist():
            data = source.read(name)
            target.writestr(name, change(data) if name == member else data)
    return out.getvalue()


HEADER_ONLY = {rt: csv_bytes([HEADERS[rt]]) for rt in HEADERS}
CONTACT_ROWS = table("contacts")
FORMULA = '=HYPERLINK("http://x","y")'
LONG_ID = "X" * 100_000

CASES: list[Case] = [
    # --- headers --------------------------------------------------------------------------
    bad("header_missing_column", C, contacts(drop=("outcome",)), "column_missing",
        ("column_missing", 1, "outcome"), says="missing"),
    bad("header_misspelt", C, contacts(rename={"contact_source": "contact_sorce"}),
        {"column_unknown", "column_missing"}, ("column_unknown", 1, "contact_sorce"),
        ("column_missing", 1, "contact_source")),
    bad("header_unknown_column", C, contacts(add={"notes": ["seen", "", "", ""]}), "column_unknown",
        ("column_unknown", 1, "notes"), says="not in the contacts contract"),
    bad("header_duplicate", C, contacts(add={"Sex": ["female", "male", "male", "female"]}),
        "header_duplicate", ("header_duplicate", 1, "sex")),
    bad("header_blank_with_values", C, contacts(add={"": ["x", "", "", ""]}), "header_blank",
        ("header_blank", 1, None)),
    bad("header_formula", C, contacts(add={"=1+2": ["", "", "", ""]}), "column_unknown",
        ("column_unknown", 1, "'=1+2")),  # made safe in errors.csv: a spreadsheet shows it as text
    bad("header_other_return", C, HEADER_ONLY["training"], {"column_unknown", "column_missing"},
        ("column_unknown", 1, "record_id"), ("column_missing", 1, "contact_id")),
    # --- identifier columns: rejected by name, values never repeated -----------------------
    identifier_case("id_name", "child_name", ["Jemima Quillfeather", "Barnaby Thistlewood", "Ottoline Brack", "Peregrine Vole"]),
    identifier_case("id_nhs_number", "nhs_number", ["943 476 5919", "9434765870", "401 023 2137", "9990001112"]),
    identifier_case("id_date_of_birth", "Date of Birth", ["2011-07-14", "03/09/2013", "2019-12-25", "2008-01-30"]),
    identifier_case("id_postcode", "Postcode", ["ZX9 4QJ", "QQ1 7ZZ", "YY2 3WW", "JJ8 8JJ"]),
    identifier_case("id_address", "home_address", ["17 Larkspur Crescent", "2 Quince Mews", "9 Wren Row", "44 Damson Way"]),
    identifier_case("id_phone", "parent_phone", ["07700 900461", "+44 7700 900462", "01604 496000", "07700900463"]),
    identifier_case("id_email", "Carer Email", ["carer.zeta@example.org", "gran.y@example.net", "m.x@example.com", "dad.w@example.org"]),
    # --- enumerations -----------------------------------------------------------------------
    bad("enum_contact_source", C, contacts({(3, "contact_source"): "social_media"}), "enum",
        ("enum", 3, "contact_source")),
    bad("enum_sex", C, contacts({(2, "sex"): "F"}), "enum", ("enum", 2, "sex")),
    bad("enum_ethnicity", C, contacts({(4, "ethnicity"): "white british"}), "enum", ("enum", 4, "ethnicity")),
    bad("enum_outcome", C, contacts({(5, "outcome"): "closed"}), "enum", ("enum", 5, "outcome")),
    bad("enum_delivery_mode", T, rt_csv("training", {(3, "delivery_mode"): "classroom"}), "enum",
        ("enum", 3, "delivery_mode")),
    # One bad cell, one problem: "passed" is not an event type, so it is not also checked
    # against the delivery mode (values_when); impact_positive is a second cell.
    bad("enum_event_type", T, rt_csv("training", {(2, "event_type"): "passed"}),
        {"enum", "blank_unless"}, ("enum", 2, "event_type"), ("blank_unless", 2, "impact_positive")),
    bad("enum_learner_sector", T, rt_csv("training", {(4, "learner_sector"): "nhs"}), "enum",
        ("enum", 4, "learner_sector")),
    bad("enum_impact_positive", T, rt_csv("training", {(2, "impact_positive"): "maybe"}), "enum",
        ("enum", 2, "impact_positive")),
    bad("enum_age_band", D, rt_csv("child_deaths", {(2, "age_band"): "0_to_1"}), "enum", ("enum", 2, "age_band")),
    bad("enum_death_type", D, rt_csv("child_deaths", {(4, "death_type"): "sudden"}), "enum",
        ("enum", 4, "death_type")),
    bad("enum_jar", D, rt_csv("child_deaths", {(3, "jar_within_72h"): "y"}), "enum", ("enum", 3, "jar_within_72h")),
    bad("enum_deaths_ethnicity", D, rt_csv("child_deaths", {(2, "ethnicity"): "unknown"}), "enum",
        ("enum", 2, "ethnicity")),
    bad("enum_contribution_type", F, rt_csv("finance", {(4, "contribution_type"): "donation"}), "enum",
        ("enum", 4, "contribution_type")),
    # --- numbers ----------------------------------------------------------------------------
    bad("age_18", C, contacts({(2, "child_age_years"): "18"}), "range", ("range", 2, "child_age_years"),
        says="0 to 17"),
    bad("age_negative", C, contacts({(3, "child_age_years"): "-1"}), "range", ("range", 3, "child_age_years")),
    bad("age_decimal", C, contacts({(4, "child_age_years"): "5.5"}), "type_integer",
        ("type_integer", 4, "child_age_years")),
    bad("age_words", C, contacts({(5, "child_age_years"): "seven"}), "type_integer",
        ("type_integer", 5, "child_age_years")),
    bad("age_other_script_digit", C, contacts({(5, "child_age_years"): "\u0665"}), "type_integer",
        ("type_integer", 5, "child_age_years")),
    bad("amount_over_limit", F, rt_csv("finance", {(2, "amount_gbp"): "10000000.01"}), "range",
        ("range", 2, "amount_gbp")),
    bad("amount_negative", F, rt_csv("finance", {(3, "amount_gbp"): "-0.01"}), "range", ("range", 3, "amount_gbp")),
    bad("amount_three_places", F, rt_csv("finance", {(2, "amount_gbp"): "12.345"}), "decimal_places",
        ("decimal_places", 2, "amount_gbp")),
    bad("amount_pound_sign", F, rt_csv("finance", {(2, "amount_gbp"): "£1,000"}), "type_decimal",
        ("type_decimal", 2, "amount_gbp")),
    bad("agreed_over_limit", F, rt_csv("finance", {(3, "agreed_amount_gbp"): "20000000"}), "range",
        ("range", 3, "agreed_amount_gbp")),
    bad("amount_blank", F, rt_csv("finance", {(4, "amount_gbp"): ""}), "required", ("required", 4, "amount_gbp")),
    # --- dates ------------------------------------------------------------------------------
    bad("date_slashes_iso", C, contacts({(2, "contact_date"): "2025/03/05"}), "type_date",
        ("type_date", 2, "contact_date"), says="YYYY-MM-DD"),
    bad("date_dashes_uk", C, contacts({(2, "contact_date"): "05-03-2025"}), "type_date", ("type_date", 2, "contact_date")),
    bad("date_words", C, contacts({(2, "contact_date"): "5 March 2025"}), "type_date", ("type_date", 2, "contact_date")),
    bad("date_not_real", C, contacts({(2, "contact_date"): "2025-02-30"}), "type_date", ("type_date", 2, "contact_date")),
    bad("date_uk_not_real", C, contacts({(2, "contact_date"): "31/02/2025"}), "type_date", ("type_date", 2, "contact_date")),
    bad("date_unpadded", C, contacts({(2, "contact_date"): "2025-3-5"}), "type_date", ("type_date", 2, "contact_date")),
    bad("date_after_month", C, contacts({(2, "contact_date"): "2025-04-01"}), "in_period",
        ("in_period", 2, "contact_date"), says="inside the return's month"),
    bad("date_before_month", C, contacts({(2, "contact_date"): "28/02/2025"}), "in_period", ("in_period", 2, "contact_date")),
    bad("event_date_outside", T, rt_csv("training", {(5, "event_date"): "2025-04-02"}), "in_period",
        ("in_period", 5, "event_date")),
    bad("notification_date_not_real", D, rt_csv("child_deaths", {(3, "notification_date"): "2025-02-29"}),
        "type_date", ("type_date", 3, "notification_date")),
    # --- uniqueness -------------------------------------------------------------------------
    bad("contact_id_repeated", C, contacts({(4, "contact_id"): " C001 "}), "unique", ("unique", 2, "contact_id"),
        ("unique", 4, "contact_id")),
    bad("record_id_repeated", T, rt_csv("training", {(5, "record_id"): "T002"}), "unique", ("unique", 3, "record_id"),
        ("unique", 5, "record_id")),
    bad("notification_id_repeated", D, rt_csv("child_deaths", {(4, "notification_id"): "N001"}), "unique",
        ("unique", 2, "notification_id"), ("unique", 4, "notification_id")),
    bad("contribution_type_repeated", F, rt_csv("finance", {(3, "contribution_type"): "Core"}), "unique",
        ("unique", 2, "contribution_type"), ("unique", 3, "contribution_type")),
    # --- rules between columns --------------------------------------------------------------
    bad("referral_date_missing", C, contacts({(3, "referral_date"): ""}), "required_when",
        ("required_when", 3, "referral_date"), says="required when outcome is referral"),
    bad("referral_date_not_blank", C, contacts({(2, "referral_date"): "2025-03-04"}), "blank_otherwise",
        ("blank_otherwise", 2, "referral_date")),
    bad("referral_before_contact", C, contacts({(3, "referral_date"): "2025-03-09"}), "not_before",
        ("not_before", 3, "referral_date")),
    bad("referral_in_future", C, contacts({(5, "outcome"): "referral", (5, "referral_date"): "2025-04-20"}),
        "not_in_future", ("not_in_future", 5, "referral_date")),
    bad("referral_date_format", C, contacts({(3, "referral_date"): "11/3/2025"}), "type_date",
        ("type_date", 3, "referral_date")),
    bad("jar_missing_when_unexpected", D, rt_csv("child_deaths", {(3, "jar_within_72h"): ""}), "required_when",
        ("required_when", 3, "jar_within_72h")),
    bad("impact_on_did_not_attend", T, rt_csv("training", {(4, "impact_positive"): "yes"}), "blank_unless",
        ("blank_unless", 4, "impact_positive")),
    bad("impact_on_commenced", T, rt_csv("training", {(5, "impact_positive"): "no"}), "blank_unless",
        ("blank_unless", 5, "impact_positive")),
    bad("elearning_attended", T, rt_csv("training", {(2, "event_type"): "attended"}), "values_when",
        ("values_when", 2, "event_type")),
    bad("face_to_face_completed", T, rt_csv("training", {(3, "event_type"): "completed"}), "values_when",
        ("values_when", 3, "event_type")),
    bad("virtual_commenced", T, rt_csv("training", {(4, "event_type"): "commenced"}), "values_when",
        ("values_when", 4, "event_type")),
    bad("course_not_in_catalogue", T, rt_csv("training", {(2, "course_code"): "EL-NOPE"}), "reference",
        ("reference", 2, "course_code"), says="courses.csv"),
    # --- required and text cells --------------------------------------------------------------
    bad("child_id_blank", C, contacts({(4, "child_id"): ""}), "required", ("required", 4, "child_id")),
    bad("contact_id_too_long", C, contacts({(2, "contact_id"): "C" * 65}), "max_length", ("max_length", 2, "contact_id")),
    bad("contact_id_100kb", C, contacts({(3, "contact_id"): LONG_ID}), "max_length", ("max_length", 3, "contact_id")),
    bad("formula_text", C, contacts({(2, "child_id"): FORMULA}), "no_formula", ("no_formula", 2, "child_id")),
    # --- encodings --------------------------------------------------------------------------
    bad("undecodable_bytes", C, _undecodable(), "encoding", ("encoding", None, None), says="UTF-8"),
    bad("utf16_with_bom", C, csv_bytes(CONTACT_ROWS, encoding="utf-16"), "encoding", ("encoding", None, None),
        says="UTF-16"),
    bad("utf16_without_bom", C, csv_bytes(CONTACT_ROWS, encoding="utf-16-le"), "encoding", ("encoding", None, None),
        says="UTF-16"),
    # --- structure --------------------------------------------------------------------------
    bad("semicolons", C, csv_bytes(CONTACT_ROWS, delimiter=";"), "delimiter", ("delimiter", 1, None), says="semicolons"),
    bad("tabs", C, csv_bytes(CONTACT_ROWS, delimiter="\t"), "delimiter", ("delimiter", 1, None), says="tabs"),
    bad("ragged_row", C, _ragged(), "csv_structure", ("csv_structure", 3, None)),
    bad("unclosed_quote", C, _unclosed_quote(), "csv_structure", says="quote"),
    bad("zero_bytes", C, b"", "file_empty", ("file_empty", None, None), says="nil return"),
    bad("whitespace_only", C, b"  \r\n\r\n \t\r\n", "file_empty", ("file_empty", None, None)),
    bad("named_errors_csv", D, rt_csv("child_deaths", {(2, "sex"): "x"}), "enum", ("enum", 2, "sex"),
        name="errors.csv"),
    # --- not CSV or XLSX ------------------------------------------------------------------------
    bad("text_file", C, tagged("text_file"), "file_format", ext="txt", says=".csv"),
    bad("json_file", C, b'{"contacts": []}', "file_format", ext="json"),
    bad("legacy_xls", C, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504, "file_format", ext="xls", says=".xls"),
    bad("xlsx_named_csv", C, xlsx_bytes(("contacts", CONTACT_ROWS)), "file_format", says="Excel workbook"),
    bad("csv_named_xlsx", C, tagged("csv_named_xlsx"), "file_format", ext="xlsx"),
    # --- XLSX -----------------------------------------------------------------------------------
    bad("xlsx_formula_cell", C, xlsx_bytes(("contacts", table("contacts", {(3, "child_id"): '=CONCAT("K-",1002)'}))),
        "no_formula", ("no_formula", 3, "child_id"), ext="xlsx"),
    bad("xlsx_values_beyond_header", C, xlsx_bytes(("Sheet1", [r + (["stray"] if i == 2 else []) for i, r in
                                                              enumerate(CONTACT_ROWS)])),
        "csv_structure", ("csv_structure", 3, None), ext="xlsx"),
    bad("xlsx_damaged_sheet", C, _damaged_xlsx("xl/worksheets/sheet1.xml", lambda d: d[: len(d) // 2]),
        "file_format", ext="xlsx", says="cannot be opened"),
    bad("xlsx_damaged_cell", C, _damaged_xlsx("xl/worksheets/sheet1.xml", lambda d: d.replace(
        b'<c r="A3" t="inlineStr">', b'<c r="A3" t="s"><v>99</v>', 1)), "file_format", ext="xlsx"),
    bad("xlsx_no_header", C, xlsx_bytes(("Sheet1", [[" "], [" "]] + CONTACT_ROWS)), "file_empty", ext="xlsx"),
    bad("xlsx_wrong_sheet_first", C, xlsx_bytes(("Sheet1", [["Instructions"], ["Fill in the contacts sheet"]]),
                                                ("Sheet2", CONTACT_ROWS)),
        {"column_unknown", "column_missing"}, ("column_unknown", 1, "Instructions"), ext="xlsx"),
    # --- partners and places ----------------------------------------------------------------
    bad("unknown_partner", f"contacts/ZZZ/{MONTH}", tagged("unknown_partner"), "partner_known", says="partner directory"),
    bad("inactive_partner", f"contacts/{INACTIVE_PARTNER}/{MONTH}", tagged("inactive_partner"), "partner_active"),
    bad("unknown_return_type", f"referrals/NCT/{MONTH}", tagged("unknown_return_type"), "return_type_known"),
    bad("period_one_digit_month", "contacts/NCT/2025-3", tagged("period_one_digit_month"), "period_format", says="YYYY-MM"),
    bad("period_month_13", "contacts/NCT/2025-13", tagged("period_month_13"), "period_format"),
    bad("contacts_financial_year", "contacts/NCT/2024-25", tagged("contacts_financial_year"), "period_format"),
    bad("finance_month_period", f"finance/NNC/{MONTH}", rt_csv("finance"), "period_format", says="YYYY-YY"),
    bad("finance_long_year", "finance/NNC/2024-2025", rt_csv("finance"), "period_format"),
    bad("directly_under_landing", "", tagged("directly_under_landing"), "path_layout"),
    bad("missing_period_folder", "contacts/NCT", tagged("missing_period_folder"), "path_layout"),
    bad("folder_too_deep", f"{C}/extra", tagged("folder_too_deep"), "path_layout"),
    # --- good files, interleaved with the bad ones (each must be accepted) -------------------
    good("ok_uk_dates_upper_case", C, csv_bytes(table("contacts", {
        (2, "contact_date"): "03/03/2025", (2, "contact_source"): " POLICE ", (3, "outcome"): "Referral",
        (3, "referral_date"): "11/03/2025", (4, "sex"): "Not_Known"}), newline="\n"), rows=4),
    good("ok_windows_1252", C, _cp1252_valid(), rows=4),
    good("ok_utf8_bom", C, csv_bytes(CONTACT_ROWS, bom=True), rows=4),
    good("ok_nil_contacts", C, HEADER_ONLY["contacts"], rows=0),
    good("ok_xlsx_first_sheet", C, xlsx_bytes(("Sheet1", CONTACT_ROWS), ("notes", [["anything"]])), rows=4, ext="xlsx"),
    good("ok_xlsx_named_sheet", C, xlsx_bytes(("Read me", [["Instructions"], ["Fill in the contacts sheet"]]),
                                              ("Contacts", CONTACT_ROWS)), rows=4, ext="xlsx"),
    good("ok_xlsx_date_cells", C, xlsx_bytes(("contacts", typed_cells(CONTACT_ROWS))), rows=4, ext="xlsx"),
    good("ok_training_lower_case_course", f"training/wnc/{MONTH}",
         rt_csv("training", {(2, "course_code"): "el-aware"}), rows=4),
    good("ok_deaths_nil_csv", D, HEADER_ONLY["child_deaths"], rows=0),
    good("ok_deaths_nil_xlsx", D, xlsx_bytes(("child_deaths", [HEADERS["child_deaths"]])), rows=0, ext="xlsx"),
    good("ok_deaths_jar_on_expected", D, rt_csv("child_deaths", {(2, "jar_within_72h"): "no"}), rows=3),
    good("ok_finance_limits", f"finance/WNC/{FINANCIAL_YEAR}",
         rt_csv("finance", {(2, "amount_gbp"): "10000000", (3, "amount_gbp"): "0.5"}), rows=3),
]
BAD = [c for c in CASES if not c.accepted]
GOOD = [c for c in CASES if c.accepted]


@dataclass
class CorpusRun:
    settings: Settings
    report: object
    audit: dict[str, list[dict]]  # landing_path -> audit rows
    raw_load_ids: dict[str, set[str]]  # raw table -> load ids in it
    raw_rows: dict[str, int]  # load_id -> rows in raw
    logs: str
    emails: list[email.message.EmailMessage]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> CorpusRun:
    base = tmp_path_factory.mktemp("corpus")
    settings = Settings.from_env({"PKPI_DATA_DIR": str(base / "data"),
                                  "PKPI_REFERENCE_DIR": str(make_reference(base / "reference"))})
    assert len({c.path.lower() for c in CASES}) == len(CASES), "every case needs its own landing path"
    first_upload = datetime(2025, 4, 10, 9, 0).timestamp()
    # Interleave good and bad files in processing order (oldest first).
    for index, case in enumerate(CASES):
        position = index if case.accepted is False else (GOOD.index(case) * len(BAD)) // len(GOOD)
        drop_file(settings.landing_dir, case.path, case.content, first_upload + position * 60 + index)

    capture = LogCapture()
    root, pkpi_logger = logging.getLogger(), logging.getLogger("pkpi")
    old_level = pkpi_logger.level
    root.addHandler(capture)
    pkpi_logger.setLevel(logging.DEBUG)
    try:
        report = ingest_landing(settings, today=TODAY)
    finally:
        root.removeHandler(capture)
        pkpi_logger.setLevel(old_level)

    with connect(settings, read_only=True) as con:
        cur = con.execute("SELECT * FROM audit.loads")
        names = [d[0] for d in cur.description]
        audit: dict[str, list[dict]] = {}
        for row in cur.fetchall():
            record = dict(zip(names, row))
            audit.setdefault(record["landing_path"], []).append(record)
        raw_load_ids, raw_rows = {}, {}
        for rt in RAW_TABLES:
            counts = dict(con.execute(f"SELECT load_id, count(*) FROM raw.{rt} GROUP BY load_id").fetchall())
            raw_load_ids[rt] = set(counts)
            raw_rows.update(counts)
    emails = [email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
              for p in sorted(settings.outbox_dir.glob("*.eml"))] if settings.outbox_dir.exists() else []
    return CorpusRun(settings, report, audit, raw_load_ids, raw_rows, "\n".join(capture.lines), emails)


def _only_audit_row(corpus: CorpusRun, case: Case) -> dict:
    rows = corpus.audit.get(case.path, [])
    assert len(rows) == 1, f"{case.id}: expected one audit row, found {len(rows)}"
    return rows[0]


def _email_text(message: email.message.EmailMessage) -> str:
    parts = [str(message["Subject"])]
    for part in message.walk():
        if part.get_content_maintype() == "text":
            parts.append(part.get_content())
    return "\n".join(parts)


def _notices_for(corpus: CorpusRun, case: Case) -> list[email.message.EmailMessage]:
    name = case.path.rsplit("/", 1)[-1]
    return [m for m in corpus.emails if f"({name})" in str(m["Subject"])]


def test_corpus_is_broad():
    """At least 40 distinct bad files, across all four return types."""
    assert len(BAD) >= 40
    assert len({c.content for c in BAD}) >= 40
    covered = {c.path.split("/")[0] for c in BAD}
    assert set(RAW_TABLES) <= covered


@pytest.mark.parametrize("case", BAD, ids=lambda c: c.id)
def test_bad_file_is_rejected_and_quarantined(corpus, case):
    settings = corpus.settings
    audit = _only_audit_row(corpus, case)
    assert audit["status"] == "rejected"
    assert audit["error_count"] > 0

    # The original bytes, byte for byte, beside errors.csv and report.html.
    stored = settings.data_dir / audit["stored_path"]
    assert stored.read_bytes() == case.content
    folder = stored.parent
    assert folder.name == audit["load_id"]
    assert folder.is_relative_to(settings.quarantine_dir)
    assert {p.name for p in folder.iterdir()} == {stored.name, "errors.csv", "report.html", "validation.json"}
    assert not (settings.landing_dir / case.path).exists()

    # The errors file names exactly the rules broken, at the rows and columns broken.
    with (folder / "errors.csv").open(newline="", encoding="utf-8") as handle:
        errors = list(csv.DictReader(handle))
    assert len(errors) == audit["error_count"]
    assert {e["rule"] for e in errors} == case.rules, errors
    listed = {(e["rule"], e["row"], e["column"]) for e in errors}
    for rule, row, column in case.cells:
        assert (rule, "" if row is None else str(row), column or "") in listed, (rule, row, column, listed)
    assert all(e["message"].strip() for e in errors)
    if case.says:
        assert any(case.says in e["message"] for e in errors), [e["message"] for e in errors]
    report = (folder / "report.html").read_text(encoding="utf-8")
    for rule in case.rules:
        assert rule in report
        assert rule in audit["message"]

    # Nothing from it reached the warehouse.
    for rt in RAW_TABLES:
        assert audit["load_id"] not in corpus.raw_load_ids[rt]

    # The partner's data contact, where one is set, hears which rules failed.
    notices = _notices_for(corpus, case)
    if case.partner_with_contact:
        assert len(notices) == 1
        assert notices[0]["To"] == CONTACT_PARTNERS[case.path.split("/")[1]]
        text = _email_text(notices[0])
        for rule in case.rules:
            assert rule in text
    else:
        assert notices == []


@pytest.mark.parametrize("case", [c for c in BAD if c.secrets], ids=lambda c: c.id)
def test_identifier_values_are_never_repeated(corpus, case):
    audit = _only_audit_row(corpus, case)
    folder = (corpus.settings.data_dir / audit["stored_path"]).parent
    places = {
        "errors.csv": (folder / "errors.csv").read_text(encoding="utf-8"),
        "report.html": (folder / "report.html").read_text(encoding="utf-8"),
        "validation.json": (folder / "validation.json").read_text(encoding="utf-8"),
        "audit message": str(audit["message"]),
        "notice email": "\n".join(_email_text(m) for m in _notices_for(corpus, case)),
        "logs": corpus.logs,
    }
    assert _notices_for(corpus, case), "the NCT data contact should have been told"
    for secret in case.secrets:
        for where, text in places.items():
            assert secret not in text, f"identifier value leaked into the {where}"


def test_no_identifier_value_anywhere_outside_the_quarantined_originals(corpus):
    """Archive, outbox, warehouse file, errors files, reports: only the partner's own copy holds them."""
    secrets = [s.encode() for c in BAD for s in c.secrets]
    originals = {corpus.settings.data_dir / rows[0]["stored_path"]
                 for rows in corpus.audit.values() if rows[0]["status"] == "rejected"}
    for path in corpus.settings.data_dir.rglob("*"):
        if path.is_file() and path not in originals:
            data = path.read_bytes()
            for secret in secrets:
                assert secret not in data, f"{secret!r} found in {path}"


@pytest.mark.parametrize("case", GOOD, ids=lambda c: c.id)
def test_good_file_among_bad_ones_is_accepted(corpus, case):
    audit = _only_audit_row(corpus, case)
    assert audit["status"] == "accepted", audit["message"]
    assert audit["error_count"] == 0
    assert audit["row_count"] == case.rows
    assert audit["is_nil"] is case.nil
    assert corpus.raw_rows.get(audit["load_id"], 0) == case.rows
    archived = corpus.settings.data_dir / audit["stored_path"]
    assert archived.is_relative_to(corpus.settings.archive_dir)
    assert archived.read_bytes() == case.content
    assert not (corpus.settings.landing_dir / case.path).exists()


def test_every_file_has_exactly_one_outcome(corpus):
    assert len(corpus.report.outcomes) == len(CASES)
    assert len(corpus.report.rejected) == len(BAD)
    assert len(corpus.report.accepted) == len(GOOD)
    assert sum(len(rows) for rows in corpus.audit.values()) == len(CASES)
    # Raw holds rows from accepted loads only.
    accepted = {rows[0]["load_id"] for rows in corpus.audit.values() if rows[0]["status"] == "accepted"}
    assert set().union(*corpus.raw_load_ids.values()) <= accepted
    assert sum(corpus.raw_rows.values()) == sum(c.rows for c in GOOD)
    assert not [p for p in corpus.settings.landing_dir.rglob("*") if p.is_file()]


def test_windows_1252_is_decoded_not_mojibake(corpus):
    case = next(c for c in GOOD if c.id == "ok_windows_1252")
    load_id = _only_audit_row(corpus, case)["load_id"]
    with connect(corpus.settings, read_only=True) as con:
        ids = con.execute("SELECT contact_id, child_id FROM raw.contacts WHERE load_id = ? ORDER BY source_row",
                          [load_id]).fetchall()
    assert ids[0][0] == "C-Åé-1"
    assert ids[1][1] == "K-Zoë"
    assert "read as Windows-1252" in _only_audit_row(corpus, case)["message"]


def test_values_are_normalised_in_raw(corpus):
    """UK dates become dates, enumerations lower case, Excel date cells dates, codes as catalogued."""
    with connect(corpus.settings, read_only=True) as con:
        def rows(case_id: str, sql: str) -> list[tuple]:
            case = next(c for c in GOOD if c.id == case_id)
            return con.execute(sql, [_only_audit_row(corpus, case)["load_id"]]).fetchall()

        uk = rows("ok_uk_dates_upper_case", "SELECT source_row, contact_date, contact_source, outcome, "
                  "referral_date, sex FROM raw.contacts WHERE load_id = ? ORDER BY source_row")
        assert uk[0][:3] == (2, date(2025, 3, 3), "police")
        assert uk[1][3:5] == ("referral", date(2025, 3, 11))
        assert uk[2][5] == "not_known"
        xlsx = rows("ok_xlsx_date_cells", "SELECT contact_date, child_age_years FROM raw.contacts "
                    "WHERE load_id = ? ORDER BY source_row")
        assert xlsx[0] == (date(2025, 3, 3), 7)
        course = rows("ok_training_lower_case_course", "SELECT course_code FROM raw.training "
                      "WHERE load_id = ? AND source_row = 2")
        assert course == [("EL-AWARE",)]
        money = rows("ok_finance_limits", "SELECT contribution_type, amount_gbp FROM raw.finance "
                     "WHERE load_id = ? ORDER BY source_row")
        assert [(t, float(a)) for t, a in money] == [("core", 10_000_000.0), ("dsg", 0.5), ("grant", 0.0)]


def test_formula_and_oversized_values_are_safe_in_the_errors_file(corpus):
    def errors_of(case_id: str) -> list[dict]:
        case = next(c for c in BAD if c.id == case_id)
        folder = (corpus.settings.data_dir / _only_audit_row(corpus, case)["stored_path"]).parent
        with (folder / "errors.csv").open(newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))

    (formula,) = errors_of("formula_text")
    assert formula["value"] == "'" + FORMULA  # a spreadsheet shows it as text, never runs it
    (long_value,) = errors_of("contact_id_100kb")
    assert len(long_value["value"]) < 200
    assert "100000 characters" in long_value["value"]


def test_a_bad_path_is_quarantined_where_an_engineer_finds_it(corpus):
    case = next(c for c in BAD if c.id == "directly_under_landing")
    stored = corpus.settings.data_dir / _only_audit_row(corpus, case)["stored_path"]
    assert stored.parent.parent == corpus.settings.quarantine_dir / "_unsorted"
    named = next(c for c in BAD if c.id == "named_errors_csv")
    kept = corpus.settings.data_dir / _only_audit_row(corpus, named)["stored_path"]
    assert kept.name != "errors.csv" and kept.read_bytes() == named.content


def test_the_date_rule_agrees_with_the_calendar():
    """The type_date pattern accepts exactly the real dates written YYYY-MM-DD, leap days included."""
    import re

    from pkpi.rules import ISO_DATE_REGEX

    pattern = re.compile(ISO_DATE_REGEX)
    for year in [0, 1, 1600, 1700, 1900, 1999, 2000, 2023, 2024, 2025, 2100, 2400, 9999]:
        for month in range(0, 14):
            for day in range(0, 33):
                text = f"{year:04d}-{month:02d}-{day:02d}"
                try:
                    date(year, month, day)
                    real = True
                except ValueError:
                    real = False
                assert bool(pattern.search(text)) is real, text
    for text in ("2025-3-5", "2025-03-5", "25-03-05", "2025-03-05 ", "2025-03-05T00:00", "\u0662025-03-05"):
        assert not pattern.search(text), text
