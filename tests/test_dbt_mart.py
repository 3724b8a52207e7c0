"""The dbt KPI mart, built for real on a small hand-made warehouse.

Rows are written straight into raw.* and audit.loads (as the gate would leave them) with a
reference folder of our own, then :func:`pkpi.build.build_mart` runs ``dbt build`` (seeds,
models, data tests and the dbt unit tests) and publishes. Every figure asserted below was
worked out by hand from the fixture, which is described next to the data.

dbt is slow to start, so the module builds once (in two steps, to exercise the incremental
facts) and the tests share the result; a few tests build again on copies when they must.

The fixture, in short (partners LA1, LA2, HLT, POL, OLD):

- contacts from LA1 every month 2023-03..2024-04 (2023-04..2024-01 nil returns), 2024-03
  resubmitted (the first version had a K7 referral that the second drops); from LA2 2024-03
  and a nil return for 2024-04. Referrals test the re-referral rule: K1 2023-03-01 ->
  2024-02-29 (365 days across a leap day: re-referral) -> 2024-04-15 (re-referral, looking back
  into the previous financial year); K4 2023-03-01 -> 2024-03-01 (366 days: not); K5 twice on
  2024-03-05 (same day: neither); K6 by LA2 then LA1 (different partner: not); K7 only in the
  superseded version then 2024-04-20 (not).
- training from HLT and POL for 2024-03; HLT nil for 2024-04; POL's 2024-04 file rejected;
  OLD (membership ended 2024-02-29) owed 2024-01 and 2024-02 and sent nothing.
- child deaths from HLT: three in 2024-03, nil in 2024-04.
- finance from LA1 and POL for 2023-24; LA1 for 2024-25 resubmitted; POL's 2024-25 missing.
- rejected files: LA1 contacts 2024-03, POL training 2024-04, an unknown partner XYZ 2024-04.
"""

from __future__ import annotations

import re
import shutil
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pytest
import yaml

from pkpi.build import BuildFailed, build_mart
from pkpi.build_inputs import RECORD_TABLE
from pkpi.publish import PUBLISHED_TABLES, publish
from pkpi.query import QueryRefused, query_published
from pkpi.contracts import load_contracts
from pkpi.periods import months_between
from pkpi.settings import Settings
from pkpi.warehouse import connect
from support.catalogue import partnership_settings
from support.numbers import close
from support.spec import CATALOGUE_KPIS, SCORECARD_COLUMNS, SCORECARD_KPIS

REPO = Path(__file__).resolve().parents[1]
DBT_PROJECT = REPO / "dbt_project"

# --- reference data ---------------------------------------------------------------------------

REFERENCE = {
    "partners.csv": """partner_code,partner_name,partner_type,statutory_partner,active_from,active_to,data_contact_email
LA1,Local Authority One,local_authority,true,2020-04-01,,data@la1.example
LA2,Local Authority Two,local_authority,true,2024-03-01,,
HLT,Health Board,health,true,2020-04-01,,
POL,Police Force,police,true,2020-04-01,,
OLD,Former Partner,voluntary,false,2020-04-01,2024-02-29,
""",
    "return_schedule.csv": """return_type,partner_code,due_days,active_from,active_to
contacts,LA1,10,2023-03-01,
contacts,LA2,10,2024-03-01,
training,HLT,15,2024-03-01,
training,POL,15,2024-03-01,
training,OLD,15,2024-01-01,
child_deaths,HLT,15,2024-03-01,
finance,LA1,60,2023-04-01,
finance,POL,60,2023-04-01,
""",
    "courses.csv": """course_code,course_name,theme
EL-A,E-learning A,Core
EL-B,E-learning B,Core
F2F-X,Face to face X,Practice
""",
    "population.csv": """financial_year,population_0_17
2023-24,100000
""",
    "kpi_targets.csv": """kpi_code,financial_year,target,amber_tolerance
CON_CONVERSION_PCT,2023-24,40,5
CON_CONVERSION_PCT,2024-25,80,10
CON_REREFERRAL_12M_PCT,2024-25,20,5
RET_ON_TIME_PCT,2024-25,90,5
FIN_CONTRIBUTIONS_GBP,2024-25,1000,100
""",
    "distribution_list.csv": """email,name,role,active
lead@partnership.example,Pat Lead,Chair,true
""",
}


# --- the warehouse fixture ----------------------------------------------------------------------

C = ("contact_id", "child_id", "contact_date", "contact_source", "child_age_years", "sex", "ethnicity", "outcome", "referral_date")
T = ("record_id", "course_code", "delivery_mode", "event_type", "event_date", "learner_sector", "impact_positive")
D = ("notification_id", "notification_date", "age_band", "sex", "ethnicity", "death_type", "jar_within_72h")
F = ("contribution_type", "amount_gbp", "agreed_amount_gbp")
COLUMNS = {"contacts": C, "training": T, "child_deaths": D, "finance": F}


def contact(cid, child, day, source, outcome, referral=None):
    return (cid, child, day, source, 9, "female", "white", outcome, referral)


def loads_step_one() -> list[dict]:
    """Everything except the late arrivals that step two adds (to exercise incremental facts)."""
    out = [
        load("C-2303", "contacts", "LA1", "2023-03", "2023-04-05 09:00", rows=[
            contact("c01", "K1", "2023-03-01", "police", "referral", "2023-03-01"),
            ("c02", "K4", "2023-03-01", "health", 7, "male", "asian", "referral", "2023-03-01"),
            contact("c03", "K2", "2023-03-15", "health", "nfa"),
        ]),
        # The same bytes dropped again: recorded as a duplicate, never counted.
        load("C-2303-dup", "contacts", "LA1", "2023-03", "2023-04-06 09:00", status="duplicate"),
    ]
    for month in months_between("2023-04", "2024-01"):
        y, m = map(int, month.split("-"))
        first_of_next = datetime(y + (m == 12), m % 12 + 1, 5, 9, 0)
        out.append(load(f"C-{month}", "contacts", "LA1", month, first_of_next.strftime("%Y-%m-%d %H:%M"), rows=[]))
    out += [
        load("C-2402", "contacts", "LA1", "2024-02", "2024-03-11 10:00", rows=[  # due 2024-03-10: late
            contact("c04", "K1", "2024-02-29", "education", "referral", "2024-02-29"),
            contact("c05", "K2", "2024-02-10", "police", "early_help"),
        ]),
        load("C-2403-rej", "contacts", "LA1", "2024-03", "2024-04-03 09:00", status="rejected"),
        load("C-2403a", "contacts", "LA1", "2024-03", "2024-04-05 09:00", rows=[
            contact("c06", "K7", "2024-03-20", "police", "referral", "2024-03-20"),
            contact("c07", "K4", "2024-03-01", "police", "referral", "2024-03-01"),
        ]),
        load("C-LA2-2403", "contacts", "LA2", "2024-03", "2024-04-02 09:00", rows=[
            contact("c20", "K6", "2024-03-10", "health", "referral", "2024-03-10"),
            contact("c21", "K11", "2024-03-11", "police", "nfa"),
        ]),
        load("C-2404", "contacts", "LA1", "2024-04", "2024-05-10 23:30", rows=[  # on the due date: on time
            contact("c12", "K1", "2024-04-15", "police", "referral", "2024-04-15"),
            contact("c13", "K6", "2024-04-02", "health", "referral", "2024-04-02"),
            contact("c14", "K7", "2024-04-20", "police", "referral", "2024-04-20"),
            contact("c15", "K12", "2024-04-25", "housing", "nfa"),
        ]),
        load("T-HLT-2403", "training", "HLT", "2024-03", "2024-04-10 09:00", rows=[
            ("t1", "EL-A", "elearning", "commenced", "2024-03-01", "health", None),
            ("t2", "EL-A", "elearning", "commenced", "2024-03-02", "health", None),
            ("t3", "EL-A", "elearning", "completed", "2024-03-20", "health", "yes"),
            ("t4", "F2F-X", "face_to_face", "attended", "2024-03-05", "education", "yes"),
            ("t5", "F2F-X", "face_to_face", "attended", "2024-03-05", "police", "no"),
            ("t6", "F2F-X", "virtual", "did_not_attend", "2024-03-05", "police", None),
        ]),
        load("T-POL-2403", "training", "POL", "2024-03", "2024-04-20 09:00", rows=[  # late
            ("t7", "EL-B", "elearning", "commenced", "2024-03-10", "police", None),
            ("t8", "F2F-X", "virtual", "attended", "2024-03-11", "police", None),
        ]),
        load("T-HLT-2404", "training", "HLT", "2024-04", "2024-05-01 09:00", rows=[]),
        load("T-POL-2404-rej", "training", "POL", "2024-04", "2024-05-02 09:00", status="rejected"),
        load("X-XYZ-2404-rej", "contacts", "XYZ", "2024-04", "2024-05-02 10:00", status="rejected"),
        load("D-2403", "child_deaths", "HLT", "2024-03", "2024-04-15 17:00", rows=[  # on the due date
            ("n1", "2024-03-03", "under_28_days", "female", "white", "unexpected", "yes"),
            ("n2", "2024-03-09", "1_to_4", "male", "black", "unexpected", "no"),
            ("n3", "2024-03-20", "28_to_364_days", "male", "white", "expected", None),
        ]),
        load("D-2404", "child_deaths", "HLT", "2024-04", "2024-05-10 09:00", rows=[]),
        load("F-LA1-2324", "finance", "LA1", "2023-24", "2023-05-01 09:00", rows=[  # due 2023-05-31
            ("core", "500.00", None), ("dsg", "100.50", "120.00"), ("grant", "1000.00", None),
        ]),
        load("F-POL-2324", "finance", "POL", "2023-24", "2023-07-01 09:00", rows=[("core", "300.00", None)]),
        load("F-LA1-2425a", "finance", "LA1", "2024-25", "2024-04-20 09:00", rows=[("core", "600.00", None)]),
    ]
    return out


