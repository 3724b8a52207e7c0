"""Every KPI of the catalogue (docs/mart.md, the KPI catalogue), worked out by hand, through the real gate
and the real dbt build.

The partnership, its reference folder and its return files are in tests/support/catalogue.py:
partners LAA, HBB, PFF (and OLDX, whose membership ended on 2025-03-31), returns for April
2024, March 2025 and April 2025 (either side of the 2024-25 / 2025-26 boundary) and finance for
2024-25 and 2025-26, with a nil return, resubmissions, rejected, late, duplicate and missing
returns. pkpi.ingest.ingest_landing loads them and pkpi.build.build_mart builds the mart once.

Every expected figure below is a literal with its hand computation beside it: numerator,
denominator, value. M is the month grain, FY the financial-year grain.

A second, different partnership (other partner codes, a schedule with contacts only, 2019-20
data, header-only targets, courses and distribution list, a partner whose membership ended)
checks that nothing in the mart assumes the shipped Northamptonshire reference data.
"""

from __future__ import annotations

from datetime import date

import duckdb
import pytest

from pkpi.periods import months_between
from pkpi.warehouse import connect
from support.catalogue import ReturnFile, built_catalogue, ingest_and_build
from support.numbers import close
from support.spec import CATALOGUE_KPIS

M, FY = "month", "financial_year"
NULL = None


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return built_catalogue(tmp_path_factory)


def read_mart(settings) -> dict:
    """The built mart's tables, read once (the connection is closed again at once)."""
    with connect(settings, read_only=True) as con:
        values = {
            tuple(r[:6]): tuple(r[6:])
            for r in con.execute(
                "select kpi_code, period_grain, period, partner_code, dimension, dimension_value, "
                "numerator, denominator, value from mart.kpi_values"
            ).fetchall()
        }
        tables = {}
        for table in ("fct_return_submissions", "scorecard", "dim_month", "dim_partner", "fct_contacts",
                      "fct_finance_contributions"):
            cur = con.execute(f"select * from mart.{table}")
            names = [d[0] for d in cur.description]
            tables[table] = [dict(zip(names, row)) for row in cur.fetchall()]
    return {"values": values, **tables}


@pytest.fixture(scope="module")
def mart(built):
    return read_mart(built.settings)


def same(a, b) -> bool:
    return close(a, b, rel_tol=1e-12)


def check(mart, expected: list[tuple]) -> None:
    """Each expectation is (kpi, grain, period, partner, numerator, denominator, value[, "dim=value"]).

    All mismatches are reported together.
    """
    problems = []
    for kpi, grain, period, partner, numerator, denominator, value, *by in expected:
        dimension, dimension_value = by[0].split("=") if by else ("total", "total")
        key = (kpi, grain, period, partner, dimension, dimension_value)
        got = mart["values"].get(key)
        want = (numerator, denominator, value)
        if got is None:
            problems.append(f"{key}: no row, expected {want}")
        elif not all(same(g, w) for g, w in zip(got, want)):
            problems.append(f"{key}: got {got}, expected {want}")
    assert not problems, "\n".join(problems)


def rows_for(mart, **where) -> list[tuple]:
    keys = ("kpi_code", "period_grain", "period", "partner_code", "dimension", "dimension_value")
    return [k for k in mart["values"] if all(k[keys.index(c)] == v for c, v in where.items())]


# --- the load itself -------------------------------------------------------------------------------


def test_the_gate_judged_each_file_as_planned(built):
    outcomes = {o.file_name: o.status for o in built.ingest.outcomes}
    assert len(outcomes) == 20
    assert {n for n, s in outcomes.items() if s == "rejected"} == {
        "laa_contacts_2025-04_draft.csv", "pff_training_2025-04.csv", "zzz_training_2025-04.csv",
    }
    assert {n for n, s in outcomes.items() if s == "duplicate"} == {"hbb_cdop_2025-03_again.csv"}
    assert built.build.ok


def test_kpi_values_hold_the_whole_catalogue_and_nothing_else(mart):
    codes = {k[0] for k in mart["values"]}
    assert codes == CATALOGUE_KPIS
    # Only the catalogue's breakdowns appear.
    dimensions = {}
    for k in mart["values"]:
        dimensions.setdefault(k[0], set()).add(k[4])
    assert dimensions["CON_CONTACTS"] == {"total", "contact_source", "outcome"}
    assert dimensions["CON_REFERRALS"] == {"total", "contact_source"}
    for kpi in ("TRN_ELEARN_COMMENCED", "TRN_ELEARN_COMPLETED", "TRN_ATTENDANCES"):
        assert dimensions[kpi] == {"total", "learner_sector", "course_code"}
    assert dimensions["CDN_NOTIFICATIONS"] == {"total", "death_type", "age_band", "sex", "ethnicity"}
    assert dimensions["FIN_CONTRIBUTIONS_GBP"] == {"total", "contribution_type"}
    assert dimensions["RET_ON_TIME_PCT"] == {"total", "return_type"}
    for kpi in codes - {"CON_CONTACTS", "CON_REFERRALS", "TRN_ELEARN_COMMENCED", "TRN_ELEARN_COMPLETED",
                        "TRN_ATTENDANCES", "CDN_NOTIFICATIONS", "FIN_CONTRIBUTIONS_GBP", "RET_ON_TIME_PCT"}:
        assert dimensions[kpi] == {"total"}, kpi


def test_which_partners_and_periods_have_rows(mart):
    def scopes(prefix):
        return {(k[1], k[2], k[3]) for k in mart["values"] if k[0].startswith(prefix)}

    # Contacts: LAA's April 2024 return, March 2025 (LAA, PFF's nil) and April 2025 (both).
    assert scopes("CON_CONTACTS") == {
        (M, "2024-04", "LAA"), (M, "2024-04", "ALL"),
        (M, "2025-03", "LAA"), (M, "2025-03", "PFF"), (M, "2025-03", "ALL"),
        (M, "2025-04", "LAA"), (M, "2025-04", "PFF"), (M, "2025-04", "ALL"),
        (FY, "2024-25", "LAA"), (FY, "2024-25", "PFF"), (FY, "2024-25", "ALL"),
        (FY, "2025-26", "LAA"), (FY, "2025-26", "PFF"), (FY, "2025-26", "ALL"),
    }
    # Training: PFF's only April file was rejected and OLDX sent nothing: no rows for them.
    assert scopes("TRN_ATTENDANCES") == {
        (M, "2025-03", "HBB"), (M, "2025-03", "PFF"), (M, "2025-03", "ALL"),
        (M, "2025-04", "HBB"), (M, "2025-04", "ALL"),
        (FY, "2024-25", "HBB"), (FY, "2024-25", "PFF"), (FY, "2024-25", "ALL"),
        (FY, "2025-26", "HBB"), (FY, "2025-26", "ALL"),
    }
    # Finance: the financial-year grain only.
    assert scopes("FIN_") == {(FY, fy, p) for fy in ("2024-25", "2025-26") for p in ("LAA", "HBB", "ALL")}
    assert scopes("CON_PER_10K") == {(FY, fy, p) for fy in ("2024-25", "2025-26") for p in ("LAA", "PFF", "ALL")}
    # Return compliance: every partner the schedule expects, and the months it expects them.
    assert scopes("RET_ON_TIME_PCT") == {
        (M, "2025-03", "LAA"), (M, "2025-03", "PFF"), (M, "2025-03", "HBB"), (M, "2025-03", "OLDX"), (M, "2025-03", "ALL"),
        (M, "2025-04", "LAA"), (M, "2025-04", "PFF"), (M, "2025-04", "HBB"), (M, "2025-04", "ALL"),
        (FY, "2024-25", "LAA"), (FY, "2024-25", "PFF"), (FY, "2024-25", "HBB"), (FY, "2024-25", "OLDX"), (FY, "2024-25", "ALL"),
        (FY, "2025-26", "LAA"), (FY, "2025-26", "PFF"), (FY, "2025-26", "HBB"), (FY, "2025-26", "ALL"),
    }


