"""Disclosure control is decided once per build and stored; every output takes it from there.

The mart here is the hand-made one of support.mart_fixture, stored like `pkpi build` stores it
(pkpi.disclosure.store_decisions). The scorecard and the published copy must follow the stored
decisions (not decide again), and must refuse, saying to run `pkpi build`, a mart whose
decisions are missing (an older version's), were made with another threshold, or were made
over other figures.
"""

from __future__ import annotations

import csv

import duckdb
import pytest

from pkpi.disclosure import DecisionsNotStored, decide_over, load_decisions, store_decisions
from pkpi.publish import PublishFailed, publish
from pkpi.scorecard import ScorecardError, produce_scorecard
from pkpi.warehouse import connect
from support.mart_fixture import PERIOD, build_mart, make_settings

SHOWN_MONTH = "2025-04"  # CDN_NOTIFICATIONS is 6 then: shown unless a decision hides it


def scorecard_rows(output) -> dict[str, dict]:
    return {r["kpi_code"]: r for r in csv.DictReader(output.csv.read_text(encoding="utf-8").splitlines())}


def complete_for_publishing(settings) -> None:
    """What the fixture leaves out of the mart's published tables (none of it is decided on)."""
    with connect(settings) as con:
        con.execute("CREATE TABLE mart.dim_partner AS SELECT 'NCT' AS partner_code, 'Trust' AS partner_name")
        con.execute("ALTER TABLE mart.scorecard ADD COLUMN numerator DOUBLE")
        con.execute("ALTER TABLE mart.scorecard ADD COLUMN denominator DOUBLE")


def test_the_build_stores_what_the_outputs_read_back(tmp_path):
    settings = make_settings(tmp_path)
    build_mart(settings)
    with connect(settings, read_only=True) as con:
        decisions = load_decisions(con, settings.disclosure_threshold)
        made = con.execute("SELECT threshold, hidden_figures FROM mart.disclosure_decisions_made").fetchall()
        flags = dict(con.execute(
            "SELECT kpi_code, suppression_reason FROM mart.scorecard WHERE period = ? AND suppressed", [PERIOD]
        ).fetchall())
    # March 2026's 3 child deaths (fixture docstring) are hidden, and the mart's scorecard says so.
    assert decisions.kpi("CDN_NOTIFICATIONS", "month", PERIOD).value == "small_count"
    assert made == [(settings.disclosure_threshold, decisions.hidden_figures)]
    assert flags["CDN_NOTIFICATIONS"].startswith("value: small_count")
    assert "CON_CONTACTS" not in flags


def test_the_scorecard_follows_the_stored_decisions(tmp_path):
    """A figure the stored decisions hide is hidden in the scorecard, though nothing about the
    figure itself would hide it: the scorecard reads the decisions, it does not make them."""
    settings = make_settings(tmp_path)
    build_mart(settings)
    month = SHOWN_MONTH
    before = scorecard_rows(produce_scorecard(settings, month))
    assert before["CDN_NOTIFICATIONS"]["value"] == "6"
    with connect(settings) as con:
        con.execute(
            "UPDATE mart.disclosure_decisions SET suppressed = true, suppression_reason = 'complement' "
            "WHERE decided_for = 'kpi_values' AND kpi_code = 'CDN_NOTIFICATIONS' AND period_grain = 'month' "
            "AND period = ? AND partner_code = 'ALL' AND dimension = 'total'",
            [month],
        )
    after = scorecard_rows(produce_scorecard(settings, month))
    assert after["CDN_NOTIFICATIONS"]["value"] == "[c]"
    assert after["CDN_NOTIFICATIONS"]["suppressed"] == "true"


@pytest.mark.parametrize("change, says", [
    # A mart built by an older version of pkpi has no stored decisions.
    ("DROP TABLE mart.disclosure_decisions", "no stored disclosure decisions"),
    # A build that stopped between dbt and storing the decisions: the figures are new.
    ("UPDATE mart.kpi_values SET value = value + 1, numerator = numerator + 1 "
     "WHERE kpi_code = 'CDN_NOTIFICATIONS' AND period = '2026-03'", "changed since"),
    # The same, over the same figures: dbt rebuilt mart.scorecard (nothing flagged) and the
    # build stopped before the decisions were stored again.
    ("UPDATE mart.scorecard SET suppressed = false, suppression_reason = NULL", "flags do not match"),
])
def test_a_scorecard_without_fitting_decisions_says_to_run_pkpi_build(tmp_path, change, says):
    settings = make_settings(tmp_path)
    build_mart(settings)
    with connect(settings) as con:
        con.execute(change)
    with pytest.raises(ScorecardError, match="pkpi build") as caught:
        produce_scorecard(settings, PERIOD)
    assert says in str(caught.value)
    assert not (settings.data_dir / "exports" / PERIOD / "scorecard.csv").exists()


def test_a_scorecard_at_another_threshold_than_the_build_says_to_run_pkpi_build(tmp_path):
    built = make_settings(tmp_path)
    build_mart(built)
    later = make_settings(tmp_path, PKPI_DISCLOSURE_THRESHOLD="3")
    with pytest.raises(ScorecardError, match=r"threshold 5, but PKPI_DISCLOSURE_THRESHOLD is 3: run `pkpi build`"):
        produce_scorecard(later, PERIOD)