def loads_step_two() -> list[dict]:
    """Resubmissions and a late nil return, loaded after the first build."""
    return [
        load("C-2403b", "contacts", "LA1", "2024-03", "2024-04-12 08:00", rows=[  # due 2024-04-10: late
            contact("c07", "K4", "2024-03-01", "police", "referral", "2024-03-01"),
            contact("c08", "K5", "2024-03-05", "self", "referral", "2024-03-05"),
            contact("c09", "K5", "2024-03-05", "family_friend", "referral", "2024-03-05"),
            contact("c10", "K9", "2024-03-12", "police", "nfa"),
            contact("c11", "K10", "2024-03-31", "education", "advice"),
        ]),
        load("C-LA2-2404", "contacts", "LA2", "2024-04", "2024-05-03 09:00", rows=[]),
        load("F-LA1-2425b", "finance", "LA1", "2024-25", "2024-06-10 09:00", rows=[
            ("core", "650.25", None), ("other", "49.75", None), ("grant", "0.00", None),
        ]),
    ]


def load(load_id, return_type, partner, period, received, rows=None, status="accepted") -> dict:
    return {
        "load_id": load_id, "return_type": return_type, "partner_code": partner, "period": period,
        "received_at": datetime.strptime(received, "%Y-%m-%d %H:%M"), "status": status,
        "rows": rows or [],
    }


def write_loads(settings: Settings, loads: list[dict]) -> None:
    """Write loads the way the gate leaves them: one audit row each, rows for accepted ones."""
    with connect(settings) as con:
        for spec in loads:
            rows = spec["rows"]
            con.execute(
                "insert into audit.loads (load_id, return_type, partner_code, period, file_name, "
                "landing_path, stored_path, checksum_sha256, size_bytes, row_count, is_nil, received_at, "
                "validated_at, status, error_count, duplicate_of, message) values "
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    spec["load_id"], spec["return_type"], spec["partner_code"], spec["period"],
                    f"{spec['load_id']}.csv", f"landing/{spec['load_id']}.csv", None,
                    spec["load_id"].ljust(64, "0"), 100, len(rows),
                    spec["status"] == "accepted" and not rows, spec["received_at"],
                    spec["received_at"] + timedelta(minutes=30), spec["status"],
                    3 if spec["status"] == "rejected" else 0,
                    "C-2303" if spec["status"] == "duplicate" else None, None,
                ],
            )
            if spec["status"] != "accepted":
                continue
            cols = COLUMNS[spec["return_type"]]
            for number, row in enumerate(rows, start=2):
                con.execute(
                    f"insert into raw.{spec['return_type']} (load_id, source_row, {', '.join(cols)}) "
                    f"values (?, ?, {', '.join('?' for _ in cols)})",
                    [spec["load_id"], number, *row],
                )


