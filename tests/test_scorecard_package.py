"""The scorecard takes what the catalogue says (dim_kpi) rather than keeping its own copies, and
each piece of its vocabulary (footnote marks, trend words) has one home."""

from __future__ import annotations

import pytest

from pkpi.disclosure import DisclosureControl, Reason
from pkpi.scorecard import build_scorecard
from pkpi.scorecard.marks import notes_label, with_mark
from pkpi.scorecard.model import TRENDS, VERDICTS
from pkpi.warehouse import connect
from support.mart_fixture import (
    CATALOGUE, MISSING_RETURN, NOT_ON_SCORECARD, PERIOD, REJECTED_RETURN, build_mart, make_settings,
)

ON_SCORECARD = [c[0] for c in CATALOGUE if c[0] not in NOT_ON_SCORECARD]


@pytest.fixture
def mart(tmp_path):
    settings = make_settings(tmp_path)
    build_mart(settings)
    return settings


def test_the_scorecard_lists_kpis_in_the_catalogues_display_order(mart):
    assert [r.kpi_code for r in build_scorecard(mart, PERIOD).rows] == ON_SCORECARD
    with connect(mart) as con:  # the catalogue reordered: last first
        con.execute("UPDATE mart.dim_kpi SET display_order = 1000 - display_order")
    assert [r.kpi_code for r in build_scorecard(mart, PERIOD).rows] == ON_SCORECARD[::-1]


def test_a_kpi_waits_for_the_returns_its_catalogue_source_names(mart):
    missing, rejected = MISSING_RETURN, REJECTED_RETURN  # both training returns, 2026-03
    rows = {r.kpi_code: r for r in build_scorecard(mart, PERIOD).rows}
    assert {(g.return_type, g.partner_code) for g in rows["TRN_ATTENDANCES"].gaps} == {missing[:2], rejected[:2]}
    assert rows["CON_CONTACTS"].gaps == ()
    assert len(rows["RET_ON_TIME_PCT"].gaps) == 2  # return compliance: every return
    with connect(mart) as con:  # the catalogue says otherwise: the scorecard follows it
        con.execute("UPDATE mart.dim_kpi SET source = 'training' WHERE kpi_code = 'CON_CONTACTS'")
        con.execute("UPDATE mart.dim_kpi SET source = 'contacts' WHERE kpi_code = 'TRN_ATTENDANCES'")
    rows = {r.kpi_code: r for r in build_scorecard(mart, PERIOD).rows}
    assert {(g.return_type, g.partner_code) for g in rows["CON_CONTACTS"].gaps} == {missing[:2], rejected[:2]}
    assert rows["TRN_ATTENDANCES"].gaps == ()
    assert "training returns from" in rows["CON_CONTACTS"].waiting_for


def test_one_footnote_mark_written_the_way_each_format_writes_it():
    hidden = DisclosureControl(5).hidden("count", Reason.SMALL_COUNT)
    shown = DisclosureControl(5).shown(12, "count")
    assert with_mark(hidden, "b", "brackets") == "<5 [b]"
    assert with_mark(hidden, "b", "superscript") == "<5ᵇ"
    assert with_mark(hidden, "b", "html") == '&lt;5<sup><a href="#note-b" style="color:inherit;">b</a></sup>'
    assert [with_mark(shown, None, s) for s in ("brackets", "superscript", "html")] == ["12"] * 3
    assert notes_label(["b", None, "a", "b"]) == "Note a, Note b"
    with pytest.raises(ValueError):
        with_mark(hidden, "a", "markdown")


def test_every_trend_the_mart_can_hold_has_its_words_and_the_formats_agree(mart):
    # mart.scorecard.trend's accepted values (dbt_project/models/marts/_marts.yml).
    assert set(TRENDS) == {"up", "down", "flat", "n/a"}
    sc = build_scorecard(mart, PERIOD)
    for row in sc.rows:
        assert row.trend_text.startswith(TRENDS[row.trend].long)
        if row.trend_verdict:
            assert row.trend_text.endswith(f"({row.trend_verdict})")
            assert row.trend_short == f"{TRENDS[row.trend].arrow} {VERDICTS[row.trend_verdict].word}"
        else:
            assert row.trend_short == TRENDS[row.trend].short