# --- contacts --------------------------------------------------------------------------------------


def test_contact_counts_both_grains(mart):
    check(mart, [
        # April 2024, LAA: a1 referral, a2 referral, a3 referral, a4 advice.
        ("CON_CONTACTS", M, "2024-04", "LAA", 4, NULL, 4),
        ("CON_CONTACTS", M, "2024-04", "ALL", 4, NULL, 4),
        ("CON_REFERRALS", M, "2024-04", "ALL", 3, NULL, 3),
        # March 2025: LAA's resubmission c1..c5 (the first version's b1, b2 are not counted).
        ("CON_CONTACTS", M, "2025-03", "LAA", 5, NULL, 5),
        ("CON_REFERRALS", M, "2025-03", "LAA", 2, NULL, 2),  # c1, c2
        ("CON_CONTACTS", M, "2025-03", "ALL", 5, NULL, 5),  # 5 + PFF's nil 0
        # April 2025: LAA d1..d6 (5 referrals), PFF p1..p3 (1 referral).
        ("CON_CONTACTS", M, "2025-04", "LAA", 6, NULL, 6),
        ("CON_CONTACTS", M, "2025-04", "PFF", 3, NULL, 3),
        ("CON_CONTACTS", M, "2025-04", "ALL", 9, NULL, 9),  # 6 + 3
        ("CON_REFERRALS", M, "2025-04", "LAA", 5, NULL, 5),
        ("CON_REFERRALS", M, "2025-04", "PFF", 1, NULL, 1),
        ("CON_REFERRALS", M, "2025-04", "ALL", 6, NULL, 6),
        # 2024-25 = April 2024 + March 2025; 2025-26 = April 2025.
        ("CON_CONTACTS", FY, "2024-25", "LAA", 9, NULL, 9),  # 4 + 5
        ("CON_CONTACTS", FY, "2024-25", "PFF", 0, NULL, 0),  # the nil return
        ("CON_CONTACTS", FY, "2024-25", "ALL", 9, NULL, 9),
        ("CON_REFERRALS", FY, "2024-25", "ALL", 5, NULL, 5),  # 3 + 2
        ("CON_CONTACTS", FY, "2025-26", "ALL", 9, NULL, 9),
        ("CON_REFERRALS", FY, "2025-26", "PFF", 1, NULL, 1),
        ("CON_REFERRALS", FY, "2025-26", "ALL", 6, NULL, 6),
    ])


def test_contact_breakdowns(mart):
    check(mart, [
        # By contact_source, April 2025 ALL: police d1 d2 d4 p1 p2 = 5, health d3, education d5,
        # housing d6, anonymous p3; self none.
        ("CON_CONTACTS", M, "2025-04", "ALL", 5, NULL, 5, "contact_source=police"),
        ("CON_CONTACTS", M, "2025-04", "ALL", 1, NULL, 1, "contact_source=health"),
        ("CON_CONTACTS", M, "2025-04", "ALL", 1, NULL, 1, "contact_source=housing"),
        ("CON_CONTACTS", M, "2025-04", "ALL", 1, NULL, 1, "contact_source=anonymous"),
        ("CON_CONTACTS", M, "2025-04", "ALL", 0, NULL, 0, "contact_source=self"),
        ("CON_CONTACTS", M, "2025-04", "PFF", 2, NULL, 2, "contact_source=police"),
        # By outcome, March 2025 LAA: referral c1 c2, nfa c3 c5, early_help c4, advice none.
        ("CON_CONTACTS", M, "2025-03", "LAA", 2, NULL, 2, "outcome=referral"),
        ("CON_CONTACTS", M, "2025-03", "LAA", 2, NULL, 2, "outcome=nfa"),
        ("CON_CONTACTS", M, "2025-03", "LAA", 1, NULL, 1, "outcome=early_help"),
        ("CON_CONTACTS", M, "2025-03", "LAA", 0, NULL, 0, "outcome=advice"),
        # 2024-25 LAA by outcome: referral 3 + 2, advice 1 + 0, nfa 0 + 2, early_help 0 + 1.
        ("CON_CONTACTS", FY, "2024-25", "LAA", 5, NULL, 5, "outcome=referral"),
        ("CON_CONTACTS", FY, "2024-25", "LAA", 1, NULL, 1, "outcome=advice"),
        ("CON_CONTACTS", FY, "2024-25", "ALL", 2, NULL, 2, "outcome=nfa"),
        # 2024-25 by source: police a1 c1 c4 = 3, health a2 a3 c3 = 3, education a4 c2 = 2, self c5.
        ("CON_CONTACTS", FY, "2024-25", "ALL", 3, NULL, 3, "contact_source=police"),
        ("CON_CONTACTS", FY, "2024-25", "ALL", 3, NULL, 3, "contact_source=health"),
        ("CON_CONTACTS", FY, "2024-25", "ALL", 2, NULL, 2, "contact_source=education"),
        ("CON_CONTACTS", FY, "2024-25", "ALL", 1, NULL, 1, "contact_source=self"),
        # Referrals by source, April 2025 ALL: police d1 d2 d4 p1 = 4, health d3, education d5.
        ("CON_REFERRALS", M, "2025-04", "ALL", 4, NULL, 4, "contact_source=police"),
        ("CON_REFERRALS", M, "2025-04", "ALL", 1, NULL, 1, "contact_source=health"),
        ("CON_REFERRALS", M, "2025-04", "ALL", 1, NULL, 1, "contact_source=education"),
        ("CON_REFERRALS", M, "2025-04", "ALL", 0, NULL, 0, "contact_source=housing"),  # d6 was nfa
        ("CON_REFERRALS", FY, "2024-25", "LAA", 2, NULL, 2, "contact_source=health"),  # a2, a3
    ])
    # Every value of the contract's enumeration is listed, zeros included.
    assert len(rows_for(mart, kpi_code="CON_CONTACTS", period="2025-03", partner_code="PFF",
                        dimension="contact_source")) == 12
    assert len(rows_for(mart, kpi_code="CON_CONTACTS", period="2025-03", partner_code="PFF",
                        dimension="outcome")) == 4