def make_settings(root: Path) -> Settings:
    return partnership_settings(root, REFERENCE)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The fixture warehouse built twice: step one, then the late arrivals (incremental run)."""
    root = tmp_path_factory.mktemp("mart")
    settings = make_settings(root)
    write_loads(settings, loads_step_one())
    first = build_mart(settings)
    with connect(settings, read_only=True) as con:
        first_contacts = sorted(r[0] for r in con.execute("select contact_id from mart.fct_contacts").fetchall())
    write_loads(settings, loads_step_two())
    second = build_mart(settings)
    return {"settings": settings, "first": first, "second": second, "first_contacts": first_contacts}


@pytest.fixture(scope="module")
def mart(built):
    """A read-only connection to the built warehouse."""
    with connect(built["settings"], read_only=True) as con:
        yield con


def kv(con, kpi, grain, period, partner="ALL", dimension="total", value="total"):
    """(numerator, denominator, value) of one kpi_values row; fails if the row is missing."""
    rows = con.execute(
        "select numerator, denominator, value from mart.kpi_values where kpi_code = ? and period_grain = ? "
        "and period = ? and partner_code = ? and dimension = ? and dimension_value = ?",
        [kpi, grain, period, partner, dimension, value],
    ).fetchall()
    assert len(rows) == 1, f"expected one row for {kpi} {grain} {period} {partner} {dimension}={value}, got {rows}"
    return rows[0]


def assert_kpi(con, kpi, grain, period, partner, numerator, denominator, value, dimension="total", dim_value="total"):
    got = kv(con, kpi, grain, period, partner, dimension, dim_value)
    assert close(got[0], numerator) and close(got[1], denominator) and close(got[2], value), (
        f"{kpi} {grain} {period} {partner} {dimension}={dim_value}: got {got}, "
        f"expected {(numerator, denominator, value)}"
    )


# --- the build itself ---------------------------------------------------------------------------


def test_build_runs_seeds_models_data_tests_and_unit_tests(built):
    result = built["second"]
    assert result.ok and not result.failures
    assert result.count("seed") == 1  # the KPI catalogue; reference files are read as sources
    assert result.count("unit_test") >= 5
    assert result.count("test") > 50
    # dbt's working files go under the data folder, never into the (possibly read-only) project.
    settings = built["settings"]
    assert result.target_dir == settings.data_dir / "dbt" / "target"
    assert (result.target_dir / "run_results.json").exists()
    assert (result.log_dir / "dbt.log").exists()


def test_reference_data_comes_from_the_configured_folder(built, mart):
    # Our reference folder has 5 partners and 3 courses; the shipped seeds/ differ.
    assert mart.execute("select count(*) from mart.dim_partner").fetchone()[0] == 5
    # Building never writes into the reference folder (dbt would overwrite seed files given
    # by an absolute path with its run SQL, which is why they are read as sources instead).
    for name, text in REFERENCE.items():
        assert (built["settings"].reference_dir / name).read_text(encoding="utf-8") == text
    assert sorted(r[0] for r in mart.execute("select course_code from reference.courses").fetchall()) == ["EL-A", "EL-B", "F2F-X"]
    # distribution_list.csv (people's email addresses) is not loaded into the warehouse.
    assert mart.execute(
        "select count(*) from information_schema.tables where table_name = 'distribution_list'"
    ).fetchone()[0] == 0


def test_schemas_are_named_verbatim(mart):
    schemas = {r[0] for r in mart.execute("select distinct table_schema from information_schema.tables").fetchall()}
    assert {"raw", "audit", "staging", "intermediate", "mart", "reference"} <= schemas
    assert not any(s.startswith("main_") for s in schemas)


def test_dim_month_covers_whole_financial_years(mart):
    rows = mart.execute(
        "select month, financial_year, quarter, month_of_financial_year, is_expected_month "
        "from mart.dim_month order by month"
    ).fetchall()
    assert rows[0][:4] == ("2022-04", "2022-23", "Q1", 1)
    assert rows[-1][:4] == ("2025-03", "2024-25", "Q4", 12)
    assert len(rows) == 36
    by_month = {r[0]: r for r in rows}
    assert by_month["2024-03"][1:4] == ("2023-24", "Q4", 12)
    assert by_month["2024-04"][1:4] == ("2024-25", "Q1", 1)
    assert by_month["2023-12"][2] == "Q3"
    expected = [r[0] for r in rows if r[4]]
    assert expected == months_between("2023-03", "2024-04")


def test_dim_kpi_lists_the_whole_catalogue(mart):
    codes = {r[0] for r in mart.execute("select kpi_code from mart.dim_kpi").fetchall()}
    assert codes == set(CATALOGUE_KPIS)
    on_scorecard = {r[0] for r in mart.execute("select kpi_code from mart.dim_kpi where on_scorecard").fetchall()}
    assert on_scorecard >= SCORECARD_KPIS
    disclosive = {r[0] for r in mart.execute("select kpi_code from mart.dim_kpi where disclosive").fetchall()}
    assert disclosive == {c for c in CATALOGUE_KPIS if c.startswith("CDN_")}
    row = mart.execute(
        "select name, theme, unit, polarity, definition from mart.dim_kpi where kpi_code = 'CON_REREFERRAL_12M_PCT'"
    ).fetchone()
    assert row[2:4] == ("percent", "lower_is_better") and "365 days" in row[4]


def test_kpi_definitions_are_plain_english_for_strategic_leads(mart):
    """The scorecard shows each definition to readers who never see the files or the columns."""
    import pkpi

    names = set()
    for path in (Path(pkpi.__file__).parent / "contracts").glob("*.yml"):
        contract = yaml.safe_load(path.read_text())
        for column in contract["columns"]:
            names.add(column["name"])
            names.update(str(v) for v in column.get("values", ()) if "_" in str(v))
    for code, definition in mart.execute("select kpi_code, definition from mart.dim_kpi").fetchall():
        words = set(re.findall(r"[A-Za-z0-9_.]+", definition))
        assert not words & names, (code, words & names)
        assert not re.search(r"\w+_\w+|\.csv|\bALL\b", definition), (code, definition)
        assert definition[:1].isupper() and definition.endswith("."), code


def test_every_catalogue_kpi_is_in_kpi_values(mart):
    codes = {r[0] for r in mart.execute("select distinct kpi_code from mart.kpi_values").fetchall()}
    assert codes == CATALOGUE_KPIS
    grains = dict(mart.execute(
        "select kpi_code, string_agg(distinct period_grain, ',' order by period_grain) from mart.kpi_values group by 1"
    ).fetchall())
    for code in CATALOGUE_KPIS:
        if code.startswith("FIN_") or code == "CON_PER_10K":
            assert grains[code] == "financial_year", code
        else:
            assert grains[code] == "financial_year,month", code


# --- contacts -----------------------------------------------------------------------------------


def test_contacts_counts_and_percentages_by_month(mart):
    m = "month"
    # 2023-03, LA1 only: K1 referral (police), K4 referral (health), K2 nfa (health).
    for partner in ("ALL", "LA1"):
        assert_kpi(mart, "CON_CONTACTS", m, "2023-03", partner, 3, None, 3)
        assert_kpi(mart, "CON_REFERRALS", m, "2023-03", partner, 2, None, 2)
        assert_kpi(mart, "CON_CONVERSION_PCT", m, "2023-03", partner, 2, 3, 200 / 3)
        assert_kpi(mart, "CON_NFA_PCT", m, "2023-03", partner, 1, 3, 100 / 3)
        assert_kpi(mart, "CON_EARLY_HELP_PCT", m, "2023-03", partner, 0, 3, 0)
    # 2024-02: a referral (education) and an early help (police).
    assert_kpi(mart, "CON_CONTACTS", m, "2024-02", "LA1", 2, None, 2)
    assert_kpi(mart, "CON_EARLY_HELP_PCT", m, "2024-02", "LA1", 1, 2, 50)
    # 2024-03: LA1's resubmission (5 contacts, 3 referrals) and LA2 (2 contacts, 1 referral).
    assert_kpi(mart, "CON_CONTACTS", m, "2024-03", "LA1", 5, None, 5)
    assert_kpi(mart, "CON_CONTACTS", m, "2024-03", "LA2", 2, None, 2)
    assert_kpi(mart, "CON_CONTACTS", m, "2024-03", "ALL", 7, None, 7)
    assert_kpi(mart, "CON_REFERRALS", m, "2024-03", "ALL", 4, None, 4)
    assert_kpi(mart, "CON_CONVERSION_PCT", m, "2024-03", "LA1", 3, 5, 60)
    assert_kpi(mart, "CON_CONVERSION_PCT", m, "2024-03", "LA2", 1, 2, 50)
    assert_kpi(mart, "CON_CONVERSION_PCT", m, "2024-03", "ALL", 4, 7, 400 / 7)
    assert_kpi(mart, "CON_NFA_PCT", m, "2024-03", "ALL", 2, 7, 200 / 7)
    # 2024-04: LA1 4 contacts (3 referrals); LA2 sent a nil return.
    assert_kpi(mart, "CON_CONTACTS", m, "2024-04", "ALL", 4, None, 4)
    assert_kpi(mart, "CON_CONVERSION_PCT", m, "2024-04", "LA1", 3, 4, 75)


def test_contacts_by_financial_year_and_per_10k(mart):
    fy = "financial_year"
    # March 2023 belongs to 2022-23.
    assert_kpi(mart, "CON_CONTACTS", fy, "2022-23", "ALL", 3, None, 3)
    # 2023-24: LA1 2 (Feb) + 5 (Mar); LA2 2 (Mar).
    assert_kpi(mart, "CON_CONTACTS", fy, "2023-24", "LA1", 7, None, 7)
    assert_kpi(mart, "CON_CONTACTS", fy, "2023-24", "LA2", 2, None, 2)
    assert_kpi(mart, "CON_CONTACTS", fy, "2023-24", "ALL", 9, None, 9)
    assert_kpi(mart, "CON_CONVERSION_PCT", fy, "2023-24", "ALL", 5, 9, 500 / 9)
    assert_kpi(mart, "CON_CONTACTS", fy, "2024-25", "LA2", 0, None, 0)
    # Per 10,000 children: population 100,000 in 2023-24; none given for other years.
    assert_kpi(mart, "CON_PER_10K", fy, "2023-24", "ALL", 9, 100000, 0.9)
    assert_kpi(mart, "CON_PER_10K", fy, "2023-24", "LA1", 7, 100000, 0.7)
    assert_kpi(mart, "CON_PER_10K", fy, "2024-25", "ALL", 4, None, None)
    assert mart.execute(
        "select count(*) from mart.kpi_values where kpi_code = 'CON_PER_10K' and period_grain = 'month'"
    ).fetchone()[0] == 0


def test_contacts_breakdowns_list_every_value(mart):
    m = "month"
    assert_kpi(mart, "CON_CONTACTS", m, "2024-03", "ALL", 3, None, 3, "contact_source", "police")
    assert_kpi(mart, "CON_CONTACTS", m, "2024-03", "ALL", 1, None, 1, "contact_source", "health")
    assert_kpi(mart, "CON_CONTACTS", m, "2024-03", "ALL", 0, None, 0, "contact_source", "anonymous")
    assert_kpi(mart, "CON_CONTACTS", m, "2024-03", "LA1", 3, None, 3, "outcome", "referral")
    assert_kpi(mart, "CON_CONTACTS", m, "2024-03", "LA1", 1, None, 1, "outcome", "advice")
    assert_kpi(mart, "CON_REFERRALS", m, "2024-03", "LA1", 1, None, 1, "contact_source", "self")
    assert_kpi(mart, "CON_REFERRALS", m, "2024-03", "LA1", 1, None, 1, "contact_source", "family_friend")
    assert_kpi(mart, "CON_REFERRALS", m, "2024-03", "LA1", 0, None, 0, "contact_source", "education")
    sources = load_contracts()["contacts"].column("contact_source").values
    got = {r[0] for r in mart.execute(
        "select dimension_value from mart.kpi_values where kpi_code = 'CON_CONTACTS' and period = '2024-01' "
        "and partner_code = 'LA1' and dimension = 'contact_source'"
    ).fetchall()}
    assert got == set(sources)


def test_nil_returns_give_zero_rows_and_null_percentages(mart):
    # LA1's contacts for 2023-04..2024-01 and LA2's for 2024-04 were nil returns.
    for period, partner in (("2023-07", "LA1"), ("2023-07", "ALL"), ("2024-04", "LA2")):
        assert_kpi(mart, "CON_CONTACTS", "month", period, partner, 0, None, 0)
        assert_kpi(mart, "CON_REFERRALS", "month", period, partner, 0, None, 0)
        assert_kpi(mart, "CON_CONVERSION_PCT", "month", period, partner, 0, 0, None)
        assert_kpi(mart, "CON_REREFERRAL_12M_PCT", "month", period, partner, 0, 0, None)
        assert_kpi(mart, "CON_CONTACTS", "month", period, partner, 0, None, 0, "outcome", "nfa")
    # HLT's nil training and child deaths returns for 2024-04.
    for partner in ("HLT", "ALL"):
        assert_kpi(mart, "TRN_ATTENDANCES", "month", "2024-04", partner, 0, None, 0)
        assert_kpi(mart, "TRN_ELEARN_COMPLETION_PCT", "month", "2024-04", partner, 0, 0, None)
        assert_kpi(mart, "CDN_NOTIFICATIONS", "month", "2024-04", partner, 0, None, 0)
        assert_kpi(mart, "CDN_NOTIFICATIONS", "month", "2024-04", partner, 0, None, 0, "age_band", "1_to_4")
        assert_kpi(mart, "CDN_UNEXPECTED_JAR_PCT", "month", "2024-04", partner, 0, 0, None)
    # No row at all for a partner that submitted nothing accepted (POL's training for 2024-04
    # was rejected) nor for a partner that never sends that return.
    for kpi, partner, period in (("TRN_ATTENDANCES", "POL", "2024-04"), ("CON_CONTACTS", "HLT", "2024-03")):
        assert mart.execute(
            "select count(*) from mart.kpi_values where kpi_code = ? and partner_code = ? and period = ?",
            [kpi, partner, period],
        ).fetchone()[0] == 0


def test_rereferrals_look_back_365_days_same_partner_across_years(mart):
    # 2023-03: K1 and K4 are first referrals.
    assert_kpi(mart, "CON_REREFERRAL_12M_PCT", "month", "2023-03", "LA1", 0, 2, 0)
    # 2024-02: K1 on 2024-02-29, exactly 365 days after 2023-03-01 (a leap day between).
    assert_kpi(mart, "CON_REREFERRAL_12M_PCT", "month", "2024-02", "LA1", 1, 1, 100)
    # 2024-03: K4 366 days after 2023-03-01 (no); K5 twice on one day (neither); LA2's K6.
    assert_kpi(mart, "CON_REREFERRAL_12M_PCT", "month", "2024-03", "LA1", 0, 3, 0)
    assert_kpi(mart, "CON_REREFERRAL_12M_PCT", "month", "2024-03", "ALL", 0, 4, 0)
    # 2024-04: K1 again (46 days, looking back into 2023-24): yes; K6 referred before by LA2
    # only (another partner): no; K7 only in LA1's superseded 2024-03 version: no.
    assert_kpi(mart, "CON_REREFERRAL_12M_PCT", "month", "2024-04", "LA1", 1, 3, 100 / 3)
    assert_kpi(mart, "CON_REREFERRAL_12M_PCT", "month", "2024-04", "ALL", 1, 3, 100 / 3)
    assert_kpi(mart, "CON_REREFERRAL_12M_PCT", "financial_year", "2023-24", "ALL", 1, 5, 20)
    assert_kpi(mart, "CON_REREFERRAL_12M_PCT", "financial_year", "2024-25", "LA1", 1, 3, 100 / 3)


def test_resubmission_counts_the_latest_version_only(built, mart):
    # After step one the facts held LA1's first 2024-03 version (c06, c07)...
    assert {"c06", "c07"} <= set(built["first_contacts"])
    # ...after the resubmission (an incremental run) they hold only the second.
    rows = mart.execute("select contact_id, load_id from mart.fct_contacts where return_period = '2024-03' and partner_code = 'LA1'").fetchall()
    assert sorted(r[0] for r in rows) == ["c07", "c08", "c09", "c10", "c11"]
    assert {r[1] for r in rows} == {"C-2403b"}
    # Finance: LA1's 2024-25 resubmission replaced 600.00 core with 650.25 core + 49.75 other.
    fin = mart.execute(
        "select contribution_type, amount_gbp from mart.fct_finance_contributions "
        "where partner_code = 'LA1' and financial_year = '2024-25' order by 1"
    ).fetchall()
    assert [(t, float(a)) for t, a in fin] == [("core", 650.25), ("grant", 0.0), ("other", 49.75)]
    # The duplicate and the rejected files never reach the facts.
    loads = {r[0] for r in mart.execute("select distinct load_id from mart.fct_contacts").fetchall()}
    assert loads == {"C-2303", "C-2402", "C-2403b", "C-LA2-2403", "C-2404"}


def test_record_level_facts_place_events_by_their_own_date(mart):
    row = mart.execute(
        "select month, financial_year, partner_code, return_period from mart.fct_contacts where contact_id = 'c04'"
    ).fetchone()
    assert row == ("2024-02", "2023-24", "LA1", "2024-02")
    assert mart.execute("select count(*) from mart.fct_training_events").fetchone()[0] == 8
    assert mart.execute("select count(*) from mart.fct_child_death_notifications").fetchone()[0] == 3


# --- training -----------------------------------------------------------------------------------


def test_training_kpis(mart):
    m = "month"
    assert_kpi(mart, "TRN_ELEARN_COMMENCED", m, "2024-03", "HLT", 2, None, 2)
    assert_kpi(mart, "TRN_ELEARN_COMMENCED", m, "2024-03", "POL", 1, None, 1)
    assert_kpi(mart, "TRN_ELEARN_COMMENCED", m, "2024-03", "ALL", 3, None, 3)
    assert_kpi(mart, "TRN_ELEARN_COMPLETED", m, "2024-03", "ALL", 1, None, 1)
    assert_kpi(mart, "TRN_ELEARN_COMPLETION_PCT", m, "2024-03", "HLT", 1, 2, 50)
    assert_kpi(mart, "TRN_ELEARN_COMPLETION_PCT", m, "2024-03", "POL", 0, 1, 0)
    assert_kpi(mart, "TRN_ELEARN_COMPLETION_PCT", m, "2024-03", "ALL", 1, 3, 100 / 3)
    # Attended face to face and virtual; a did-not-attend is not an attendance.
    assert_kpi(mart, "TRN_ATTENDANCES", m, "2024-03", "HLT", 2, None, 2)
    assert_kpi(mart, "TRN_ATTENDANCES", m, "2024-03", "ALL", 3, None, 3)
    assert_kpi(mart, "TRN_DNA_PCT", m, "2024-03", "HLT", 1, 3, 100 / 3)
    assert_kpi(mart, "TRN_DNA_PCT", m, "2024-03", "ALL", 1, 4, 25)
    # Impact: yes on t3 and t4, no on t5; POL answered none (null, not 0%).
    assert_kpi(mart, "TRN_POSITIVE_IMPACT_PCT", m, "2024-03", "HLT", 2, 3, 200 / 3)
    assert_kpi(mart, "TRN_POSITIVE_IMPACT_PCT", m, "2024-03", "POL", 0, 0, None)
    # Breakdowns by learner sector and by course (the course catalogue lists zeros too).
    assert_kpi(mart, "TRN_ATTENDANCES", m, "2024-03", "ALL", 2, None, 2, "learner_sector", "police")
    assert_kpi(mart, "TRN_ATTENDANCES", m, "2024-03", "ALL", 1, None, 1, "learner_sector", "education")
    assert_kpi(mart, "TRN_ATTENDANCES", m, "2024-03", "ALL", 3, None, 3, "course_code", "F2F-X")
    assert_kpi(mart, "TRN_ATTENDANCES", m, "2024-03", "ALL", 0, None, 0, "course_code", "EL-A")
    assert_kpi(mart, "TRN_ELEARN_COMMENCED", m, "2024-03", "ALL", 2, None, 2, "course_code", "EL-A")
    assert_kpi(mart, "TRN_ELEARN_COMMENCED", m, "2024-03", "ALL", 1, None, 1, "course_code", "EL-B")
    assert_kpi(mart, "TRN_ELEARN_COMPLETED", m, "2024-03", "HLT", 1, None, 1, "learner_sector", "health")
    assert_kpi(mart, "TRN_ELEARN_COMMENCED", "financial_year", "2023-24", "ALL", 3, None, 3)
    assert_kpi(mart, "TRN_ATTENDANCES", "financial_year", "2024-25", "HLT", 0, None, 0)


# --- child deaths -------------------------------------------------------------------------------


def test_child_death_kpis(mart):
    for grain, period in (("month", "2024-03"), ("financial_year", "2023-24")):
        for partner in ("HLT", "ALL"):
            assert_kpi(mart, "CDN_NOTIFICATIONS", grain, period, partner, 3, None, 3)
            assert_kpi(mart, "CDN_UNDER_1_PCT", grain, period, partner, 2, 3, 200 / 3)
            assert_kpi(mart, "CDN_UNEXPECTED_JAR_PCT", grain, period, partner, 1, 2, 50)
    breakdown = {
        ("death_type", "unexpected"): 2, ("death_type", "expected"): 1, ("death_type", "not_known"): 0,
        ("age_band", "under_28_days"): 1, ("age_band", "28_to_364_days"): 1, ("age_band", "1_to_4"): 1,
        ("age_band", "15_to_17"): 0, ("sex", "female"): 1, ("sex", "male"): 2, ("sex", "not_known"): 0,
        ("ethnicity", "white"): 2, ("ethnicity", "black"): 1, ("ethnicity", "asian"): 0,
    }
    for (dimension, value), n in breakdown.items():
        assert_kpi(mart, "CDN_NOTIFICATIONS", "month", "2024-03", "ALL", n, None, n, dimension, value)
    # Every child death row is marked disclosive, and so are contacts by sex or ethnicity.
    assert mart.execute(
        "select bool_and(disclosive) from mart.kpi_values where kpi_code like 'CDN_%'"
    ).fetchone()[0] is True
    assert mart.execute(
        "select bool_or(disclosive) from mart.kpi_values where kpi_code like 'CON_%'"
    ).fetchone()[0] is False


# --- finance ------------------------------------------------------------------------------------


def test_finance_kpis_by_financial_year(mart):
    fy = "financial_year"
    # 2023-24: LA1 core 500 + dsg 100.50 (+ grant 1000); POL core 300.
    assert_kpi(mart, "FIN_CONTRIBUTIONS_GBP", fy, "2023-24", "LA1", 600.5, None, 600.5)
    assert_kpi(mart, "FIN_CONTRIBUTIONS_GBP", fy, "2023-24", "POL", 300, None, 300)
    assert_kpi(mart, "FIN_CONTRIBUTIONS_GBP", fy, "2023-24", "ALL", 900.5, None, 900.5)
    assert_kpi(mart, "FIN_CONTRIBUTIONS_GBP", fy, "2023-24", "LA1", 100.5, None, 100.5, "contribution_type", "dsg")
    assert_kpi(mart, "FIN_CONTRIBUTIONS_GBP", fy, "2023-24", "ALL", 800, None, 800, "contribution_type", "core")
    assert_kpi(mart, "FIN_CONTRIBUTIONS_GBP", fy, "2023-24", "ALL", 0, None, 0, "contribution_type", "other")
    assert kv_count(mart, "FIN_CONTRIBUTIONS_GBP", "contribution_type", "grant") == 0  # grant is not a contribution
    assert_kpi(mart, "FIN_GRANT_INCOME_GBP", fy, "2023-24", "ALL", 1000, None, 1000)
    assert_kpi(mart, "FIN_GRANT_INCOME_GBP", fy, "2023-24", "POL", 0, None, 0)
    assert_kpi(mart, "FIN_TOTAL_INCOME_GBP", fy, "2023-24", "LA1", 1600.5, None, 1600.5)
    assert_kpi(mart, "FIN_TOTAL_INCOME_GBP", fy, "2023-24", "ALL", 1900.5, None, 1900.5)
    assert_kpi(mart, "FIN_SHARE_PCT", fy, "2023-24", "LA1", 600.5, 900.5, 100 * 600.5 / 900.5)
    assert_kpi(mart, "FIN_SHARE_PCT", fy, "2023-24", "POL", 300, 900.5, 100 * 300 / 900.5)
    assert_kpi(mart, "FIN_SHARE_PCT", fy, "2023-24", "ALL", 900.5, 900.5, 100)
    # No 2022-23 returns: no year-on-year change.
    assert_kpi(mart, "FIN_YOY_CHANGE_PCT", fy, "2023-24", "ALL", None, None, None)
    # 2024-25: LA1's resubmission (650.25 + 49.75); POL's return is missing.
    assert_kpi(mart, "FIN_CONTRIBUTIONS_GBP", fy, "2024-25", "ALL", 700, None, 700)
    assert_kpi(mart, "FIN_SHARE_PCT", fy, "2024-25", "LA1", 700, 700, 100)
    assert_kpi(mart, "FIN_YOY_CHANGE_PCT", fy, "2024-25", "LA1", 99.5, 600.5, 100 * 99.5 / 600.5)
    assert_kpi(mart, "FIN_YOY_CHANGE_PCT", fy, "2024-25", "ALL", -200.5, 900.5, -100 * 200.5 / 900.5)
    assert mart.execute(
        "select count(*) from mart.kpi_values where kpi_code like 'FIN_%' and (period_grain = 'month' or (partner_code = 'POL' and period = '2024-25'))"
    ).fetchone()[0] == 0


def kv_count(con, kpi, dimension, value):
    return con.execute(
        "select count(*) from mart.kpi_values where kpi_code = ? and dimension = ? and dimension_value = ?",
        [kpi, dimension, value],
    ).fetchone()[0]


# --- return compliance --------------------------------------------------------------------------


def test_return_submissions_statuses_and_due_dates(mart):
    rows = {
        (r[0], r[1], r[2]): (r[3], str(r[4]))
        for r in mart.execute(
            "select return_type, partner_code, period, status, due_date from mart.fct_return_submissions"
        ).fetchall()
    }
    assert rows[("contacts", "LA1", "2023-03")] == ("received_on_time", "2023-04-10")
    assert rows[("contacts", "LA1", "2023-09")] == ("received_on_time", "2023-10-10")  # a nil return
    assert rows[("contacts", "LA1", "2024-02")] == ("received_late", "2024-03-10")  # leap February
    # The resubmission arrived after the due date, so the return is late even though the
    # first version was on time.
    assert rows[("contacts", "LA1", "2024-03")] == ("received_late", "2024-04-10")
    assert rows[("contacts", "LA1", "2024-04")] == ("received_on_time", "2024-05-10")  # 23:30 on the day
    assert rows[("contacts", "LA2", "2024-04")] == ("received_on_time", "2024-05-10")
    assert rows[("training", "POL", "2024-03")] == ("received_late", "2024-04-15")
    assert rows[("training", "POL", "2024-04")] == ("rejected", "2024-05-15")
    assert rows[("training", "OLD", "2024-01")] == ("missing", "2024-02-15")
    assert rows[("training", "OLD", "2024-02")] == ("missing", "2024-03-15")
    assert rows[("child_deaths", "HLT", "2024-03")] == ("received_on_time", "2024-04-15")
    assert rows[("finance", "LA1", "2023-24")] == ("received_on_time", "2023-05-31")
    assert rows[("finance", "POL", "2023-24")] == ("received_late", "2023-05-31")
    assert rows[("finance", "LA1", "2024-25")] == ("received_late", "2024-05-31")
    assert rows[("finance", "POL", "2024-25")] == ("missing", "2024-05-31")
    # Nothing expected before the schedule starts or after a partner's membership ends,
    # and the unknown partner's rejected file is not an expected return.
    assert ("training", "OLD", "2024-03") not in rows
    assert ("training", "HLT", "2024-02") not in rows
    assert ("finance", "LA1", "2022-23") not in rows
    assert not any(k[1] == "XYZ" for k in rows)
    assert len(rows) == 14 + 2 + 2 + 2 + 2 + 2 + 4


def test_return_submissions_agree_with_the_python_schedule(built, mart):
    from pkpi.reference import expected_returns, expected_returns_for_financial_year, load_reference

    reference = load_reference(built["settings"])
    python = {(e.return_type, e.partner_code, e.period, e.due_date) for month in months_between("2023-03", "2024-04") for e in expected_returns(reference, month)}
    python |= {(e.return_type, e.partner_code, e.period, e.due_date) for fy in ("2022-23", "2023-24", "2024-25") for e in expected_returns_for_financial_year(reference, fy)}
    mart_rows = set(mart.execute("select return_type, partner_code, period, due_date from mart.fct_return_submissions").fetchall())
    assert mart_rows == python


def test_return_compliance_kpis(mart):
    m, fy = "month", "financial_year"
    assert_kpi(mart, "RET_ON_TIME_PCT", m, "2023-03", "ALL", 1, 1, 100)
    assert_kpi(mart, "RET_ON_TIME_PCT", m, "2024-01", "ALL", 1, 2, 50)
    assert_kpi(mart, "RET_ON_TIME_PCT", m, "2024-01", "OLD", 0, 1, 0)
    assert_kpi(mart, "RET_ON_TIME_PCT", m, "2024-02", "ALL", 0, 2, 0)
    assert_kpi(mart, "RET_ON_TIME_PCT", m, "2024-03", "ALL", 3, 5, 60)
    assert_kpi(mart, "RET_ON_TIME_PCT", m, "2024-03", "HLT", 2, 2, 100)
    assert_kpi(mart, "RET_ON_TIME_PCT", m, "2024-03", "LA1", 0, 1, 0)
    assert_kpi(mart, "RET_ON_TIME_PCT", m, "2024-04", "ALL", 4, 5, 80)
    assert_kpi(mart, "RET_ON_TIME_PCT", m, "2024-03", "ALL", 1, 2, 50, "return_type", "contacts")
    assert_kpi(mart, "RET_ON_TIME_PCT", m, "2024-03", "ALL", 1, 1, 100, "return_type", "child_deaths")
    # Finance is annual: in the financial year's figure, never in a month's.
    assert kv_count(mart, "RET_ON_TIME_PCT", "return_type", "finance") == mart.execute(
        "select count(*) from mart.kpi_values where kpi_code = 'RET_ON_TIME_PCT' and dimension = 'return_type' "
        "and dimension_value = 'finance' and period_grain = 'financial_year'"
    ).fetchone()[0] > 0
    assert_kpi(mart, "RET_ON_TIME_PCT", fy, "2022-23", "ALL", 1, 1, 100)
    assert_kpi(mart, "RET_ON_TIME_PCT", fy, "2023-24", "ALL", 14, 20, 70)
    assert_kpi(mart, "RET_ON_TIME_PCT", fy, "2023-24", "ALL", 11, 13, 1100 / 13, "return_type", "contacts")
    assert_kpi(mart, "RET_ON_TIME_PCT", fy, "2023-24", "ALL", 1, 2, 50, "return_type", "finance")
    assert_kpi(mart, "RET_ON_TIME_PCT", fy, "2024-25", "ALL", 4, 7, 400 / 7)
    assert_kpi(mart, "RET_ON_TIME_PCT", fy, "2024-25", "POL", 0, 2, 0)
    # Rejected files: LA1's first 2024-03 contacts file (later replaced), POL's 2024-04 training
    # file, and one from an unknown partner code, which only the partnership total can hold.
    assert_kpi(mart, "RET_REJECTED", m, "2024-03", "ALL", 1, None, 1)
    assert_kpi(mart, "RET_REJECTED", m, "2024-03", "LA1", 1, None, 1)
    assert_kpi(mart, "RET_REJECTED", m, "2024-04", "ALL", 2, None, 2)
    assert_kpi(mart, "RET_REJECTED", m, "2024-04", "POL", 1, None, 1)
    assert_kpi(mart, "RET_REJECTED", m, "2024-04", "LA1", 0, None, 0)
    assert_kpi(mart, "RET_REJECTED", fy, "2024-25", "ALL", 2, None, 2)
    assert_kpi(mart, "RET_REJECTED", m, "2023-07", "ALL", 0, None, 0)


# --- the scorecard ------------------------------------------------------------------------------


def scorecard_row(con, period, kpi):
    cur = con.execute("select * from mart.scorecard where period = ? and kpi_code = ?", [period, kpi])
    names = [d[0] for d in cur.description]
    rows = cur.fetchall()
    assert len(rows) == 1
    return dict(zip(names, rows[0]))


def test_scorecard_has_section_five_columns_and_a_row_per_month_and_kpi(mart):
    cols = [d[0] for d in mart.execute("select * from mart.scorecard limit 0").description]
    assert cols[: len(SCORECARD_COLUMNS)] == SCORECARD_COLUMNS
    periods = [r[0] for r in mart.execute("select distinct period from mart.scorecard order by 1").fetchall()]
    assert periods == months_between("2023-03", "2024-04")
    on_scorecard = mart.execute("select count(*) from mart.dim_kpi where on_scorecard").fetchone()[0]
    assert mart.execute("select count(*) from mart.scorecard").fetchone()[0] == len(periods) * on_scorecard


def test_scorecard_flags_what_disclosure_control_hides_but_keeps_the_figures(built, mart):
    # Three child deaths in March 2024: the mart keeps the 3 and says it leaves the warehouse hidden.
    r = scorecard_row(mart, "2024-03", "CDN_NOTIFICATIONS")
    assert (r["value"], r["suppressed"]) == (3, True)
    assert r["suppression_reason"].startswith("value: small_count")
    r = scorecard_row(mart, "2024-03", "CON_CONTACTS")
    assert (r["suppressed"], r["suppression_reason"]) == (False, None)  # not disclosive
    # The flags are exactly those of the published copy, row by row, reasons included.
    flags = "select period, kpi_code, suppressed, suppression_reason from mart.scorecard order by 1, 2"
    assert mart.execute(flags).fetchall() == published(built["settings"], flags)


def test_scorecard_values_fytd_comparisons_rag_and_trend(mart):
    r = scorecard_row(mart, "2024-03", "CON_CONVERSION_PCT")
    assert close(r["value"], 400 / 7)
    assert close(r["fytd_value"], 500 / 9)  # recomputed: 5 referrals of 9 contacts, April to March
    assert close(r["previous_month_value"], 50)
    assert close(r["same_month_last_year_value"], 200 / 3)
    assert (r["target"], r["polarity"], r["rag"], r["trend"]) == (40, "higher_is_better", "green", "up")
    r = scorecard_row(mart, "2024-04", "CON_CONVERSION_PCT")
    assert close(r["value"], 75) and close(r["fytd_value"], 75)
    assert r["same_month_last_year_value"] is None  # April 2023 was a nil return: 0 of 0
    assert (r["target"], r["rag"]) == (80, "amber")  # within 10 below 80
    r = scorecard_row(mart, "2024-04", "CON_REREFERRAL_12M_PCT")
    assert close(r["value"], 100 / 3) and close(r["previous_month_value"], 0)
    assert (r["polarity"], r["rag"], r["trend"]) == ("lower_is_better", "red", "up")  # above 20 + 5
    r = scorecard_row(mart, "2024-04", "CON_CONTACTS")
    assert (r["value"], r["fytd_value"], r["previous_month_value"], r["rag"]) == (4, 4, 7, "grey")
    assert r["trend"] == "down"
    r = scorecard_row(mart, "2024-03", "CON_CONTACTS")
    assert (r["value"], r["fytd_value"]) == (7, 9)
    r = scorecard_row(mart, "2023-07", "CON_CONTACTS")
    assert (r["value"], r["previous_month_value"], r["trend"]) == (0, 0, "flat")
    r = scorecard_row(mart, "2024-04", "RET_ON_TIME_PCT")
    assert close(r["value"], 80) and r["rag"] == "red"  # below 90 - 5
    r = scorecard_row(mart, "2024-03", "TRN_ELEARN_COMPLETION_PCT")
    assert close(r["value"], 100 / 3) and r["previous_month_value"] is None and r["trend"] == "n/a"
    assert r["rag"] == "grey"  # no target in our kpi_targets.csv


def test_scorecard_shows_finance_for_the_months_financial_year(mart):
    r = scorecard_row(mart, "2024-04", "FIN_CONTRIBUTIONS_GBP")
    assert (r["value"], r["fytd_value"], r["previous_month_value"]) == (700, 700, 900.5)
    assert (r["target"], r["rag"], r["trend"]) == (1000, "red", "down")  # more than 100 below 1000
    r = scorecard_row(mart, "2023-07", "FIN_CONTRIBUTIONS_GBP")
    assert (r["value"], r["rag"]) == (900.5, "grey")
    assert r["value_grain"] == "financial_year"


def test_a_measure_is_provisional_when_a_return_it_is_counted_from_is_missing_or_rejected(mart):
    def marked(period: str) -> set[str]:
        """The sources (dim_kpi.source) of the KPIs marked provisional in ``period``."""
        return {source for (source,) in mart.execute(
            """select distinct k.source from mart.scorecard as s join mart.dim_kpi as k using (kpi_code)
               where s.period = ? and s.provisional""", [period]).fetchall()}

    # Return compliance counts every return, so it is provisional whenever any is outstanding.
    assert marked("2024-01") == {"training", "returns"}  # OLD's training missing
    assert marked("2024-02") == {"training", "returns"}
    assert marked("2024-03") == set()  # everything arrived, some late
    assert marked("2024-04") == {"training", "returns"}  # POL's training rejected
    assert marked("2023-07") == set()


# --- publishing ---------------------------------------------------------------------------------


def test_published_copy_holds_only_aggregate_tables(built):
    settings = built["settings"]
    path = settings.published_dir / "kpi_mart.duckdb"
    assert built["second"].published.database == path
    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = set(con.execute("select table_schema, table_name from information_schema.tables").fetchall())
        columns = {r[0] for r in con.execute("select column_name from information_schema.columns").fetchall()}
    finally:
        con.close()
    # The tables in the default schema, and a view of each in mart (see tests/test_published.py).
    assert tables == {(s, t) for s in ("main", "mart") for t in PUBLISHED_TABLES}
    assert not {"child_id", "contact_id", "notification_id", "record_id", "load_id", "source_row"} & columns
    parquet = sorted(p.name for p in (settings.published_dir / "parquet").iterdir())
    assert parquet == sorted(f"{t}.parquet" for t in PUBLISHED_TABLES)
    # No temporary files are left behind.
    # One release made current by a link, stable links through it, nothing left half-written.
    assert sorted(p.name for p in settings.published_dir.iterdir()) == ["current", "kpi_mart.duckdb", "parquet", "releases"]


def test_publishing_again_swaps_the_copy_whole(built):
    """A reader with the old copy open keeps reading it whole; the new copy replaces it by rename."""
    settings = built["settings"]
    path = settings.published_dir / "kpi_mart.duckdb"
    reader = duckdb.connect(str(path), read_only=True)
    try:
        before = reader.execute("select count(*) from mart.kpi_values").fetchone()[0]
        old_inode = path.stat().st_ino
        result = publish(settings)
        assert path.stat().st_ino != old_inode
        assert reader.execute("select count(*) from mart.kpi_values").fetchone()[0] == before
    finally:
        reader.close()
    assert result.row_counts["kpi_values"] == before
    # One release made current by a link, stable links through it, nothing left half-written.
    assert sorted(p.name for p in settings.published_dir.iterdir()) == ["current", "kpi_mart.duckdb", "parquet", "releases"]


def test_query_published_reads_with_or_without_schema(built):
    settings = built["settings"]
    result = query_published(
        settings, "select value from kpi_values where kpi_code = 'CON_CONTACTS' and period = '2024-03' "
        "and partner_code = 'ALL' and dimension = 'total'"
    )
    assert result.columns == ["value"] and result.rows == [(7.0,)]
    result = query_published(settings, "select count(*) as n from mart.dim_kpi")
    assert result.rows == [(len(CATALOGUE_KPIS),)]
    with pytest.raises(QueryRefused):  # the sandbox (tests/test_query_sandbox.py) refuses it
        query_published(settings, "drop table kpi_values")
    # A Parquet export reads back the same rows.
    con = duckdb.connect()
    n = con.execute(f"select count(*) from '{settings.published_dir / 'parquet' / 'scorecard.parquet'}'").fetchone()[0]
    assert n == 14 * 9


# --- the project's own consistency --------------------------------------------------------------


def test_raw_sources_are_generated_from_the_contracts():
    """models/staging/_raw_sources.yml is written by `pkpi docs` from the contracts and must never
    drift from them: one raw table per contract, its columns in order with their SQL types, and
    an enumeration test on every enum column."""
    from pkpi.dbt_contracts import RAW_SOURCES_FILE, raw_sources_yaml

    path = DBT_PROJECT / RAW_SOURCES_FILE
    assert path.read_text(encoding="utf-8") == raw_sources_yaml(), f"{path} is stale: run `pkpi docs`"
    sources = yaml.safe_load(path.read_text(encoding="utf-8"))
    (raw,) = [s for s in sources["sources"] if s["name"] == "raw"]
    tables = {t["name"]: t for t in raw["tables"]}
    contracts = load_contracts()
    assert list(tables) == list(contracts)
    for rt, contract in contracts.items():
        columns = tables[rt]["columns"]
        assert [c["name"] for c in columns] == ["load_id", "source_row", *contract.column_names], rt
        assert [c["data_type"] for c in columns[2:]] == [c.sql_type.lower() for c in contract.columns], rt
        tested = {c["name"] for c in columns if {"in_contract_enum": {"arguments": {"return_type": rt}}} in c.get("data_tests", [])}
        assert tested == {c.name for c in contract.columns if c.type == "enum"}, rt
        assert (DBT_PROJECT / "models" / "staging" / f"stg_{rt}.sql").exists()
    # The hand-written sources hold only what no contract describes (the load audit).
    hand = yaml.safe_load((DBT_PROJECT / "models" / "staging" / "_sources.yml").read_text(encoding="utf-8"))
    assert [s["name"] for s in hand["sources"]] == ["audit"]


def test_the_contracts_reach_dbt_as_a_var_and_nothing_copies_them(tmp_path):
    """`pkpi build` passes the contracts to dbt (the var `contracts`); the project keeps no copy
    of them, and no model, macro or test spells out a list of return types: a file that names
    two return types is a hand copy of the list, which the next return type would miss."""
    import json

    from pkpi.build import dbt_args
    from pkpi.dbt_contracts import contract_vars

    contracts = load_contracts()
    args = dbt_args(Settings.from_env({"PKPI_DATA_DIR": str(tmp_path)}))
    passed = json.loads(args[args.index("--vars") + 1])
    assert passed["contracts"] == contract_vars()["contracts"]
    assert list(passed["contracts"]) == list(contracts)
    for rt, contract in contracts.items():
        assert passed["contracts"][rt]["period_kind"] == contract.period_kind
        assert passed["contracts"][rt]["enums"] == {c.name: list(c.values) for c in contract.columns if c.type == "enum"}
    project = yaml.safe_load((DBT_PROJECT / "dbt_project.yml").read_text(encoding="utf-8"))
    assert not {"contracts", "return_types", "enums"} & set(project["vars"])
    files = [p for folder in ("models", "macros", "tests") for p in (DBT_PROJECT / folder).rglob("*.sql")]
    for path in files:
        text = path.read_text(encoding="utf-8")
        # As a string of its own or inside a model name ('int_kpi_contacts').
        named = sorted(rt for rt in contracts if re.search(rf"'[^'\n]*(?<![a-z]){re.escape(rt)}(?![a-z])[^'\n]*'", text))
        assert len(named) < 2, f"{path.relative_to(DBT_PROJECT)} lists return types {named}: loop over contracts() instead"


def test_intermediate_models_never_read_the_mart(built):
    """The layers run one way: staging, intermediate, mart. No intermediate model depends on a
    mart model (as dbt resolved the project)."""
    import json

    manifest = json.loads((built["second"].target_dir / "manifest.json").read_text(encoding="utf-8"))
    nodes = manifest["nodes"]
    marts = {uid for uid, n in nodes.items() if n["resource_type"] == "model" and n["original_file_path"].startswith("models/marts/")}
    intermediate = [n for n in nodes.values() if n["resource_type"] == "model" and n["original_file_path"].startswith("models/intermediate/")]
    assert len(intermediate) > 15 and len(marts) > 5
    for node in intermediate:
        assert not set(node["depends_on"]["nodes"]) & marts, (node["name"], sorted(set(node["depends_on"]["nodes"]) & marts))


def test_every_mart_model_has_an_enforced_contract():
    marts = yaml.safe_load((DBT_PROJECT / "models" / "marts" / "_marts.yml").read_text())
    documented = {m["name"]: m for m in marts["models"]}
    sql = {p.stem for p in (DBT_PROJECT / "models" / "marts").glob("*.sql")}
    assert sql == set(documented)
    project = yaml.safe_load((DBT_PROJECT / "dbt_project.yml").read_text())
    assert project["models"]["pkpi"]["marts"]["+contract"] == {"enforced": True}
    for name, model in documented.items():
        assert model.get("description", "").strip(), name
        for column in model["columns"]:
            assert column.get("data_type"), (name, column["name"])
            # The quality sub-group reads these in the dbt docs site: every column says what it is.
            assert column.get("description", "").strip(), (name, column["name"])
        # Nothing switches the folder's enforced contract off for one model.
        assert (model.get("config") or {}).get("contract", {"enforced": True}) == {"enforced": True}, name
        assert "contract" not in (DBT_PROJECT / "models" / "marts" / f"{name}.sql").read_text(), name


def test_built_manifest_has_every_mart_column_described_and_contracted(built):
    """The same, as dbt itself resolved it: every mart model's contract is enforced and every
    column it has (the contract makes the yml list equal the SQL's) has a description."""
    import json

    manifest = json.loads((built["second"].target_dir / "manifest.json").read_text(encoding="utf-8"))
    marts = [n for n in manifest["nodes"].values()
             if n["resource_type"] == "model" and n["original_file_path"].startswith("models/marts/")]
    assert len(marts) == len(list((DBT_PROJECT / "models" / "marts").glob("*.sql")))
    for node in marts:
        assert node["config"]["contract"]["enforced"] is True, node["name"]
        assert node["description"].strip(), node["name"]
        assert node["columns"] and all(c["description"].strip() for c in node["columns"].values()), node["name"]


def test_dbt_project_assumes_no_particular_partnership():
    """Partner codes, course codes and years come from the reference folder and the data, never
    from the SQL: the shipped seeds' codes appear nowhere in the models, macros or tests."""
    import csv

    codes = set()
    for name, column in (("partners.csv", "partner_code"), ("courses.csv", "course_code")):
        with (REPO / "seeds" / name).open(encoding="utf-8-sig", newline="") as handle:
            codes |= {row[column] for row in csv.DictReader(handle)}
    sources = [p for folder in ("models", "macros", "tests") for p in (DBT_PROJECT / folder).rglob("*.sql")]
    assert len(sources) > 30
    for path in sources:
        text = path.read_text(encoding="utf-8")
        found = sorted(c for c in codes if re.search(rf"\b{re.escape(c)}\b", text))
        assert not found, f"{path.relative_to(DBT_PROJECT)} names {found}"
        # No calendar year is written into the SQL either (dates come from the data).
        assert not re.search(r"\b20[0-9]{2}-[0-9]{2}\b", re.sub(r"--.*|\{#.*?#\}", "", text, flags=re.S)), path


# --- disclosure control of the published copy ---------------------------------------------------


def published(settings, sql, params=()):
    con = duckdb.connect(str(settings.published_dir / "kpi_mart.duckdb"), read_only=True)
    try:
        return con.execute(sql, list(params)).fetchall()
    finally:
        con.close()


def test_published_copy_hides_small_disclosive_numbers(built, mart):
    settings = built["settings"]
    # Three child deaths in March 2024: exact in the mart, hidden once published.
    assert kv(mart, "CDN_NOTIFICATIONS", "month", "2024-03")[2] == 3
    rows = published(
        settings,
        "select dimension, dimension_value, numerator, value, suppressed, suppression_reason from mart.kpi_values "
        "where kpi_code = 'CDN_NOTIFICATIONS' and period = '2024-03' and partner_code = 'ALL'",
    )
    by_value = {(r[0], r[1]): r[2:] for r in rows}
    assert by_value[("total", "total")] == (None, None, True, "small_count")
    assert by_value[("death_type", "unexpected")] == (None, None, True, "small_count")
    assert by_value[("death_type", "not_known")] == (0, 0, False, None)  # zero is not disclosive
    pct = published(
        settings,
        "select numerator, denominator, value, suppression_reason from mart.kpi_values where kpi_code = 'CDN_UNEXPECTED_JAR_PCT' "
        "and period_grain = 'month' and period = '2024-03' and partner_code = 'ALL'",
    )
    assert pct == [(None, None, None, "small_base")]
    # Non-disclosive figures are published as they are, small or not.
    assert published(
        settings,
        "select value, suppressed from mart.kpi_values where kpi_code = 'RET_REJECTED' and period = '2024-03' "
        "and partner_code = 'LA1' and dimension = 'total'",
    ) == [(1, False)]
    card = published(
        settings,
        "select period, value, fytd_value, previous_month_value, suppressed, suppression_reason from mart.scorecard "
        "where kpi_code = 'CDN_NOTIFICATIONS' and period in ('2024-03', '2024-04') order by period",
    )
    assert card[0][1:5] == (None, None, None, True)
    # April's own figures are zero (not disclosive), but the month before is hidden.
    assert card[1][1:5] == (0, 0, None, True) and card[1][5] == "previous_month_value: small_count"
    assert built["second"].published.suppressed_figures > 0


def test_complementary_suppression_protects_totals(tmp_path):
    """A hidden part of a published total takes another part with it (no subtraction attack)."""
    from pkpi.disclosure import apply_disclosure_control

    con = duckdb.connect(str(tmp_path / "pub.duckdb"))
    con.execute("create schema mart")
    con.execute("create table mart.dim_kpi as select 'CDN_NOTIFICATIONS' as kpi_code, 'count' as unit, true as disclosive")
    con.execute(
        "create table mart.dim_month as select * from (values ('2024-04', '2024-25'), ('2024-05', '2024-25'), "
        "('2024-06', '2024-25')) as t(month, financial_year)"
    )
    rows = [
        # Months 10, 3 and 8 of a year published as 21: March's 3 is hidden, and so is 8.
        ("month", "2024-04", "ALL", "total", "total", 10),
        ("month", "2024-05", "ALL", "total", "total", 3),
        ("month", "2024-06", "ALL", "total", "total", 8),
        ("financial_year", "2024-25", "ALL", "total", "total", 21),
        # A breakdown of April's 10 into 2 + 8 + 0: the 2 is hidden, then the 8, never the 0.
        ("month", "2024-04", "ALL", "sex", "female", 2),
        ("month", "2024-04", "ALL", "sex", "male", 8),
        ("month", "2024-04", "ALL", "sex", "not_known", 0),
    ]
    con.execute(
        "create table mart.kpi_values (kpi_code varchar, period_grain varchar, period varchar, partner_code varchar, "
        "dimension varchar, dimension_value varchar, numerator double, denominator double, value double, disclosive boolean)"
    )
    con.executemany(
        "insert into mart.kpi_values values ('CDN_NOTIFICATIONS', ?, ?, ?, ?, ?, ?, null, ?, true)",
        [(*r[:5], r[5], r[5]) for r in rows],
    )
    con.execute(
        "create table mart.scorecard (period varchar, kpi_code varchar, unit varchar, value double, fytd_value double, "
        "previous_month_value double, same_month_last_year_value double, rag varchar, trend varchar, suppressed boolean, "
        "financial_year varchar, value_grain varchar, numerator double, denominator double, fytd_numerator double, "
        "fytd_denominator double, disclosive boolean)"
    )
    con.execute(
        "insert into mart.scorecard values "
        "('2024-04', 'CDN_NOTIFICATIONS', 'count', 10, 10, null, null, 'green', 'n/a', false, '2024-25', 'month', 10, null, 10, null, true), "
        "('2024-05', 'CDN_NOTIFICATIONS', 'count', 3, 13, 10, null, 'red', 'down', false, '2024-25', 'month', 3, null, 13, null, true), "
        "('2024-06', 'CDN_NOTIFICATIONS', 'count', 8, 21, 3, null, 'green', 'up', false, '2024-25', 'month', 8, null, 21, null, true)"
    )
    hidden = apply_disclosure_control(con, "mart", 5)
    state = {
        (r[0], r[1], r[2]): (r[3], r[4])
        for r in con.execute(
            "select period, dimension, dimension_value, value, suppression_reason from mart.kpi_values"
        ).fetchall()
    }
    assert state[("2024-05", "total", "total")] == (None, "small_count")
    # The year is still in progress (no March yet): its figure is June's year to date, and next
    # month's would give June away, so the year is hidden rather than another month.
    assert state[("2024-25", "total", "total")] == (None, "complement")
    assert state[("2024-04", "total", "total")] == (10, None)
    assert state[("2024-06", "total", "total")] == (8, None)
    assert state[("2024-04", "sex", "female")] == (None, "small_count")
    assert state[("2024-04", "sex", "male")] == (None, "complement")
    assert state[("2024-04", "sex", "not_known")] == (0, None)
    card = dict(
        (r[0], r[1:]) for r in con.execute(
            "select period, value, fytd_value, previous_month_value, suppressed, rag, trend from mart.scorecard"
        ).fetchall()
    )
    assert card["2024-04"] == (10, 10, None, False, "green", "n/a")
    # May is hidden; its year to date (13) would give it away next to April's 10, and so would
    # June's (21) next to June's 8, so every year to date from May on is hidden. A hidden value's
    # RAG and trend would hint at it, so they read grey and n/a.
    assert card["2024-05"] == (None, None, 10, True, "grey", "n/a")
    assert card["2024-06"] == (8, None, None, True, "green", "n/a")
    assert hidden >= 5
    con.close()


def _control_year(monthly: dict[str, int]) -> dict[str, tuple]:
    """Publish one KPI's months and financial year; return {period: (value, reason)}."""
    from pkpi.disclosure import apply_disclosure_control

    con = duckdb.connect()  # in memory
    con.execute("create schema mart")
    con.execute("create table mart.dim_kpi as select 'CDN_NOTIFICATIONS' as kpi_code, 'count' as unit, true as disclosive")
    con.execute("create table mart.dim_month (month varchar, financial_year varchar)")
    con.executemany("insert into mart.dim_month values (?, '2024-25')", [[m] for m in monthly])
    con.execute(
        "create table mart.kpi_values (kpi_code varchar, period_grain varchar, period varchar, partner_code varchar, "
        "dimension varchar, dimension_value varchar, numerator double, denominator double, value double, disclosive boolean)"
    )
    rows = [("month", m, n) for m, n in monthly.items()] + [("financial_year", "2024-25", sum(monthly.values()))]
    con.executemany(
        "insert into mart.kpi_values values ('CDN_NOTIFICATIONS', ?, ?, 'ALL', 'total', 'total', ?, null, ?, true)",
        [(g, p, n, n) for g, p, n in rows],
    )
    con.execute(
        "create table mart.scorecard (period varchar, kpi_code varchar, unit varchar, value double, fytd_value double, "
        "previous_month_value double, same_month_last_year_value double, rag varchar, trend varchar, "
        "financial_year varchar, value_grain varchar, numerator double, denominator double, fytd_numerator double, "
        "fytd_denominator double, disclosive boolean)"
    )
    apply_disclosure_control(con, "mart", 5)
    out = {r[0]: (r[1], r[2]) for r in con.execute("select period, value, suppression_reason from mart.kpi_values").fetchall()}
    con.close()
    return out


def test_a_complete_year_is_shown_only_when_the_months_after_the_first_hidden_one_protect_it():
    year = months_between("2024-04", "2025-03")
    # November's 2 is hidden. The year to date was published every month up to October, so only
    # the months from November on can cover it: December (the smallest) is hidden with it, and the
    # year's 68 can then be shown. April's 6, smaller than nothing after it, stays shown.
    state = _control_year({m: (2 if m == "2024-11" else 6) for m in year})
    assert state["2024-11"] == (None, "small_count")
    assert state["2024-12"] == (None, "complement")
    assert state["2024-25"] == (68, None)
    assert [m for m in year if state[m][0] is None] == ["2024-11", "2024-12"]
    # March's 3 is hidden and nothing comes after it: the year minus February's year to date
    # would give March away, so the year is hidden.
    state = _control_year({m: (3 if m == "2025-03" else 6) for m in year})
    assert state["2025-03"] == (None, "small_count")
    assert state["2024-25"] == (None, "complement")
    assert [m for m in year if state[m][0] is None] == ["2025-03"]


# --- building again: read-only project, a reporting month, full refresh, failures ---------------


def test_build_with_read_only_project_reporting_month_and_full_refresh(built, tmp_path):
    """A copy of the fixture built from a read-only project folder, with the reporting month
    2024-06 (no returns for May or June yet) and the incremental facts rebuilt from scratch."""
    source = built["settings"]
    project_root = tmp_path / "project"
    shutil.copytree(DBT_PROJECT, project_root / "dbt_project", ignore=shutil.ignore_patterns("target", "logs", ".user.yml"))
    settings = make_settings(tmp_path).with_overrides(project_dir=project_root)
    settings.data_dir.mkdir(parents=True)
    with connect(source, read_only=True):  # hold the shared lock while copying the file
        shutil.copy(source.warehouse_path, settings.warehouse_path)
    before = sorted(str(p) for p in project_root.rglob("*"))
    _set_writable(project_root, False)
    try:
        result = build_mart(settings, period="2024-06", full_refresh=True)
    finally:
        _set_writable(project_root, True)
    assert result.ok
    # dbt wrote nothing into the project (the listing is the real check: root ignores modes).
    assert sorted(str(p) for p in project_root.rglob("*")) == before
    with connect(settings, read_only=True) as con:
        statuses = dict(con.execute(
            "select period, status from mart.fct_return_submissions where return_type = 'contacts' and partner_code = 'LA1'"
        ).fetchall())
        assert statuses["2024-05"] == statuses["2024-06"] == "missing"
        months = [r[0] for r in con.execute("select distinct period from mart.scorecard order by 1").fetchall()]
        assert months[-1] == "2024-06"
        assert con.execute(
            # Every monthly return is missing (finance is counted from a yearly one).
            "select bool_and(provisional) from mart.scorecard"
            " where period in ('2024-05', '2024-06') and value_grain = 'month'"
        ).fetchone()[0] is True
        # June has no contacts return at all: no value, rather than a made-up zero.
        assert con.execute(
            "select value from mart.scorecard where period = '2024-06' and kpi_code = 'CON_CONTACTS'"
        ).fetchone()[0] is None
        rebuilt = {t: sorted(con.execute(f"select * from mart.{t}").fetchall()) for t in RECORD_LEVEL}
    with connect(source, read_only=True) as con:
        incremental = {t: sorted(con.execute(f"select * from mart.{t}").fetchall()) for t in RECORD_LEVEL}
    assert rebuilt == incremental  # the incremental facts equal a full rebuild


RECORD_LEVEL = ("fct_contacts", "fct_training_events", "fct_child_death_notifications", "fct_finance_contributions")


def loads_step_three() -> list[dict]:
    """Loaded on a copy after the fixture's two builds: a late resubmission of an old month whose
    referral makes a later month's referral a re-referral (K6 by LA1 2023-06-10, then 2024-04-02,
    in the next financial year), and a late return for an old month (OLD's training for 2024-01,
    owed and missing until now)."""
    return [
        load("C-2306b", "contacts", "LA1", "2023-06", "2024-06-20 09:00", rows=[
            contact("c30", "K6", "2023-06-10", "police", "referral", "2023-06-10"),
        ]),
        load("T-OLD-2401", "training", "OLD", "2024-01", "2024-06-21 09:00", rows=[
            ("t9", "F2F-X", "face_to_face", "attended", "2024-01-15", "police", "yes"),
        ]),
    ]


def _copy_warehouse(source: Settings, root: Path) -> Settings:
    settings = make_settings(root)
    settings.data_dir.mkdir(parents=True)
    with connect(source, read_only=True):  # hold the shared lock while copying the file
        shutil.copy(source.warehouse_path, settings.warehouse_path)
    return settings


LA1_REREFERRALS_2404 = (
    "mart.kpi_values where kpi_code = 'CON_REREFERRAL_12M_PCT' and period_grain = 'month' "
    "and period = '2024-04' and partner_code = 'LA1' and dimension = 'total'"
)
# The incremental tables a full rebuild is compared with, beyond every mart table.
INCREMENTAL_INTERMEDIATE = (
    "int_kpi_scopes", "int_kpi_contacts", "int_kpi_training", "int_kpi_child_deaths", "int_kpi_returns",
    "int_kpi_values", "int_scorecard_rows", "int_referrals", "int_load_periods",
)


@pytest.fixture(scope="module")
def stepped(built, tmp_path_factory):
    """A copy of the fixture after a third incremental step (:func:`loads_step_three`), and a
    full rebuild of a copy of that: the rebuild both tests below compare with is built once."""
    settings = _copy_warehouse(built["settings"], tmp_path_factory.mktemp("incremental"))
    write_loads(settings, loads_step_three())
    assert build_mart(settings, publish_after=False).ok
    rebuilt = _copy_warehouse(settings, tmp_path_factory.mktemp("rebuilt"))
    assert build_mart(rebuilt, full_refresh=True, publish_after=False).ok
    return settings, rebuilt


def test_an_incremental_build_equals_a_full_rebuild_in_every_mart_table(built, stepped):
    """The fixture was built in two steps (the second incremental, with late arrivals and a
    resubmission); a third incremental step on a copy adds a late resubmission of an old month
    that changes a later month's re-referral rate, and a late return for an old month. Rebuilt
    from scratch, every mart table and every incremental KPI table holds exactly the same rows:
    the KPI tables, the scorecard and the stored disclosure decisions as well as the facts. The
    third step computes only the months it touched again."""
    settings, rebuilt = stepped
    with duckdb.connect() as con:
        con.execute(f"attach '{settings.warehouse_path}' as incremental (read_only)")
        con.execute(f"attach '{rebuilt.warehouse_path}' as rebuilt (read_only)")
        # Only the months whose inputs changed (and their financial years) were computed again.
        touched = {m for (m,) in con.execute(
            "select period from incremental.intermediate.int_kpi_periods where target = 'kpi' and period_grain = 'month'"
        ).fetchall()}
        assert touched == {"2023-06", "2024-01", "2024-04"}
        # The step did change a later month: K6's 2024-04-02 referral by LA1 is a re-referral now.
        after = con.execute(f"select numerator from incremental.{LA1_REREFERRALS_2404}").fetchone()[0]
    with connect(built["settings"], read_only=True) as earlier:
        before = earlier.execute(f"select numerator from {LA1_REREFERRALS_2404}").fetchone()[0]
    assert (before, after) == (1, 2)
    _assert_same_rows(settings, rebuilt)


def test_a_spine_that_shrinks_leaves_no_scorecard_month_behind(stepped, tmp_path):
    """A build for a reporting month far ahead (the monthly DAG's scheduled run after a long
    pause) stretches the spine a financial year further; the next build without it shrinks the
    spine back. The months it dropped lose their scorecard rows (dbt's tests that the scorecard
    agrees with kpi_values and dim_month pass), and the result equals a full rebuild of the same
    returns (the one of ``stepped``: the builds here change the spine, never the returns)."""
    settings, rebuilt = stepped
    settings = _copy_warehouse(settings, tmp_path / "incremental")
    assert build_mart(settings, period="2025-10", publish_after=False).ok
    with connect(settings, read_only=True) as con:
        assert con.execute("select count(*) from mart.scorecard where period = '2025-10'").fetchone()[0] > 0
    assert build_mart(settings, publish_after=False).ok
    with connect(settings, read_only=True) as con:
        assert con.execute("select max(month) from mart.dim_month").fetchone()[0] == "2025-03"
        assert con.execute("select count(*) from mart.scorecard where period > '2025-03'").fetchone()[0] == 0
    _assert_same_rows(settings, rebuilt)


def _assert_same_rows(incremental_settings, rebuilt_settings) -> None:
    """Every mart table and every incremental KPI table holds the same rows in both warehouses."""
    with duckdb.connect() as con:
        con.execute(f"attach '{incremental_settings.warehouse_path}' as incremental (read_only)")
        con.execute(f"attach '{rebuilt_settings.warehouse_path}' as rebuilt (read_only)")
        tables = sorted(t for (t,) in con.execute(
            "select table_name from duckdb_tables() where database_name = 'incremental' and schema_name = 'mart'"
        ).fetchall())
        assert {"kpi_values", "scorecard", "disclosure_decisions", "kpi_build_inputs", *RECORD_LEVEL} <= set(tables)
        # When and how long, and the record of the last good build (its vars): differ by design.
        compared = [f"mart.{t}" for t in tables if t != "disclosure_decisions_made" and f"mart.{t}" != RECORD_TABLE]
        compared += [f"intermediate.{t}" for t in INCREMENTAL_INTERMEDIATE]
        for table in compared:
            for a, b in (("incremental", "rebuilt"), ("rebuilt", "incremental")):
                extra = con.execute(
                    f"select count(*) from (select * from {a}.{table} except all select * from {b}.{table})"
                ).fetchone()[0]
                assert extra == 0, f"{table}: {extra} row(s) in the {a} build and not in the {b} one"


def _set_writable(root: Path, writable: bool) -> None:
    for path in [root, *root.rglob("*")]:
        mode = path.stat().st_mode
        path.chmod(mode | 0o200 if writable else mode & ~0o222)


def test_failed_build_names_the_failing_nodes_and_publishes_nothing(tmp_path):
    # A hand-edited partners.csv with a date that does not exist: the partners model fails
    # (early, so everything built on it is skipped rather than built wrong).
    settings = make_settings(tmp_path)
    partners = settings.reference_dir / "partners.csv"
    partners.write_text(partners.read_text(encoding="utf-8").replace("2024-03-01", "2024-02-30"), encoding="utf-8")
    with pytest.raises(BuildFailed) as caught:
        build_mart(settings)
    failed = {(f.resource_type, f.name) for f in caught.value.failures}
    assert ("model", "partners") in failed, failed
    message = str(caught.value)
    assert "model partners: error" in message and "2024-02-30" in message
    assert "were skipped because of them" in message
    assert "run `pkpi build` again" in message
    assert not (settings.published_dir / "kpi_mart.duckdb").exists()
    with pytest.raises(FileNotFoundError, match="pkpi build"):
        query_published(settings, "select 1")


def test_missing_reference_file_is_reported_before_dbt_runs(tmp_path):
    settings = make_settings(tmp_path)
    (settings.reference_dir / "population.csv").unlink()
    with pytest.raises(BuildFailed, match="population.csv"):
        build_mart(settings)
