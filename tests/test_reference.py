"""Reference data: the shipped seeds, a deployment's own folder, and the return schedule."""

from __future__ import annotations

import csv
import shutil
from datetime import date
from pathlib import Path

import pytest

from pkpi.periods import PeriodError
from pkpi.reference import (
    ExpectedReturn, ReferenceDataError, UnknownPartnerError, expected_returns,
    expected_returns_for_financial_year, load_reference,
)
from pkpi.settings import Settings

REPO = Path(__file__).resolve().parents[1]
SEEDS = REPO / "seeds"

# docs/returns/README.md, reference data, written out independently of the loader.
SPEC_COLUMNS = {
    "partners.csv": ["partner_code", "partner_name", "partner_type", "statutory_partner",
                     "active_from", "active_to", "data_contact_email"],
    "return_schedule.csv": ["return_type", "partner_code", "due_days", "active_from", "active_to"],
    "courses.csv": ["course_code", "course_name", "theme"],
    "population.csv": ["financial_year", "population_0_17"],
    "kpi_targets.csv": ["kpi_code", "financial_year", "target", "amber_tolerance"],
    "distribution_list.csv": ["email", "name", "role", "active"],
}


def settings_for(tmp_path: Path, reference_dir: Path) -> Settings:
    return Settings.from_env({"PKPI_DATA_DIR": str(tmp_path / "data"), "PKPI_REFERENCE_DIR": str(reference_dir)})


@pytest.fixture
def seeds(tmp_path):
    return load_reference(settings_for(tmp_path, SEEDS))


@pytest.fixture
def custom_dir(tmp_path) -> Path:
    """A deployment's own reference folder, starting as a copy of the shipped seeds."""
    folder = tmp_path / "reference"
    shutil.copytree(SEEDS, folder)
    return folder


def rewrite(path: Path, edit) -> None:
    """Apply ``edit`` to the rows (header first) of a reference CSV."""
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    rows = edit(rows)
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle, lineterminator="\n").writerows(rows)


def test_seed_files_have_exactly_the_spec_columns():
    for name, columns in SPEC_COLUMNS.items():
        with (SEEDS / name).open(newline="", encoding="utf-8") as handle:
            assert next(csv.reader(handle)) == columns, name


def test_shipped_seeds_describe_the_northamptonshire_partnership(seeds):
    assert set(seeds.partner_codes) >= {"NNC", "WNC", "NCT", "NPOL", "ICB", "PROB", "EDU"}
    assert seeds.partner("NCT").partner_type == "childrens_trust"
    statutory = {p.code for p in seeds.partners if p.statutory_partner}
    assert statutory == {"NNC", "WNC", "NPOL", "ICB"}
    assert all(p.active_to is None and isinstance(p.active_from, date) for p in seeds.partners)
    assert seeds.data_contact("NCT") == "data@nct.example"
    assert seeds.data_contact("EDU") is None  # one partner has no data contact
    assert all(p.data_contact_email.endswith(".example") for p in seeds.partners if p.data_contact_email)

    assert {"F2F-WT", "F2F-CSPR", "F2F-GCP2", "EL-AWARE", "EL-PREVENT"} <= seeds.course_codes
    assert len([c for c in seeds.course_codes if c.startswith("F2F-")]) == 7

    years = [p.financial_year for p in seeds.population]
    assert years[0] == "2019-20" and years[-1] == "2027-28"
    sizes = [p.population_0_17 for p in seeds.population]
    assert sizes == sorted(sizes) and 180_000 < sizes[0] < sizes[-1] < 195_000

    for kpi in ("CON_CONVERSION_PCT", "CON_REREFERRAL_12M_PCT", "TRN_ELEARN_COMPLETION_PCT",
                "CDN_UNEXPECTED_JAR_PCT", "RET_ON_TIME_PCT"):
        for fy in ("2023-24", "2024-25", "2025-26", "2026-27"):
            assert seeds.target_for(kpi, fy) is not None, (kpi, fy)
    assert seeds.target_for("CON_REREFERRAL_12M_PCT", "2025-26").target == 20
    assert seeds.population_for("2025-26") == 188230

    everyone = {r.email for r in seeds.distribution_list}
    active = {r.email for r in seeds.active_recipients}
    assert len(everyone - active) == 1 and 4 <= len(active) <= 6


def test_shipped_schedule_matches_who_sends_what(seeds):
    def senders(return_type):
        return {s.partner_code for s in seeds.schedule_for(return_type)}

    assert senders("contacts") == {"NCT"}
    assert senders("training") == set(seeds.partner_codes)
    assert senders("child_deaths") == {"ICB"}
    assert senders("finance") == {"NNC", "WNC", "NPOL", "ICB"}


def test_a_custom_reference_dir_replaces_the_seeds(tmp_path, custom_dir):
    rewrite(custom_dir / "partners.csv", lambda rows: rows + [
        ["VCS", "Voluntary Sector Forum", "voluntary", "false", "2024-01-01", "2025-06-15", ""],
    ])
    rewrite(custom_dir / "return_schedule.csv", lambda rows: rows + [
        ["training", "VCS", "20", "2024-04-01", ""],
    ])
    reference = load_reference(settings_for(tmp_path, custom_dir))
    assert reference.directory == custom_dir.resolve()
    vcs = reference.partner("VCS")
    assert vcs.active_to == date(2025, 6, 15) and vcs.statutory_partner is False

    # Active for any part of the period counts; a day past active_to does not.
    assert reference.partner_active("VCS", date(2025, 6, 1), date(2025, 6, 30))
    assert not reference.partner_active("VCS", date(2025, 7, 1), date(2025, 7, 31))
    assert not reference.partner_active("XYZ", date(2025, 6, 1), date(2025, 6, 30))
    june = {(e.return_type, e.partner_code) for e in expected_returns(reference, "2025-06")}
    july = {(e.return_type, e.partner_code) for e in expected_returns(reference, "2025-07")}
    assert ("training", "VCS") in june and ("training", "VCS") not in july

    # The shipped seeds know nothing of it: nothing is cached between loads.
    with pytest.raises(UnknownPartnerError, match="not in partners.csv"):
        load_reference(settings_for(tmp_path, SEEDS)).partner("VCS")