def test_contact_percentages(mart):
    check(mart, [
        # Conversion = referrals / contacts, both placed by contact_date.
        ("CON_CONVERSION_PCT", M, "2024-04", "LAA", 3, 4, 75.0),  # 100 * 3 / 4
        ("CON_CONVERSION_PCT", M, "2025-03", "LAA", 2, 5, 40.0),  # 100 * 2 / 5
        ("CON_CONVERSION_PCT", M, "2025-04", "PFF", 1, 3, 100 / 3),  # 33.33...
        ("CON_CONVERSION_PCT", M, "2025-04", "ALL", 6, 9, 200 / 3),  # 100 * 6 / 9 = 66.67
        ("CON_CONVERSION_PCT", FY, "2024-25", "ALL", 5, 9, 500 / 9),  # 55.56
        ("CON_CONVERSION_PCT", FY, "2025-26", "LAA", 5, 6, 250 / 3),  # 83.33
        # NFA: March 2025 LAA c3, c5 of 5; April 2025 d6 and p2 of 9.
        ("CON_NFA_PCT", M, "2025-03", "LAA", 2, 5, 40.0),
        ("CON_NFA_PCT", M, "2025-04", "ALL", 2, 9, 200 / 9),
        ("CON_NFA_PCT", M, "2024-04", "ALL", 0, 4, 0.0),
        ("CON_NFA_PCT", FY, "2024-25", "ALL", 2, 9, 200 / 9),  # 0 + 2 of 4 + 5
        # Early help: March 2025 LAA c4 of 5; April 2025 PFF p3 of 3.
        ("CON_EARLY_HELP_PCT", M, "2025-03", "ALL", 1, 5, 20.0),
        ("CON_EARLY_HELP_PCT", M, "2025-04", "LAA", 0, 6, 0.0),
        ("CON_EARLY_HELP_PCT", M, "2025-04", "PFF", 1, 3, 100 / 3),
        ("CON_EARLY_HELP_PCT", FY, "2025-26", "ALL", 1, 9, 100 / 9),
    ])


def test_rereferrals_look_back_365_days_by_referral_date_same_partner(mart):
    check(mart, [
        # April 2024: a1 K1, a2 K4, a3 K10 are first referrals.
        ("CON_REREFERRAL_12M_PCT", M, "2024-04", "LAA", 0, 3, 0.0),
        # March 2025: c1 K1 (2025-03-10) was referred by LAA on 2024-04-10, 334 days before:
        # a re-referral, found in another financial year; c2 K2 is a first referral. The
        # superseded version's b2 (K7) is not counted at all.
        ("CON_REREFERRAL_12M_PCT", M, "2025-03", "LAA", 1, 2, 50.0),
        ("CON_REREFERRAL_12M_PCT", M, "2025-03", "ALL", 1, 2, 50.0),
        # April 2025, LAA: d1 K4 2025-04-01 after 2024-04-01 (exactly 365 days): yes; d2 K10
        # 2025-04-02 after 2024-04-01 (366 days): no; d3 K1 after 2025-03-10: yes; d4 and d5,
        # K11 twice on 2025-04-08 (same day, no earlier date): neither. 2 of 5.
        ("CON_REREFERRAL_12M_PCT", M, "2025-04", "LAA", 2, 5, 40.0),
        # PFF p1: K2 was referred on 2025-03-03, but by LAA, not PFF: no.
        ("CON_REREFERRAL_12M_PCT", M, "2025-04", "PFF", 0, 1, 0.0),
        ("CON_REREFERRAL_12M_PCT", M, "2025-04", "ALL", 2, 6, 100 / 3),
        ("CON_REREFERRAL_12M_PCT", FY, "2024-25", "ALL", 1, 5, 20.0),  # 0 of 3 + 1 of 2
        ("CON_REREFERRAL_12M_PCT", FY, "2025-26", "ALL", 2, 6, 100 / 3),
    ])


def test_contacts_per_10000_children(mart):
    check(mart, [
        # population.csv: 2024-25 20,000; 2025-26 30,000. 10,000 x contacts / population.
        ("CON_PER_10K", FY, "2024-25", "ALL", 9, 20000, 4.5),  # 10000 * 9 / 20000
        ("CON_PER_10K", FY, "2024-25", "LAA", 9, 20000, 4.5),
        ("CON_PER_10K", FY, "2024-25", "PFF", 0, 20000, 0.0),
        ("CON_PER_10K", FY, "2025-26", "ALL", 9, 30000, 3.0),  # 10000 * 9 / 30000
        ("CON_PER_10K", FY, "2025-26", "LAA", 6, 30000, 2.0),
        ("CON_PER_10K", FY, "2025-26", "PFF", 3, 30000, 1.0),
    ])
    assert not rows_for(mart, kpi_code="CON_PER_10K", period_grain=M)


def test_nil_contacts_return_gives_zeros_and_null_percentages(mart):
    # PFF's March 2025 return had a header and no rows.
    check(mart, [
        ("CON_CONTACTS", M, "2025-03", "PFF", 0, NULL, 0),
        ("CON_CONTACTS", M, "2025-03", "PFF", 0, NULL, 0, "contact_source=police"),
        ("CON_CONTACTS", M, "2025-03", "PFF", 0, NULL, 0, "outcome=nfa"),
        ("CON_REFERRALS", M, "2025-03", "PFF", 0, NULL, 0),
        ("CON_REFERRALS", M, "2025-03", "PFF", 0, NULL, 0, "contact_source=self"),
        ("CON_CONVERSION_PCT", M, "2025-03", "PFF", 0, 0, NULL),
        ("CON_NFA_PCT", M, "2025-03", "PFF", 0, 0, NULL),
        ("CON_EARLY_HELP_PCT", M, "2025-03", "PFF", 0, 0, NULL),
        ("CON_REREFERRAL_12M_PCT", M, "2025-03", "PFF", 0, 0, NULL),
        ("CON_CONVERSION_PCT", FY, "2024-25", "PFF", 0, 0, NULL),
    ])


# --- training --------------------------------------------------------------------------------------


