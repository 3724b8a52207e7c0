"""The synthetic demo returns: deterministic, realistic, and true to the contracts.

Rows are checked against the contract YAML with plain pandas here (independently of the gate),
so a demo that drifts from the contract fails in this file rather than in a demo run.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timezone
from pathlib import Path

import pandas as pd
import pytest

from pkpi.contracts import Contract, load_contracts
from pkpi.demo import write_sample_returns
from pkpi.periods import months_between, parse_period
from pkpi.reference import expected_returns, expected_returns_for_financial_year, load_reference
from pkpi.settings import Settings

REPO = Path(__file__).resolve().parents[1]
SHORT_WINDOW = ("2026-01", "2026-03")


def demo_settings(folder: Path) -> Settings:
    return Settings.from_env({"PKPI_DATA_DIR": str(folder), "PKPI_REFERENCE_DIR": str(REPO / "seeds")})


@pytest.fixture(scope="module")
def short_demo(tmp_path_factory):
    settings = demo_settings(tmp_path_factory.mktemp("short"))
    return settings, write_sample_returns(settings, *SHORT_WINDOW)


@pytest.fixture(scope="module")
def full_demo(tmp_path_factory):
    settings = demo_settings(tmp_path_factory.mktemp("full"))
    return settings, write_sample_returns(settings)


def landing_files(settings: Settings) -> dict[str, bytes]:
    return {str(p.relative_to(settings.landing_dir)): p.read_bytes()
            for p in sorted(settings.landing_dir.rglob("*")) if p.is_file()}


def read_return(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")


# --- an independent reading of the contract ------------------------------------------------

ISO_DATE = r"^\d{4}-\d{2}-\d{2}$"
UK_DATE = r"^\d{2}/\d{2}/\d{4}$"
MONEY = r"^\d+(\.\d{1,2})?$"


def parse_dates(values: pd.Series) -> pd.Series:
    iso = pd.to_datetime(values.where(values.str.match(ISO_DATE)), format="%Y-%m-%d", errors="coerce")
    uk = pd.to_datetime(values.where(values.str.match(UK_DATE)), format="%d/%m/%Y", errors="coerce")
    return iso.fillna(uk)


def contract_problems(frame: pd.DataFrame, contract: Contract, period_label: str, course_codes) -> set[tuple[str, str, int]]:
    """Every (column, rule, file row) that breaks the contract; file row 1 is the header."""
    if sorted(c.strip().lower() for c in frame.columns) != sorted(contract.column_names):
        return {("header", "columns", 1)}
    frame = frame.rename(columns=lambda c: c.strip().lower()).apply(lambda s: s.str.strip())
    period = parse_period(period_label, contract.period_kind)
    problems: set[tuple[str, str, int]] = set()

    def flag(column: str, rule: str, mask: pd.Series) -> None:
        problems.update((column, rule, int(i) + 2) for i in frame.index[mask.fillna(False).astype(bool)])

    dates = {}
    for col in contract.columns:
        values = frame[col.name]
        blank = values == ""
        if col.required:
            flag(col.name, "required", blank)
        if col.max_length:
            flag(col.name, "max_length", values.str.len() > col.max_length)
        if col.unique:
            flag(col.name, "unique", ~blank & values.str.lower().duplicated(keep=False))
        if col.type == "enum":
            flag(col.name, "enum", ~blank & ~values.str.lower().isin(col.values))
        if col.type == "integer":
            number = pd.to_numeric(values.where(values.str.fullmatch(r"-?\d+")), errors="coerce")
            flag(col.name, "integer", ~blank & (number.isna() | (number < col.min) | (number > col.max)))
        if col.type == "decimal":
            number = pd.to_numeric(values.where(values.str.fullmatch(MONEY)), errors="coerce")
            flag(col.name, "decimal", ~blank & (number.isna() | (number < col.min) | (number > col.max)))
        if col.type == "date":
            parsed = dates[col.name] = parse_dates(values)
            flag(col.name, "date", ~blank & parsed.isna())
            if col.in_period:
                start, end = pd.Timestamp(period.start), pd.Timestamp(period.end)
                flag(col.name, "in_period", ~blank & parsed.notna() & ((parsed < start) | (parsed > end)))
            if col.not_in_future:
                flag(col.name, "not_in_future", parsed > pd.Timestamp(date.today()))
            if col.not_before:
                flag(col.name, "not_before", parsed < dates[col.not_before])
        if col.reference == ("courses", "course_code"):
            flag(col.name, "reference", ~blank & ~values.isin(course_codes))
    for rule in contract.rules:
        applies = frame[rule.when.column].str.lower().isin(rule.when.values)
        target = frame[rule.column]
        if rule.rule == "required_when":
            flag(rule.column, rule.rule, applies & (target == ""))
            if rule.blank_otherwise:
                flag(rule.column, "blank_otherwise", ~applies & (target != ""))
        elif rule.rule == "values_when":
            flag(rule.column, rule.rule, applies & ~target.str.lower().isin(rule.values))
        elif rule.rule == "blank_unless":
            flag(rule.column, rule.rule, ~applies & (target != ""))
    return problems


# --- tests ---------------------------------------------------------------------------------


def test_same_seed_gives_byte_identical_files(short_demo, tmp_path):
    settings, _ = short_demo
    again = demo_settings(tmp_path / "again")
    write_sample_returns(again, *SHORT_WINDOW)
    assert landing_files(again) == landing_files(settings)

    other = demo_settings(tmp_path / "other")
    write_sample_returns(other, *SHORT_WINDOW, seed=7)
    contacts = "contacts/NCT/2026-03/contacts_NCT_2026-03.csv"
    assert landing_files(other)[contacts] != landing_files(settings)[contacts]


def test_rewriting_replaces_the_same_files(tmp_path):
    settings = demo_settings(tmp_path / "data")
    first = write_sample_returns(settings, "2026-02", "2026-03")
    before = landing_files(settings)
    mtimes = {p: p.stat().st_mtime for p in settings.landing_dir.rglob("*.csv")}
    second = write_sample_returns(settings, "2026-02", "2026-03")
    assert landing_files(settings) == before  # no extra files, no leftover temporary files
    assert {p: p.stat().st_mtime for p in settings.landing_dir.rglob("*.csv")} == mtimes
    assert first == second


def test_one_file_per_expected_return_in_the_contract_layout(short_demo):
    settings, summary = short_demo
    reference = load_reference(settings)
    expected = [e for m in months_between(*SHORT_WINDOW) for e in expected_returns(reference, m)]
    expected += expected_returns_for_financial_year(reference, "2025-26")
    written = {(r.return_type, r.partner_code, r.period) for r in summary.returns}
    missing = summary.missing_return
    assert written | {(missing.return_type, missing.partner_code, missing.period)} == {
        (e.return_type, e.partner_code, e.period) for e in expected}
    assert len(written) == summary.files_written == len(expected) - 1

    on_disk = sorted(settings.landing_dir.rglob("*.csv"))
    assert sorted(r.path for r in summary.returns) == on_disk
    for r in summary.returns:
        return_type, partner, period, name = r.path.relative_to(settings.landing_dir).parts
        assert (return_type, partner, period) == (r.return_type, r.partner_code, r.period)
        assert name.endswith(".csv")
        # the file's mtime is when the partner's upload finished: after the period began
        assert r.path.stat().st_mtime == r.received_at.timestamp()
        start = parse_period(period, load_contracts()[return_type].period_kind)
        assert datetime.fromtimestamp(r.path.stat().st_mtime, timezone.utc).date() > start.start


def test_the_planted_rejection_and_missing_return(short_demo):
    settings, summary = short_demo
    planted = summary.planted_rejection
    assert (planted.return_type, planted.partner_code, planted.period) == ("training", "NPOL", "2026-03")
    assert planted.path.is_file() and len(planted.problems) == 2
    problems = contract_problems(read_return(planted.path), load_contracts()["training"], "2026-03",
                                 load_reference(settings).course_codes)
    assert {(column, rule) for column, rule, _ in problems} == {("delivery_mode", "enum"), ("event_date", "in_period")}
    assert {row for _, _, row in problems} == {int(re.match(r"row (\d+)", p).group(1)) for p in planted.problems}

    missing = summary.missing_return
    assert (missing.return_type, missing.partner_code, missing.period) == ("training", "PROB", "2026-03")
    assert missing.due_date == date(2026, 4, 15)
    assert not (settings.landing_dir / "training" / "PROB" / "2026-03").exists()
    assert (settings.landing_dir / "training" / "PROB" / "2026-02").exists()
    assert "NPOL" in str(summary) and "PROB" in str(summary)  # what `pkpi demo` prints


def test_every_demo_row_obeys_its_contract(full_demo):
    settings, summary = full_demo
    contracts = load_contracts()
    courses = load_reference(settings).course_codes
    for r in summary.returns:
        if summary.planted_rejection and r.path == summary.planted_rejection.path:
            continue
        frame = read_return(r.path)
        assert len(frame) == r.rows
        assert list(frame.columns) == list(contracts[r.return_type].column_names), r.path
        assert contract_problems(frame, contracts[r.return_type], r.period, courses) == set(), r.path


def test_some_partners_write_uk_dates_or_save_from_excel(full_demo):
    settings, summary = full_demo
    probation = next(r for r in summary.returns if r.partner_code == "PROB")
    assert re.search(r"\n[^\n]*,\d{2}/\d{2}/\d{4},", probation.path.read_text())
    education = next(r for r in summary.returns if r.partner_code == "EDU")
    assert education.path.read_bytes().startswith(b"\xef\xbb\xbf")
    contacts = next(r for r in summary.returns if r.return_type == "contacts")
    assert re.search(r",\d{4}-\d{2}-\d{2},", contacts.path.read_text())


def test_full_window_volumes_look_like_a_real_partnership(full_demo):
    settings, summary = full_demo
    months = months_between("2024-04", "2026-03")

    def frames(return_type):
        return {r.period: read_return(r.path).assign(partner=r.partner_code)
                for r in summary.returns if r.return_type == return_type}

    # Contacts: 2,000-2,600 a month, a front-door mix, about a quarter referred.
    contacts = frames("contacts")
    assert sorted(contacts) == months
    assert all(2000 <= len(f) <= 2600 for f in contacts.values())
    every = pd.concat(contacts.values())
    sources = every.contact_source.value_counts(normalize=True)
    assert 0.27 < sources["police"] < 0.33 and 0.15 < sources["education"] < 0.21 and 0.12 < sources["health"] < 0.18
    outcomes = every.outcome.value_counts(normalize=True)
    assert 0.32 < outcomes["nfa"] < 0.38 and 0.22 < outcomes["referral"] < 0.28
    assert 0.17 < outcomes["advice"] < 0.23 and 0.17 < outcomes["early_help"] < 0.23
    assert every.child_id.str.fullmatch(r"C\d{6}").all()
    assert every.child_id.nunique() < 0.8 * len(every)  # children come back

    # About one referral in five re-refers a child referred in the previous 365 days.
    referrals = every[every.outcome == "referral"].assign(day=lambda f: pd.to_datetime(f.referral_date))
    history = referrals.groupby("child_id").day.apply(list).to_dict()
    referrals["repeat"] = [any(0 < (d - x).days <= 365 for x in history[c]) for c, d in zip(referrals.child_id, referrals.day)]
    last_year = referrals[referrals.day >= "2025-04-01"]
    assert 0.16 < last_year.repeat.mean() < 0.25

    # Training: ~650 e-learning commencements a month, ~3 in 4 completed; ~130 attendances.
    training = pd.concat(f for r in summary.returns if r.return_type == "training"
                         for f in [read_return(r.path).assign(period=r.period, partner=r.partner_code)])
    elearning = training[training.delivery_mode == "elearning"].groupby(["period", "event_type"]).size().unstack()
    assert 550 < elearning.commenced.mean() < 750
    assert 0.7 < elearning.completed.sum() / elearning.commenced.sum() < 0.8
    attended = training[training.event_type == "attended"].groupby("period").size()
    assert 100 < attended.mean() < 160
    assert (training.event_type == "did_not_attend").any() and (training.delivery_mode == "virtual").any()
    sectors = training.groupby("partner").learner_sector.agg(lambda s: s.value_counts().index[0])
    assert sectors["NPOL"] == "police" and sectors["ICB"] == "health" and sectors["NCT"] == "childrens_social_care"

    # Child deaths: 2-3 a month, some nil returns, mostly expected, JAR usually held.
    deaths = frames("child_deaths")
    counts = [len(f) for f in deaths.values()]
    assert 1.8 <= sum(counts) / len(counts) <= 3.2 and counts.count(0) >= 1
    assert all(r.path.read_text().count("\n") == 1 for r in summary.nil_returns)  # header only
    deaths_all = pd.concat(deaths.values())
    assert (deaths_all.death_type == "expected").mean() > 0.5
    unexpected = deaths_all[deaths_all.death_type == "unexpected"]
    assert len(unexpected) and (unexpected.jar_within_72h == "yes").mean() > 0.7

    # Finance: one return per contributing partner per year; the second year a few % different.
    finance = {(r.partner_code, r.period): read_return(r.path) for r in summary.returns if r.return_type == "finance"}
    assert sorted(finance) == [(p, y) for p in ("ICB", "NNC", "NPOL", "WNC") for y in ("2024-25", "2025-26")]
    for (partner, _year), frame in finance.items():
        types = set(frame.contribution_type)
        assert "core" in types and (("dsg" in types) == (partner in ("NNC", "WNC")))
        assert frame.amount_gbp.astype(float).between(10_000, 999_999).all()
    assert sum("grant" in set(f.contribution_type) for f in finance.values()) == 2  # one partner, both years
    for partner in ("ICB", "NNC", "NPOL", "WNC"):
        this, last = (finance[(partner, y)].amount_gbp.astype(float).sum() for y in ("2025-26", "2024-25"))
        assert 0.005 < abs(this / last - 1) < 0.07

    # Mostly on time, a few late.
    late = len(summary.late_returns) / summary.files_written
    assert 0.02 < late < 0.15
    for r in summary.returns:
        if not r.late:
            assert (r.due_date - r.received_at.date()).days <= 12


def test_the_full_demo_writes_every_expected_return_but_one(full_demo):
    _, summary = full_demo
    by_type = {t: sum(r.return_type == t for r in summary.returns) for t in summary.rows_by_return_type}
    # 24 months; EDU's training starts in September 2024; PROB's March 2026 training is missing.
    assert by_type == {"contacts": 24, "training": 7 * 24 - 5 - 1, "child_deaths": 24, "finance": 8}
    assert summary.rows_by_return_type["contacts"] == sum(
        r.rows for r in summary.returns if r.return_type == "contacts") > 48_000