def test_a_missing_reference_file_is_named(tmp_path, custom_dir):
    (custom_dir / "courses.csv").unlink()
    with pytest.raises(ReferenceDataError, match=r"courses\.csv is missing .*PKPI_REFERENCE_DIR"):
        load_reference(settings_for(tmp_path, custom_dir))


@pytest.mark.parametrize(
    ("file_name", "edit", "message"),
    [
        ("partners.csv", lambda rows: rows[:2] + [rows[2][:4] + ["2021-13-01"] + rows[2][5:]] + rows[3:],
         r"partners\.csv row 3, column active_from: '2021-13-01' is not a date"),
        ("partners.csv", lambda rows: rows[:1] + [rows[1][:3] + ["yes please"] + rows[1][4:]] + rows[2:],
         r"partners\.csv row 2, column statutory_partner: 'yes please' is not true or false"),
        ("partners.csv", lambda rows: rows + [rows[1]],
         r"partners\.csv row 9: partner_code NNC repeats row 2"),
        ("return_schedule.csv", lambda rows: rows + [["training", "NOPE", "15", "2024-04-01", ""]],
         r"return_schedule\.csv row 15, column partner_code: 'NOPE' is not a partner_code"),
        ("return_schedule.csv", lambda rows: rows + [["referrals", "NCT", "15", "2024-04-01", ""]],
         r"return_schedule\.csv row 15, column return_type: 'referrals' is not one of"),
        ("return_schedule.csv", lambda rows: rows + [["contacts", "NCT", "5", "2025-01-01", ""]],
         r"return_schedule\.csv row 15: contacts for NCT overlaps"),
        ("population.csv", lambda rows: rows + [["2028-30", "190000"]],
         r"population\.csv row 11, column financial_year: '2028-30' is not a financial year"),
        ("kpi_targets.csv", lambda rows: [rows[0][:3]] + [r[:3] for r in rows[1:]],
         r"kpi_targets\.csv row 1 \(header\): missing column\(s\) amber_tolerance"),
        ("distribution_list.csv", lambda rows: rows + [["someone", "A Person", "Lead", "true"]],
         r"distribution_list\.csv row 8, column email: 'someone' is not an email address"),
    ],
)
def test_a_malformed_reference_file_names_the_file_row_and_column(tmp_path, custom_dir, file_name, edit, message):
    rewrite(custom_dir / file_name, edit)
    with pytest.raises(ReferenceDataError, match=message):
        load_reference(settings_for(tmp_path, custom_dir))


def test_monthly_returns_are_due_days_after_the_month_end(seeds):
    january = expected_returns(seeds, "2025-01")
    assert ExpectedReturn("contacts", "NCT", "2025-01", date(2025, 2, 10)) in january
    assert ExpectedReturn("child_deaths", "ICB", "2025-01", date(2025, 2, 15)) in january
    assert ExpectedReturn("training", "PROB", "2025-01", date(2025, 2, 15)) in january
    assert len(january) == 9
    assert all(e.return_type != "finance" for e in january)


def test_only_active_schedule_rows_count(seeds):
    # EDU's training return starts in September 2024; nothing is expected before the
    # data-sharing agreement began in April 2024.
    assert ("training", "EDU") not in {(e.return_type, e.partner_code) for e in expected_returns(seeds, "2024-08")}
    assert ("training", "EDU") in {(e.return_type, e.partner_code) for e in expected_returns(seeds, "2024-09")}
    assert expected_returns(seeds, "2024-03") == []


def test_february_due_dates_follow_the_real_month_end(tmp_path, custom_dir):
    rewrite(custom_dir / "return_schedule.csv", lambda rows: [rows[0], ["contacts", "NCT", "0", "2020-04-01", ""]])
    reference = load_reference(settings_for(tmp_path, custom_dir))
    assert expected_returns(reference, "2028-02")[0].due_date == date(2028, 2, 29)  # leap year
    assert expected_returns(reference, "2027-02")[0].due_date == date(2027, 2, 28)
    # and from the seeds: ten days after the last day of February
    shipped = expected_returns(load_reference(settings_for(tmp_path, SEEDS)), "2028-02")
    assert ExpectedReturn("contacts", "NCT", "2028-02", date(2028, 3, 10)) in shipped


def test_annual_returns_are_due_days_after_the_financial_year_starts(seeds):
    finance = expected_returns_for_financial_year(seeds, "2025-26")
    assert [(e.partner_code, e.due_date) for e in finance] == [
        ("ICB", date(2025, 5, 31)), ("NNC", date(2025, 5, 31)),
        ("NPOL", date(2025, 5, 31)), ("WNC", date(2025, 5, 31)),
    ]
    assert all(e.return_type == "finance" and e.period == "2025-26" for e in finance)
    assert expected_returns_for_financial_year(seeds, "2023-24") == []


def test_period_labels_are_checked(seeds):
    with pytest.raises(PeriodError):
        expected_returns(seeds, "2025-13")
    with pytest.raises(PeriodError):
        expected_returns_for_financial_year(seeds, "2025-27")