def test_elearning(mart):
    check(mart, [
        # March 2025, HBB: commenced t1 t2 t3, completed t4. PFF: completed u1, none commenced.
        ("TRN_ELEARN_COMMENCED", M, "2025-03", "HBB", 3, NULL, 3),
        ("TRN_ELEARN_COMMENCED", M, "2025-03", "PFF", 0, NULL, 0),
        ("TRN_ELEARN_COMMENCED", M, "2025-03", "ALL", 3, NULL, 3),
        ("TRN_ELEARN_COMPLETED", M, "2025-03", "HBB", 1, NULL, 1),
        ("TRN_ELEARN_COMPLETED", M, "2025-03", "ALL", 2, NULL, 2),  # t4 + u1
        ("TRN_ELEARN_COMPLETION_PCT", M, "2025-03", "HBB", 1, 3, 100 / 3),
        ("TRN_ELEARN_COMPLETION_PCT", M, "2025-03", "PFF", 1, 0, NULL),  # nothing commenced
        ("TRN_ELEARN_COMPLETION_PCT", M, "2025-03", "ALL", 2, 3, 200 / 3),
        ("TRN_ELEARN_COMPLETION_PCT", FY, "2024-25", "ALL", 2, 3, 200 / 3),
        # Breakdowns: commenced by sector health t1 t2, education t3; by course EL-A 2, EL-B 1.
        ("TRN_ELEARN_COMMENCED", M, "2025-03", "ALL", 2, NULL, 2, "learner_sector=health"),
        ("TRN_ELEARN_COMMENCED", M, "2025-03", "ALL", 1, NULL, 1, "learner_sector=education"),
        ("TRN_ELEARN_COMMENCED", M, "2025-03", "ALL", 0, NULL, 0, "learner_sector=police"),
        ("TRN_ELEARN_COMMENCED", M, "2025-03", "ALL", 2, NULL, 2, "course_code=EL-A"),
        ("TRN_ELEARN_COMMENCED", M, "2025-03", "ALL", 1, NULL, 1, "course_code=EL-B"),
        ("TRN_ELEARN_COMMENCED", FY, "2024-25", "HBB", 0, NULL, 0, "course_code=NEW-Z"),  # never run
        # Completed: t4 (health, EL-A), u1 (police, EL-B).
        ("TRN_ELEARN_COMPLETED", M, "2025-03", "ALL", 1, NULL, 1, "learner_sector=police"),
        ("TRN_ELEARN_COMPLETED", M, "2025-03", "PFF", 1, NULL, 1, "course_code=EL-B"),
        ("TRN_ELEARN_COMPLETED", FY, "2024-25", "ALL", 1, NULL, 1, "course_code=EL-A"),
    ])
    # Every course in courses.csv is listed (five), whether run or not.
    assert len(rows_for(mart, kpi_code="TRN_ELEARN_COMPLETED", period="2025-04", partner_code="HBB",
                        dimension="course_code")) == 5


def test_attendance_did_not_attend_and_impact(mart):
    check(mart, [
        # Attended: t5 (F2F-X, health), t6 (F2F-X, education), t8 (VIR-Y, police). Did not
        # attend: t7 (HBB), u2 (PFF). Impact yes: t4 t5 t8; no: t6 u1.
        ("TRN_ATTENDANCES", M, "2025-03", "HBB", 3, NULL, 3),
        ("TRN_ATTENDANCES", M, "2025-03", "PFF", 0, NULL, 0),
        ("TRN_ATTENDANCES", M, "2025-03", "ALL", 3, NULL, 3),
        ("TRN_ATTENDANCES", FY, "2024-25", "ALL", 3, NULL, 3),
        ("TRN_ATTENDANCES", M, "2025-03", "ALL", 1, NULL, 1, "learner_sector=health"),
        ("TRN_ATTENDANCES", M, "2025-03", "ALL", 1, NULL, 1, "learner_sector=police"),
        ("TRN_ATTENDANCES", M, "2025-03", "ALL", 0, NULL, 0, "learner_sector=early_years"),
        ("TRN_ATTENDANCES", M, "2025-03", "ALL", 2, NULL, 2, "course_code=F2F-X"),
        ("TRN_ATTENDANCES", M, "2025-03", "HBB", 1, NULL, 1, "course_code=VIR-Y"),
        ("TRN_ATTENDANCES", FY, "2024-25", "ALL", 0, NULL, 0, "course_code=EL-A"),
        ("TRN_DNA_PCT", M, "2025-03", "HBB", 1, 4, 25.0),  # t7 of t5 t6 t7 t8
        ("TRN_DNA_PCT", M, "2025-03", "PFF", 1, 1, 100.0),  # u2 of u2
        ("TRN_DNA_PCT", M, "2025-03", "ALL", 2, 5, 40.0),
        ("TRN_DNA_PCT", FY, "2024-25", "ALL", 2, 5, 40.0),
        ("TRN_POSITIVE_IMPACT_PCT", M, "2025-03", "HBB", 3, 4, 75.0),  # t4 t5 t8 of t4 t5 t6 t8
        ("TRN_POSITIVE_IMPACT_PCT", M, "2025-03", "PFF", 0, 1, 0.0),  # u1 said no
        ("TRN_POSITIVE_IMPACT_PCT", M, "2025-03", "ALL", 3, 5, 60.0),
        ("TRN_POSITIVE_IMPACT_PCT", FY, "2024-25", "ALL", 3, 5, 60.0),
    ])


def test_nil_training_return(mart):
    # HBB's April 2025 return was nil; PFF's was rejected, so April's ALL is HBB's zeros.
    check(mart, [
        (kpi, grain, period, partner, 0, NULL, 0)
        for kpi in ("TRN_ELEARN_COMMENCED", "TRN_ELEARN_COMPLETED", "TRN_ATTENDANCES")
        for grain, period in ((M, "2025-04"), (FY, "2025-26"))
        for partner in ("HBB", "ALL")
    ] + [
        (kpi, grain, period, partner, 0, 0, NULL)
        for kpi in ("TRN_ELEARN_COMPLETION_PCT", "TRN_DNA_PCT", "TRN_POSITIVE_IMPACT_PCT")
        for grain, period in ((M, "2025-04"), (FY, "2025-26"))
        for partner in ("HBB", "ALL")
    ] + [
        ("TRN_ATTENDANCES", M, "2025-04", "HBB", 0, NULL, 0, "learner_sector=health"),
        ("TRN_ELEARN_COMMENCED", M, "2025-04", "ALL", 0, NULL, 0, "course_code=EL-A"),
    ])


# --- child deaths ----------------------------------------------------------------------------------


