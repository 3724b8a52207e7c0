"""Periods, codes, dates and numbers are exact (issue 10, items 3 and 6).

Only ASCII digits make a period, a date or a number: a period folder with a trailing newline or
written in Arabic-Indic or full-width digits is refused with ``period_format``, such a number or
date with its type rule; folder names with surrounding spaces or control characters are
refused; what is stored is the canonical form. One bad cell is reported once, under its own
rule: a value that failed its type is never reported again as out of range or outside the
period. The files go through one real ingest run (module fixture).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import datetime

import pandas as pd
import pytest

from pkpi.cli import main
from pkpi.contracts import ID_REGEX
from pkpi.ingest import ingest_landing
from pkpi.periods import PeriodError, parse_financial_year, parse_month
from pkpi.settings import Settings
from pkpi.rules import DECIMAL_REGEX, INTEGER_REGEX, ISO_DATE_REGEX
from pkpi.warehouse import connect
from support.returns import FINANCIAL_YEAR, MONTH, TODAY, csv_bytes, drop_file, make_reference, table

ARABIC = str.maketrans("0123456789", "\u0660\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669")
FULL_WIDTH = str.maketrans("0123456789", "\uff10\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18\uff19")
NOT_EXACT_MONTHS = ["2019-11\n", "2019-11\r\n", " 2019-11", "2019-11 ", "2019-11\t", "2019-11\x1b",
                    "2019-11".translate(ARABIC), "2019-11".translate(FULL_WIDTH), "\u200b2019-11", "0000-01"]
NOT_EXACT_YEARS = ["2024-25\n", " 2024-25", "2024-25".translate(ARABIC), "2024-25".translate(FULL_WIDTH),
                   "9999-00", "0000-01"]


@pytest.mark.parametrize("label", NOT_EXACT_MONTHS)
def test_a_month_is_ascii_digits_and_nothing_else(label):
    with pytest.raises(PeriodError) as caught:
        parse_month(label)
    assert "\n" not in str(caught.value) and "\x1b" not in str(caught.value)


@pytest.mark.parametrize("label", NOT_EXACT_YEARS)
def test_a_financial_year_is_ascii_digits_and_nothing_else(label):
    with pytest.raises(PeriodError):
        parse_financial_year(label)


def test_periods_are_kept_in_canonical_form():
    assert parse_month("2019-11").label == "2019-11"
    assert parse_financial_year("1999-00").label == "1999-00"


@pytest.mark.parametrize("label", ["2019-11\n", "2019-11".translate(ARABIC)])
def test_the_command_line_refuses_an_inexact_period(label, capsys):
    with pytest.raises(SystemExit) as caught:
        main(["status", "--period", label])
    assert caught.value.code == 2
    assert "YYYY-MM" in capsys.readouterr().err


@pytest.mark.parametrize("pattern, text", [
    (INTEGER_REGEX, "7\n"), (INTEGER_REGEX, "\u0667"), (INTEGER_REGEX, "\uff17"), (INTEGER_REGEX, "1e3"),
    (INTEGER_REGEX, "18.0"), (INTEGER_REGEX, "+7"), (DECIMAL_REGEX, "1.5\n"), (DECIMAL_REGEX, "inf"),
    (DECIMAL_REGEX, "1e9"), (DECIMAL_REGEX, "\u0661.\u0665"), (ISO_DATE_REGEX, "2025-03-05\n"),
    (ISO_DATE_REGEX, "2025-03-05".translate(ARABIC)), (ID_REGEX, "K1\n"), (ID_REGEX, "K 1"),
    (ID_REGEX, "\u041a1"),  # Cyrillic capital KA, which looks like K
])
def test_type_patterns_refuse_near_misses_as_gx_applies_them(pattern, text):
    """GX's pandas engine applies a regex with Series.str.contains (re.search), where $ would
    also match before a final newline: the patterns must refuse these however applied."""
    assert not pd.Series([text], dtype=object).str.contains(pattern, regex=True).iloc[0]


def test_the_typed_frame_holds_only_values_that_met_their_type_rule(settings):
    """What the ranges suite checks and what would be loaded: a value a lenient parser reads
    ("1e3", "18.0", "inf", other scripts' digits, "2025-4-5") but that failed its type rule is
    null there, never a number or a date."""
    from pkpi.contracts import get_contract
    from pkpi.gate import _frames
    from pkpi.reading import TextTable
    from pkpi.reference import load_reference

    reference = load_reference(settings)
    ages = ["18.0", "1e3", "inf", "17".translate(ARABIC), "17".translate(FULL_WIDTH), "7"]
    dates = ["2025-4-5", "2025-02-30", "2025-03-05".translate(ARABIC), "05/03/2025".translate(FULL_WIDTH),
             "2025-03-05", "05/03/2025"]
    header = ["child_age_years", "contact_date"]
    text_table = TextTable(header, [list(r) for r in zip(ages, dates)], list(range(2, 2 + len(ages))))
    _, _, typed = _frames(text_table, get_contract("contacts"), {"child_age_years": 0, "contact_date": 1},
                          reference)
    assert typed["child_age_years"].isna().tolist() == [True] * 5 + [False]
    assert typed["child_age_years"].iloc[-1] == 7
    assert typed["contact_date"].isna().tolist() == [True] * 4 + [False, False]
    assert set(typed["contact_date"].dropna()) == {pd.Timestamp("2025-03-05")}
    amounts = TextTable(["amount_gbp"], [["inf"], ["1e9"], ["-inf"], ["1.5"]], [2, 3, 4, 5])
    _, _, typed = _frames(amounts, get_contract("finance"), {"amount_gbp": 0}, reference)
    assert typed["amount_gbp"].isna().tolist() == [True, True, True, False]


# --- through the gate -------------------------------------------------------------------------

C = f"contacts/NCT/{MONTH}"
F = f"finance/NNC/{FINANCIAL_YEAR}"


@dataclass(frozen=True)
class Case:
    id: str
    path: str
    content: bytes
    problems: tuple[tuple[str, int | None, str | None], ...] = ()  # exactly these (rule, row, column)

    @property
    def accepted(self) -> bool:
        return not self.problems


def contacts(tag: str, cells: dict | None = None) -> bytes:
    """A contacts return made distinct by its first child_id."""
    return csv_bytes(table("contacts", {(2, "child_id"): f"K-{tag}", **(cells or {})}))


def folder_case(case_id: str, folder: str, rule: str, return_type: str = "contacts") -> Case:
    content = contacts(case_id) if return_type == "contacts" else csv_bytes(table(return_type))
    return Case(case_id, f"{folder}/{case_id}.csv", content, ((rule, None, None),))


def cell_case(case_id: str, return_type: str, row: int, column: str, value: str, rule: str,
              extra: dict | None = None) -> Case:
    folder = F if return_type == "finance" else C
    content = csv_bytes(table(return_type, {(row, column): value, **(extra or {})}))
    if return_type == "contacts":
        content = contacts(case_id, {(row, column): value, **(extra or {})})
    return Case(case_id, f"{folder}/{case_id}.csv", content, ((rule, row, column),))


CASES = [
    # period folders
    folder_case("period_newline", f"contacts/NCT/{MONTH}\n", "period_format"),
    folder_case("period_crlf", f"contacts/NCT/{MONTH}\r\n", "period_format"),
    folder_case("period_leading_space", f"contacts/NCT/ {MONTH}", "period_format"),
    folder_case("period_trailing_space", f"contacts/NCT/{MONTH} ", "period_format"),
    folder_case("period_escape", f"contacts/NCT/{MONTH}\x1b", "period_format"),
    folder_case("period_arabic_indic", f"contacts/NCT/{MONTH.translate(ARABIC)}", "period_format"),
    folder_case("period_full_width", f"contacts/NCT/{MONTH.translate(FULL_WIDTH)}", "period_format"),
    folder_case("year_newline", f"finance/NNC/{FINANCIAL_YEAR}\n", "period_format", "finance"),
    folder_case("year_arabic_indic", f"finance/NNC/{FINANCIAL_YEAR.translate(ARABIC)}", "period_format", "finance"),
    # return type and partner folders
    folder_case("type_trailing_space", f"contacts /NCT/{MONTH}", "return_type_known"),
    folder_case("type_newline", f"contacts\n/NCT/{MONTH}", "return_type_known"),
    folder_case("type_full_width", f"\uff43ontacts/NCT/{MONTH}", "return_type_known"),
    folder_case("partner_leading_space", f"contacts/ NCT/{MONTH}", "partner_known"),
    folder_case("partner_tab", f"contacts/NCT\t/{MONTH}", "partner_known"),
    folder_case("partner_control", f"contacts/NCT\x07/{MONTH}", "partner_known"),
    folder_case("partner_full_width", f"contacts/\uff2e\uff23\uff34/{MONTH}", "partner_known"),
    # numbers: one problem, the type rule, never a second range problem
    cell_case("age_18_point_0", "contacts", 2, "child_age_years", "18.0", "type_integer"),
    cell_case("age_exponent", "contacts", 3, "child_age_years", "1e3", "type_integer"),
    cell_case("age_arabic_indic", "contacts", 4, "child_age_years", "18".translate(ARABIC), "type_integer"),
    cell_case("age_full_width", "contacts", 5, "child_age_years", "7".translate(FULL_WIDTH), "type_integer"),
    cell_case("amount_infinity", "finance", 2, "amount_gbp", "inf", "type_decimal"),
    cell_case("amount_exponent", "finance", 3, "amount_gbp", "1e9", "type_decimal"),
    cell_case("amount_arabic_indic", "finance", 4, "amount_gbp", "300".translate(ARABIC), "type_decimal"),
    cell_case("amount_places_and_range", "finance", 2, "amount_gbp", "10000000.999", "decimal_places"),
    # dates: one problem, the type rule, never a second in_period, not_before or future problem
    cell_case("date_february_30", "contacts", 2, "contact_date", "2025-02-30", "type_date"),
    cell_case("date_unpadded_april", "contacts", 3, "contact_date", "2025-4-5", "type_date"),
    cell_case("date_arabic_indic", "contacts", 4, "contact_date", "2025-03-05".translate(ARABIC), "type_date"),
    cell_case("date_full_width_uk", "contacts", 5, "contact_date", "05/03/2025".translate(FULL_WIDTH), "type_date"),
    cell_case("referral_april_31", "contacts", 3, "referral_date", "2025-04-31", "type_date"),
    cell_case("referral_unpadded_future", "contacts", 3, "referral_date", "2025-5-1", "type_date"),
    cell_case("referral_not_real_and_blank_otherwise", "contacts", 2, "referral_date", "2025-02-29", "type_date"),
    # accepted, and stored under the canonical names
    Case("respelt_folders", f"CONTACTS/nct/{MONTH}/respelt_folders.csv", contacts("respelt")),
]
BAD = [c for c in CASES if not c.accepted]


@dataclass
class Run:
    settings: Settings
    outcomes: dict[str, object]
    audit: dict[str, dict]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Run:
    base = tmp_path_factory.mktemp("exact")
    settings = Settings.from_env({"PKPI_DATA_DIR": str(base / "data"),
                                  "PKPI_REFERENCE_DIR": str(make_reference(base / "reference"))})
    start = datetime(2025, 4, 10, 9, 0).timestamp()
    for index, case in enumerate(CASES):
        drop_file(settings.landing_dir, case.path, case.content, start + index * 60)
    report = ingest_landing(settings, today=TODAY)
    with connect(settings, read_only=True) as con:
        cur = con.execute("SELECT * FROM audit.loads")
        names = [d[0] for d in cur.description]
        audit = {row["file_name"]: row for row in (dict(zip(names, r)) for r in cur.fetchall())}
    return Run(settings, {o.file_name: o for o in report.outcomes}, audit)


def _name(case: Case) -> str:
    return case.path.rsplit("/", 1)[-1]


@pytest.mark.parametrize("case", BAD, ids=lambda c: c.id)
def test_inexact_value_is_refused_once_under_its_own_rule(run, case):
    outcome = run.outcomes[_name(case)]
    assert outcome.status == "rejected"
    assert [(p.rule, p.row, p.column) for p in outcome.problems] == list(case.problems), outcome.problems
    folder = (run.settings.data_dir / run.audit[_name(case)]["stored_path"]).parent
    with (folder / "errors.csv").open(newline="", encoding="utf-8") as handle:
        errors = list(csv.DictReader(handle))
    assert [e["rule"] for e in errors] == [rule for rule, _, _ in case.problems]
    for p in outcome.problems:
        # A folder name's control characters are shown escaped, never written raw.
        assert not any(ch in p.message for ch in "\n\r\t\x1b\x07"), p.message
    with connect(run.settings, read_only=True) as con:
        for rt in ("contacts", "finance"):
            loaded = con.execute(f"SELECT count(*) FROM raw.{rt} WHERE load_id = ?", [outcome.load_id]).fetchone()
            assert loaded == (0,)


def test_an_inexact_folder_name_is_named_in_the_message(run):
    (problem,) = run.outcomes["period_newline.csv"].problems
    assert f"'{MONTH}\\n'" in problem.message  # shown as the two characters \ and n
    (problem,) = run.outcomes["partner_leading_space.csv"].problems
    assert "' NCT'" in problem.message


def test_a_respelt_folder_is_stored_in_canonical_form(run):
    outcome = run.outcomes["respelt_folders.csv"]
    assert outcome.status == "accepted", outcome.problems
    audit = run.audit["respelt_folders.csv"]
    assert (audit["return_type"], audit["partner_code"], audit["period"]) == ("contacts", "NCT", MONTH)
    assert audit["landing_path"] == f"CONTACTS/nct/{MONTH}/respelt_folders.csv"  # where it really was
    archived = run.settings.data_dir / audit["stored_path"]
    assert archived.is_relative_to(run.settings.archive_dir / "contacts" / "NCT" / MONTH)