def test_the_published_copy_follows_the_stored_decisions(tmp_path):
    settings = make_settings(tmp_path)
    build_mart(settings)
    complete_for_publishing(settings)
    with connect(settings) as con:
        con.execute(
            "UPDATE mart.disclosure_decisions SET suppressed = true, suppression_reason = 'complement' "
            "WHERE decided_for = 'kpi_values' AND kpi_code = 'CDN_NOTIFICATIONS' AND period = ? "
            "AND partner_code = 'ALL' AND dimension = 'total'",
            [SHOWN_MONTH],
        )
    result = publish(settings)
    pub = duckdb.connect(str(result.database), read_only=True)
    try:
        row = pub.execute(
            "SELECT value, suppressed, suppression_reason FROM kpi_values WHERE kpi_code = 'CDN_NOTIFICATIONS' "
            "AND period_grain = 'month' AND period = ? AND partner_code = 'ALL' AND dimension = 'total'",
            [SHOWN_MONTH],
        ).fetchall()
    finally:
        pub.close()
    assert row == [(None, True, "complement")]


def test_publishing_a_mart_without_stored_decisions_says_to_run_pkpi_build(tmp_path):
    settings = make_settings(tmp_path)
    build_mart(settings)
    complete_for_publishing(settings)
    first = publish(settings)
    with connect(settings) as con:
        con.execute("DROP TABLE mart.disclosure_decisions_made")
    with pytest.raises(DecisionsNotStored, match="Run `pkpi build`"):
        publish(settings)
    # The last good release stays current.
    assert (settings.published_dir / "current").resolve() == first.release.resolve()


def test_storing_is_one_transaction(tmp_path):
    """A failure while storing leaves the previous decisions whole, never half of new ones (here
    the mart's scorecard is a view, which cannot take the flags)."""
    settings = make_settings(tmp_path)
    build_mart(settings)
    stored = "SELECT * FROM mart.disclosure_decisions ORDER BY ALL"
    made = "SELECT threshold, mart_fingerprint FROM mart.disclosure_decisions_made"
    with connect(settings) as con:
        before = (con.execute(stored).fetchall(), con.execute(made).fetchall())
        # New figures, so new decisions would differ from the stored ones.
        con.execute("UPDATE mart.kpi_values SET value = 1, numerator = 1 WHERE kpi_code = 'CDN_NOTIFICATIONS'")
        con.execute("CREATE TABLE mart.scorecard_rows AS SELECT * FROM mart.scorecard")
        con.execute("DROP TABLE mart.scorecard")
        con.execute("CREATE VIEW mart.scorecard AS SELECT * FROM mart.scorecard_rows")
        with pytest.raises(duckdb.Error):
            store_decisions(con, settings.disclosure_threshold)
        assert (con.execute(stored).fetchall(), con.execute(made).fetchall()) == before


def _resubmit_child_deaths(con, month: str, year: str) -> None:
    """What dbt makes of a resubmitted child death return: the month's largest death type, its
    total and its financial year's lose all but 2 of that type's deaths."""
    death_type, value = con.execute(
        "SELECT dimension_value, value FROM mart.kpi_values WHERE kpi_code = 'CDN_NOTIFICATIONS' "
        "AND period = ? AND partner_code = 'ALL' AND dimension = 'death_type' ORDER BY value DESC LIMIT 1",
        [month],
    ).fetchone()
    assert value > 2
    con.execute(
        "UPDATE mart.kpi_values SET value = value - ?, numerator = numerator - ? WHERE kpi_code = 'CDN_NOTIFICATIONS' "
        "AND partner_code = 'ALL' AND period IN (?, ?) AND dimension IN ('total', 'death_type') "
        "AND dimension_value IN ('total', ?)",
        [value - 2, value - 2, month, year, death_type],
    )


def _as_from_scratch(con, threshold: int):
    """The stored decisions, and those decided over the same mart from nothing."""
    stored, fresh = load_decisions(con, threshold), decide_over(con, "mart", threshold)
    return ((stored.kpi_values, stored.scorecard, set(stored.disclosive)),
            (fresh.kpi_values, fresh.scorecard, set(fresh.disclosive)))


def test_a_build_decides_again_only_the_units_whose_figures_changed(tmp_path):
    """Builds in a row, a month resubmitted between them: each stores exactly what deciding the
    whole mart from nothing decides, deciding again only the changed month's unit (its KPI
    family and financial year) and keeping the stored rows of every other."""
    settings = make_settings(tmp_path)
    build_mart(settings)  # stores the decisions: every unit decided
    threshold = settings.disclosure_threshold
    table = "SELECT * FROM mart.disclosure_decisions ORDER BY ALL"
    with connect(settings) as con:
        before = con.execute(table).fetchall()
        again = store_decisions(con, threshold)  # nothing new
        assert again.decided == () and len(again.reused) > 5
        assert con.execute(table).fetchall() == before
        for month, year in (("2024-06", "2024-25"), ("2026-02", "2025-26")):
            _resubmit_child_deaths(con, month, year)
            stored = store_decisions(con, threshold)
            assert stored.decided == (f"CDN_NOTIFICATIONS {year}",)
            assert set(stored.reused) == set(again.reused) - set(stored.decided)
            kept, fresh = _as_from_scratch(con, threshold)
            assert kept == fresh
        assert con.execute(table).fetchall() != before  # the resubmissions changed decisions
        # Another threshold, or decisions stored by a version without units: all decided again.
        assert store_decisions(con, 3).reused == ()
        assert store_decisions(con, threshold).reused == ()
        con.execute("ALTER TABLE mart.disclosure_decisions DROP COLUMN component")
        assert store_decisions(con, threshold).reused == ()
        kept, fresh = _as_from_scratch(con, threshold)
        assert kept == fresh