def test_child_death_notifications_and_breakdowns(mart):
    # March 2025, HBB: n1 expected under_28_days male white; n2 unexpected 28_to_364_days female
    # asian (JAR yes); n3 unexpected 10_to_14 male black (JAR no); n4 unexpected 15_to_17
    # not_known white (JAR yes). HBB is the only submitter, so ALL is the same.
    expected = []
    for grain, period in ((M, "2025-03"), (FY, "2024-25")):
        for partner in ("HBB", "ALL"):
            expected += [
                ("CDN_NOTIFICATIONS", grain, period, partner, 4, NULL, 4),
                ("CDN_UNDER_1_PCT", grain, period, partner, 2, 4, 50.0),  # n1, n2 of 4
                ("CDN_UNEXPECTED_JAR_PCT", grain, period, partner, 2, 3, 200 / 3),  # n2, n4 of n2 n3 n4
            ]
    expected += [
        ("CDN_NOTIFICATIONS", M, "2025-03", "ALL", 1, NULL, 1, "death_type=expected"),
        ("CDN_NOTIFICATIONS", M, "2025-03", "ALL", 3, NULL, 3, "death_type=unexpected"),
        ("CDN_NOTIFICATIONS", M, "2025-03", "ALL", 0, NULL, 0, "death_type=not_known"),
        ("CDN_NOTIFICATIONS", M, "2025-03", "ALL", 1, NULL, 1, "age_band=under_28_days"),
        ("CDN_NOTIFICATIONS", M, "2025-03", "ALL", 1, NULL, 1, "age_band=28_to_364_days"),
        ("CDN_NOTIFICATIONS", M, "2025-03", "ALL", 0, NULL, 0, "age_band=1_to_4"),
        ("CDN_NOTIFICATIONS", M, "2025-03", "HBB", 1, NULL, 1, "age_band=15_to_17"),
        ("CDN_NOTIFICATIONS", M, "2025-03", "ALL", 2, NULL, 2, "sex=male"),
        ("CDN_NOTIFICATIONS", M, "2025-03", "ALL", 1, NULL, 1, "sex=not_known"),
        ("CDN_NOTIFICATIONS", FY, "2024-25", "ALL", 1, NULL, 1, "sex=female"),
        ("CDN_NOTIFICATIONS", M, "2025-03", "ALL", 2, NULL, 2, "ethnicity=white"),
        ("CDN_NOTIFICATIONS", M, "2025-03", "ALL", 1, NULL, 1, "ethnicity=asian"),
        ("CDN_NOTIFICATIONS", FY, "2024-25", "HBB", 0, NULL, 0, "ethnicity=mixed"),
    ]
    check(mart, expected)


def test_nil_child_deaths_return(mart):
    # HBB's April 2025 return was nil (they are normal for child deaths).
    check(mart, [
        ("CDN_NOTIFICATIONS", M, "2025-04", "HBB", 0, NULL, 0),
        ("CDN_NOTIFICATIONS", M, "2025-04", "ALL", 0, NULL, 0, "death_type=unexpected"),
        ("CDN_UNDER_1_PCT", M, "2025-04", "ALL", 0, 0, NULL),
        ("CDN_UNEXPECTED_JAR_PCT", M, "2025-04", "HBB", 0, 0, NULL),
        ("CDN_NOTIFICATIONS", FY, "2025-26", "ALL", 0, NULL, 0),
        ("CDN_UNEXPECTED_JAR_PCT", FY, "2025-26", "ALL", 0, 0, NULL),
    ])


# --- finance ---------------------------------------------------------------------------------------


def test_finance_sums(mart):
    check(mart, [
        # 2024-25. LAA: core 10,000.00 + dsg 2,500.50 (grant 4,000.00 is not a contribution).
        # HBB: core 5,000.00 + other 499.50.
        ("FIN_CONTRIBUTIONS_GBP", FY, "2024-25", "LAA", 12500.50, NULL, 12500.50),
        ("FIN_CONTRIBUTIONS_GBP", FY, "2024-25", "HBB", 5499.50, NULL, 5499.50),
        ("FIN_CONTRIBUTIONS_GBP", FY, "2024-25", "ALL", 18000.00, NULL, 18000.00),
        ("FIN_GRANT_INCOME_GBP", FY, "2024-25", "LAA", 4000.00, NULL, 4000.00),
        ("FIN_GRANT_INCOME_GBP", FY, "2024-25", "HBB", 0, NULL, 0),
        ("FIN_GRANT_INCOME_GBP", FY, "2024-25", "ALL", 4000.00, NULL, 4000.00),
        ("FIN_TOTAL_INCOME_GBP", FY, "2024-25", "LAA", 16500.50, NULL, 16500.50),  # 12,500.50 + 4,000
        ("FIN_TOTAL_INCOME_GBP", FY, "2024-25", "ALL", 22000.00, NULL, 22000.00),  # 18,000 + 4,000
        # 2025-26. LAA's revised return: core 12,000.00 + dsg 3,000.25 + other 0.75, grant
        # 1,000.00 (its first version, core 11,000.00, is not counted). HBB: core 4,500.00,
        # grant 250.00.
        ("FIN_CONTRIBUTIONS_GBP", FY, "2025-26", "LAA", 15001.00, NULL, 15001.00),
        ("FIN_CONTRIBUTIONS_GBP", FY, "2025-26", "HBB", 4500.00, NULL, 4500.00),
        ("FIN_CONTRIBUTIONS_GBP", FY, "2025-26", "ALL", 19501.00, NULL, 19501.00),
        ("FIN_GRANT_INCOME_GBP", FY, "2025-26", "ALL", 1250.00, NULL, 1250.00),  # 1,000 + 250
        ("FIN_TOTAL_INCOME_GBP", FY, "2025-26", "HBB", 4750.00, NULL, 4750.00),
        ("FIN_TOTAL_INCOME_GBP", FY, "2025-26", "ALL", 20751.00, NULL, 20751.00),  # 19,501 + 1,250
        # By contribution type (grant is not listed: it is not a contribution).
        ("FIN_CONTRIBUTIONS_GBP", FY, "2024-25", "ALL", 15000.00, NULL, 15000.00, "contribution_type=core"),
        ("FIN_CONTRIBUTIONS_GBP", FY, "2024-25", "ALL", 2500.50, NULL, 2500.50, "contribution_type=dsg"),
        ("FIN_CONTRIBUTIONS_GBP", FY, "2024-25", "HBB", 0, NULL, 0, "contribution_type=dsg"),
        ("FIN_CONTRIBUTIONS_GBP", FY, "2024-25", "ALL", 499.50, NULL, 499.50, "contribution_type=other"),
        ("FIN_CONTRIBUTIONS_GBP", FY, "2025-26", "LAA", 0.75, NULL, 0.75, "contribution_type=other"),
        ("FIN_CONTRIBUTIONS_GBP", FY, "2025-26", "ALL", 16500.00, NULL, 16500.00, "contribution_type=core"),
    ])
    assert not rows_for(mart, kpi_code="FIN_CONTRIBUTIONS_GBP", dimension_value="grant")
    assert not [k for k in mart["values"] if k[0].startswith("FIN_") and k[1] == M]


def test_finance_share_and_year_on_year(mart):
    check(mart, [
        # Share of the partnership's contributions; the ALL row is 100.
        ("FIN_SHARE_PCT", FY, "2024-25", "LAA", 12500.50, 18000.00, 100 * 12500.50 / 18000),  # 69.447
        ("FIN_SHARE_PCT", FY, "2024-25", "HBB", 5499.50, 18000.00, 100 * 5499.50 / 18000),  # 30.553
        ("FIN_SHARE_PCT", FY, "2024-25", "ALL", 18000.00, 18000.00, 100.0),
        ("FIN_SHARE_PCT", FY, "2025-26", "LAA", 15001.00, 19501.00, 100 * 15001 / 19501),  # 76.92
        ("FIN_SHARE_PCT", FY, "2025-26", "ALL", 19501.00, 19501.00, 100.0),
        # Year on year: no 2023-24 returns, so nothing to compare 2024-25 with.
        ("FIN_YOY_CHANGE_PCT", FY, "2024-25", "LAA", NULL, NULL, NULL),
        ("FIN_YOY_CHANGE_PCT", FY, "2024-25", "ALL", NULL, NULL, NULL),
        # 2025-26: LAA 15,001.00 - 12,500.50 = 2,500.50 on 12,500.50 (+20.00%);
        # HBB 4,500.00 - 5,499.50 = -999.50 on 5,499.50 (-18.17%); ALL 19,501 - 18,000 = 1,501.
        ("FIN_YOY_CHANGE_PCT", FY, "2025-26", "LAA", 2500.50, 12500.50, 100 * 2500.50 / 12500.50),
        ("FIN_YOY_CHANGE_PCT", FY, "2025-26", "HBB", -999.50, 5499.50, -100 * 999.50 / 5499.50),
        ("FIN_YOY_CHANGE_PCT", FY, "2025-26", "ALL", 1501.00, 18000.00, 100 * 1501 / 18000),  # 8.34
    ])


# --- return compliance -----------------------------------------------------------------------------


def test_return_submissions(mart):
    rows = {(r["return_type"], r["partner_code"], r["period"]): r for r in mart["fct_return_submissions"]}
    # March 2025: 6 expected; April 2025: 5 (OLDX's membership ended); finance 2 a year.
    assert len(rows) == 15
    def status(rt, partner, period):
        r = rows[(rt, partner, period)]
        return r["status"], str(r["due_date"]), r["days_late"]
    assert status("contacts", "LAA", "2025-03") == ("received_late", "2025-04-10", 2)  # resubmitted 12 April
    assert rows[("contacts", "LAA", "2025-03")]["accepted_versions"] == 2
    assert status("contacts", "PFF", "2025-03") == ("received_on_time", "2025-04-10", 0)  # nil, 2 April
    assert rows[("contacts", "PFF", "2025-03")]["is_nil"] is True
    assert status("training", "HBB", "2025-03") == ("received_on_time", "2025-04-15", 0)
    assert status("training", "PFF", "2025-03") == ("received_late", "2025-04-15", 5)  # 20 April
    assert status("training", "OLDX", "2025-03") == ("missing", "2025-04-15", None)
    assert status("child_deaths", "HBB", "2025-03") == ("received_on_time", "2025-04-20", 0)  # the re-drop changes nothing
    assert status("contacts", "LAA", "2025-04") == ("received_on_time", "2025-05-10", 0)
    assert rows[("contacts", "LAA", "2025-04")]["rejected_files"] == 1  # the draft
    assert status("contacts", "PFF", "2025-04") == ("received_late", "2025-05-10", 5)
    assert status("training", "HBB", "2025-04") == ("received_on_time", "2025-05-15", 0)
    assert status("training", "PFF", "2025-04") == ("rejected", "2025-05-15", None)
    assert status("child_deaths", "HBB", "2025-04") == ("received_on_time", "2025-05-20", 0)
    assert status("finance", "LAA", "2024-25") == ("received_on_time", "2024-05-31", 0)
    assert status("finance", "HBB", "2024-25") == ("received_late", "2024-05-31", 15)  # 15 June
    assert status("finance", "LAA", "2025-26") == ("received_on_time", "2025-05-31", 0)  # revised 20 May
    assert status("finance", "HBB", "2025-26") == ("received_on_time", "2025-05-31", 0)
    assert ("training", "OLDX", "2025-04") not in rows
    assert not any(k[1] == "ZZZ" for k in rows)


def test_returns_on_time(mart):
    check(mart, [
        # March 2025 on time: PFF contacts, HBB training, HBB child deaths; late: LAA contacts,
        # PFF training; missing: OLDX training. 3 of 6.
        ("RET_ON_TIME_PCT", M, "2025-03", "ALL", 3, 6, 50.0),
        ("RET_ON_TIME_PCT", M, "2025-03", "LAA", 0, 1, 0.0),
        ("RET_ON_TIME_PCT", M, "2025-03", "PFF", 1, 2, 50.0),
        ("RET_ON_TIME_PCT", M, "2025-03", "HBB", 2, 2, 100.0),
        ("RET_ON_TIME_PCT", M, "2025-03", "OLDX", 0, 1, 0.0),
        ("RET_ON_TIME_PCT", M, "2025-03", "ALL", 1, 2, 50.0, "return_type=contacts"),
        ("RET_ON_TIME_PCT", M, "2025-03", "ALL", 1, 3, 100 / 3, "return_type=training"),
        ("RET_ON_TIME_PCT", M, "2025-03", "ALL", 1, 1, 100.0, "return_type=child_deaths"),
        ("RET_ON_TIME_PCT", M, "2025-03", "PFF", 0, 1, 0.0, "return_type=training"),
        # April 2025 on time: LAA contacts, HBB training (nil), HBB child deaths (nil); late: PFF
        # contacts; rejected: PFF training. 3 of 5.
        ("RET_ON_TIME_PCT", M, "2025-04", "ALL", 3, 5, 60.0),
        ("RET_ON_TIME_PCT", M, "2025-04", "LAA", 1, 1, 100.0),
        ("RET_ON_TIME_PCT", M, "2025-04", "PFF", 0, 2, 0.0),
        ("RET_ON_TIME_PCT", M, "2025-04", "ALL", 1, 2, 50.0, "return_type=training"),
        # 2024-25: March's 3 of 6 plus finance (LAA on time, HBB late) 1 of 2 = 4 of 8.
        ("RET_ON_TIME_PCT", FY, "2024-25", "ALL", 4, 8, 50.0),
        ("RET_ON_TIME_PCT", FY, "2024-25", "LAA", 1, 2, 50.0),  # contacts late, finance on time
        ("RET_ON_TIME_PCT", FY, "2024-25", "HBB", 2, 3, 200 / 3),  # training, child deaths; finance late
        ("RET_ON_TIME_PCT", FY, "2024-25", "OLDX", 0, 1, 0.0),
        ("RET_ON_TIME_PCT", FY, "2024-25", "ALL", 1, 2, 50.0, "return_type=finance"),
        ("RET_ON_TIME_PCT", FY, "2024-25", "ALL", 1, 3, 100 / 3, "return_type=training"),
        # 2025-26: April's 3 of 5 plus finance 2 of 2 = 5 of 7.
        ("RET_ON_TIME_PCT", FY, "2025-26", "ALL", 5, 7, 500 / 7),
        ("RET_ON_TIME_PCT", FY, "2025-26", "HBB", 3, 3, 100.0),
        ("RET_ON_TIME_PCT", FY, "2025-26", "ALL", 2, 2, 100.0, "return_type=finance"),
        ("RET_ON_TIME_PCT", FY, "2025-26", "ALL", 1, 1, 100.0, "return_type=child_deaths"),
    ])
    # Finance is annual: no finance breakdown at the month grain.
    assert not rows_for(mart, kpi_code="RET_ON_TIME_PCT", period_grain=M, dimension_value="finance")


def test_rejected_files(mart):
    check(mart, [
        # April 2025: LAA's contacts draft, PFF's training file and ZZZ's file (unknown partner
        # code: counted in the partnership's total only).
        ("RET_REJECTED", M, "2025-04", "ALL", 3, NULL, 3),
        ("RET_REJECTED", M, "2025-04", "LAA", 1, NULL, 1),
        ("RET_REJECTED", M, "2025-04", "PFF", 1, NULL, 1),
        ("RET_REJECTED", M, "2025-04", "HBB", 0, NULL, 0),
        ("RET_REJECTED", M, "2025-03", "ALL", 0, NULL, 0),
        ("RET_REJECTED", M, "2025-03", "OLDX", 0, NULL, 0),
        ("RET_REJECTED", FY, "2025-26", "ALL", 3, NULL, 3),
        ("RET_REJECTED", FY, "2025-26", "PFF", 1, NULL, 1),
        ("RET_REJECTED", FY, "2024-25", "ALL", 0, NULL, 0),
    ])
    assert not rows_for(mart, partner_code="ZZZ")


# --- record level, periods and the scorecard -------------------------------------------------------


def test_facts_hold_the_latest_accepted_versions(mart):
    contacts = sorted(r["contact_id"] for r in mart["fct_contacts"])
    # a1-a4, c1-c5, d1-d6, p1-p3: not b1/b2 (superseded) nor the rejected draft's row.
    assert contacts == sorted(["a1", "a2", "a3", "a4", "c1", "c2", "c3", "c4", "c5",
                               "d1", "d2", "d3", "d4", "d5", "d6", "p1", "p2", "p3"])
    finance = {(r["partner_code"], r["financial_year"], r["contribution_type"]): float(r["amount_gbp"])
               for r in mart["fct_finance_contributions"]}
    assert finance[("LAA", "2025-26", "core")] == 12000.00
    assert len(finance) == 11  # 3 + 2 + 4 + 2


def test_dim_month_covers_both_financial_years(mart):
    months = sorted(mart["dim_month"], key=lambda r: r["month"])
    assert [r["month"] for r in months][0] == "2024-04" and months[-1]["month"] == "2026-03"
    assert len(months) == 24
    by_month = {r["month"]: r for r in months}
    assert (by_month["2025-03"]["financial_year"], by_month["2025-03"]["quarter"]) == ("2024-25", "Q4")
    assert (by_month["2025-04"]["financial_year"], by_month["2025-04"]["quarter"]) == ("2025-26", "Q1")
    # Returns are expected from the first to the last month with an accepted monthly return.
    assert [r["month"] for r in months if r["is_expected_month"]] == months_between("2024-04", "2025-04")


def test_scorecard_rows(mart):
    card = {(r["period"], r["kpi_code"]): r for r in mart["scorecard"]}
    # Reporting months are those with figures: April 2024, March and April 2025.
    assert sorted({p for p, _ in card}) == ["2024-04", "2025-03", "2025-04"]
    r = card[("2025-04", "CON_CONVERSION_PCT")]
    assert same(r["value"], 200 / 3) and same(r["fytd_value"], 200 / 3)  # April is the year's first month
    assert same(r["previous_month_value"], 40.0) and same(r["same_month_last_year_value"], 75.0)
    # Target 70 with tolerance 5 for 2025-26: 66.67 is amber; up on March's 40.
    # April's contacts all arrived (PFF's late): not provisional, though PFF's training was rejected.
    assert (r["target"], r["rag"], r["trend"], r["provisional"]) == (70.0, "amber", "up", False)
    assert card[("2025-04", "TRN_ATTENDANCES")]["provisional"] is True
    r = card[("2025-03", "CON_CONTACTS")]
    assert (r["value"], r["fytd_value"], r["rag"]) == (5, 9, "grey")  # 4 (April 2024) + 5
    r = card[("2025-03", "RET_ON_TIME_PCT")]
    assert (r["value"], r["target"], r["rag"], r["provisional"]) == (50.0, 50.0, "green", True)  # OLDX missing
    r = card[("2025-04", "FIN_CONTRIBUTIONS_GBP")]
    assert (r["value"], r["previous_month_value"]) == (19501.0, 18000.0)
    # A financial year's figure trends on the year before (2024-25's 18000), not on itself.
    assert (r["same_month_last_year_value"], r["trend"]) == (18000.0, "up")
    r = card[("2025-03", "FIN_CONTRIBUTIONS_GBP")]
    assert (r["value"], r["previous_month_value"], r["trend"]) == (18000.0, 18000.0, "n/a")  # no 2023-24
    r = card[("2025-03", "CDN_UNEXPECTED_JAR_PCT")]
    # 2 of 3 unexpected deaths: the mart keeps the figure and flags that it leaves hidden.
    assert same(r["value"], 200 / 3) and r["suppressed"] is True
    assert r["suppression_reason"].startswith("value: small_base")


# --- a different partnership: nothing assumes the shipped reference data ----------------------------

OTHER_REFERENCE = {
    "partners.csv": """\
\ufeffPartner_Code,partner_name,partner_type,statutory_partner,active_from,active_to,data_contact_email
BRK,Borough of Somewhere,local_authority,TRUE,2015-04-01,,
CCG9,Old Clinical Commissioning Group,health,true,2015-04-01,2020-03-31,
""",
    "return_schedule.csv": """\
return_type,partner_code,due_days,active_from,active_to
contacts,BRK,5,2019-04-01,
contacts,CCG9,5,2019-04-01,
""",
    "courses.csv": "course_code,course_name,theme\n",
    "population.csv": "financial_year,population_0_17\n2019-20,8000\n",
    "kpi_targets.csv": "kpi_code,financial_year,target,amber_tolerance\n",
    "distribution_list.csv": "email,name,role,active\n",
}

C = "contact_id,child_id,contact_date,contact_source,child_age_years,sex,ethnicity,outcome,referral_date\n"
OTHER_RETURNS = [
    ReturnFile("contacts/BRK/2020-02/brk_2020-02.csv", "2020-03-04 10:00", C + """\
e1,J1,2020-02-10,police,4,female,white,referral,2020-02-10
e2,J2,29/02/2020,health,9,male,white,nfa,
"""),
    # J1 again: contact on 31 March (placed in March), referral dated 1 April.
    ReturnFile("contacts/BRK/2020-03/brk_2020-03.csv", "2020-04-03 10:00", C + """\
f1,J1,2020-03-31,education,4,female,white,referral,2020-04-01
f2,J3,2020-03-15,self,14,female,asian,advice,
"""),
    ReturnFile("contacts/BRK/2020-04/brk_2020-04.csv", "2020-05-11 10:00", C),  # nil, late (due 5 May)
    ReturnFile("contacts/CCG9/2020-03/ccg9_2020-03.csv", "2020-04-02 10:00", C + """\
g1,J1,2020-03-02,health,4,female,white,referral,2020-03-02
"""),
    # Finance that nobody scheduled: still counted.
    ReturnFile("finance/BRK/2019-20/brk_finance.csv", "2019-06-01 10:00", "contribution_type,amount_gbp,agreed_amount_gbp\n"
               "core,1000.00,\ngrant,500.00,\n"),
]


@pytest.fixture(scope="module")
def other(tmp_path_factory):
    built = ingest_and_build(tmp_path_factory.mktemp("other"), OTHER_REFERENCE, OTHER_RETURNS,
                             today=date(2020, 6, 1))
    assert [o.status for o in built.ingest.outcomes] == ["accepted"] * 5
    return {"built": built, **read_mart(built.settings)}


def test_other_partnership_builds_from_its_own_reference_folder(other):
    assert other["built"].build.ok
    partners = {r["partner_code"]: r for r in other["dim_partner"]}
    assert set(partners) == {"BRK", "CCG9"}
    assert str(partners["CCG9"]["active_to"]) == "2020-03-31" and partners["BRK"]["statutory_partner"] is True
    # Only contacts and finance were sent: no training or child death rows at all.
    assert {k[0].split("_")[0] for k in other["values"]} == {"CON", "FIN", "RET"}


def test_other_partnership_months_in_2019_20_and_2020_21(other):
    months = sorted(r["month"] for r in other["dim_month"])
    assert months[0] == "2019-04" and months[-1] == "2021-03" and len(months) == 24
    assert sorted(r["month"] for r in other["dim_month"] if r["is_expected_month"]) == ["2020-02", "2020-03", "2020-04"]
    check(other, [
        # February 2020 (e2 on 29 February, written DD/MM/YYYY): 2 contacts, 1 referral.
        ("CON_CONTACTS", M, "2020-02", "ALL", 2, NULL, 2),
        ("CON_CONVERSION_PCT", M, "2020-02", "BRK", 1, 2, 50.0),
        # March 2020: BRK f1 (referral, a re-referral of J1 51 days after 10 February) and f2;
        # CCG9 g1 (J1 too, but another partner: a first referral).
        ("CON_CONTACTS", M, "2020-03", "ALL", 3, NULL, 3),
        ("CON_REREFERRAL_12M_PCT", M, "2020-03", "BRK", 1, 1, 100.0),
        ("CON_REREFERRAL_12M_PCT", M, "2020-03", "CCG9", 0, 1, 0.0),
        ("CON_REREFERRAL_12M_PCT", M, "2020-03", "ALL", 1, 2, 50.0),
        ("CON_REFERRALS", M, "2020-03", "ALL", 1, NULL, 1, "contact_source=education"),
        # April 2020: BRK's nil return.
        ("CON_CONTACTS", M, "2020-04", "BRK", 0, NULL, 0),
        ("CON_CONVERSION_PCT", M, "2020-04", "ALL", 0, 0, NULL),
        # 2019-20: 5 contacts; population 8,000 -> 10000 * 5 / 8000 = 6.25; BRK 4 -> 5.0.
        ("CON_CONTACTS", FY, "2019-20", "ALL", 5, NULL, 5),
        ("CON_PER_10K", FY, "2019-20", "ALL", 5, 8000, 6.25),
        ("CON_PER_10K", FY, "2019-20", "BRK", 4, 8000, 5.0),
        ("CON_PER_10K", FY, "2019-20", "CCG9", 1, 8000, 1.25),
        # 2020-21: no population given, so no rate.
        ("CON_PER_10K", FY, "2020-21", "ALL", 0, NULL, NULL),
        # Finance 2019-20, previous year 2018-19 has no return.
        ("FIN_CONTRIBUTIONS_GBP", FY, "2019-20", "ALL", 1000.0, NULL, 1000.0),
        ("FIN_GRANT_INCOME_GBP", FY, "2019-20", "BRK", 500.0, NULL, 500.0),
        ("FIN_SHARE_PCT", FY, "2019-20", "ALL", 1000.0, 1000.0, 100.0),
        ("FIN_YOY_CHANGE_PCT", FY, "2019-20", "BRK", NULL, NULL, NULL),
    ])


def test_other_partnership_return_compliance_and_scorecard(other):
    status = {(r["partner_code"], r["period"]): r["status"] for r in other["fct_return_submissions"]}
    # Contacts only; CCG9 owes nothing after its membership ended on 31 March 2020.
    assert status == {
        ("BRK", "2020-02"): "received_on_time", ("CCG9", "2020-02"): "missing",
        ("BRK", "2020-03"): "received_on_time", ("CCG9", "2020-03"): "received_on_time",
        ("BRK", "2020-04"): "received_late",
    }
    check(other, [
        ("RET_ON_TIME_PCT", M, "2020-02", "ALL", 1, 2, 50.0),
        ("RET_ON_TIME_PCT", M, "2020-04", "ALL", 0, 1, 0.0),
        ("RET_ON_TIME_PCT", FY, "2019-20", "ALL", 3, 4, 75.0),
        ("RET_ON_TIME_PCT", FY, "2019-20", "ALL", 3, 4, 75.0, "return_type=contacts"),
        ("RET_ON_TIME_PCT", FY, "2019-20", "ALL", 0, 0, NULL, "return_type=training"),
        ("RET_ON_TIME_PCT", FY, "2020-21", "BRK", 0, 1, 0.0),
        ("RET_REJECTED", M, "2020-03", "ALL", 0, NULL, 0),
    ])
    card = other["scorecard"]
    assert sorted({r["period"] for r in card}) == ["2020-02", "2020-03", "2020-04"]
    # kpi_targets.csv has a header only: no targets, so every RAG is grey.
    assert {r["rag"] for r in card} == {"grey"} and {r["target"] for r in card} == {None}
    # CCG9's contacts missing: the measures counted from contacts, and return compliance.
    assert {r["kpi_code"] for r in card if r["period"] == "2020-02" and r["provisional"]} == {
        "CON_CONTACTS", "CON_CONVERSION_PCT", "CON_REREFERRAL_12M_PCT", "RET_ON_TIME_PCT"}


def test_other_partnership_is_published(other):
    path = other["built"].settings.published_dir / "kpi_mart.duckdb"
    con = duckdb.connect(str(path), read_only=True)
    try:
        assert con.execute(
            "select value from kpi_values where kpi_code = 'CON_PER_10K' and period = '2019-20' "
            "and partner_code = 'ALL'"
        ).fetchone() == (6.25,)
    finally:
        con.close()
