"""Disclosure control: the rules, and that hidden figures never reach any output.

The end-to-end tests build a small real mart (tests/support/mart_fixture.py) in which March
2026 has 3 child death notifications (shown as <5) and 2 of 3 unexpected deaths had a JAR
within 72 hours (66.7%, not shown), then read every file and the email a user would receive.
"""

from __future__ import annotations

import csv
import re
from email import policy
from email.parser import BytesParser

import openpyxl
import pytest
from pypdf import PdfReader

from pkpi.scorecard.charts import draw_scorecard_charts
from pkpi.delivery import deliver_scorecard
from pkpi.disclosure import DisclosureControl, Reason, is_disclosive
from pkpi.periods import months_between
from pkpi.scorecard import build_scorecard, produce_scorecard
from pkpi.settings import Settings, SettingsError
from support.mart_fixture import HIDDEN_JAR_PCT_TEXT, PERIOD, build_mart, deaths, make_settings

# --- the rules -----------------------------------------------------------------------------


def test_small_counts_of_disclosive_kpis_read_less_than_threshold():
    control = DisclosureControl(5)
    for n in (1, 2, 3, 4):
        figure = control.figure(n, "count", disclosive=True)
        assert figure.hidden and figure.text == "<5" and figure.value is None
        assert figure.reason is Reason.SMALL_COUNT
    assert control.figure(0, "count", disclosive=True).text == "0"  # none is not disclosive
    assert control.figure(5, "count", disclosive=True).text == "5"
    assert control.figure(3, "count", disclosive=False).text == "3"  # e.g. training attendances


def test_percentages_on_a_small_base_are_not_shown():
    control = DisclosureControl(5)
    assert control.figure(66.67, "percent", True, numerator=2, denominator=3).hidden
    assert control.figure(20.0, "percent", True, numerator=2, denominator=10).hidden
    assert control.figure(10.0, "percent", True, numerator=1, denominator=10).text == "[c]"
    shown = control.figure(84.21, "percent", True, numerator=16, denominator=19)
    assert not shown.hidden and shown.text == "84.2%"
    assert not control.figure(0.0, "percent", True, numerator=0, denominator=12).hidden
    # Without the counts behind it, a disclosive percentage cannot be checked, so it is withheld.
    assert control.figure(50.0, "percent", True).reason is Reason.UNCHECKED
    # No value (denominator of zero) is not a hidden value.
    assert control.figure(None, "percent", True, numerator=0, denominator=0).missing


def test_which_figures_are_disclosive():
    assert is_disclosive("CDN_NOTIFICATIONS", marked_disclosive=False)  # every child death KPI
    assert is_disclosive("CON_CONTACTS", False, dimension="ethnicity")
    assert is_disclosive("CON_CONTACTS", False, dimension="sex")
    assert not is_disclosive("CON_CONTACTS", False, dimension="contact_source")
    assert is_disclosive("ANY_KPI", marked_disclosive=True)


def test_threshold_is_configurable():
    control = DisclosureControl(3)
    assert control.figure(2, "count", True).text == "<3"
    assert control.figure(3, "count", True).text == "3"
    assert "1 to 2" in control.footnote(Reason.SMALL_COUNT)
    settings = Settings.from_env({"PKPI_DATA_DIR": "/tmp/x", "PKPI_DISCLOSURE_THRESHOLD": "10"})
    assert DisclosureControl.from_settings(settings).figure(9, "count", True).text == "<10"
    with pytest.raises(SettingsError):
        Settings.from_env({"PKPI_DATA_DIR": "/tmp/x", "PKPI_DISCLOSURE_THRESHOLD": "0"})


def test_one_hidden_part_of_a_published_total_brings_another_with_it():
    control = DisclosureControl(5)
    raw = {"apr": 9, "may": 3, "jun": 0, "jul": 6}
    parts = {k: control.figure(v, "count", True) for k, v in raw.items()}
    protected = control.protect_parts(parts, raw, total_published=True)
    hidden = {k for k, f in protected.items() if f.hidden}
    # 'may' alone could be worked out as total - the rest; the smallest non-zero other part
    # goes with it, so the hidden parts add up to 9, not to a small number.
    assert hidden == {"may", "jul"}
    assert protected["jul"].reason is Reason.COMPLEMENT and protected["jul"].value is None
    assert protected["jun"].text == "0"
    # Two small hidden parts adding up to less than the threshold need a third.
    raw = {"a": 1, "b": 2, "c": 20, "d": 30}
    parts = {k: control.figure(v, "count", True) for k, v in raw.items()}
    assert {k for k, f in control.protect_parts(parts, raw, True).items() if f.hidden} == {"a", "b", "c"}
    # When the total is not published, subtraction reveals nothing: only the small part is hidden.
    raw = {"apr": 9, "may": 3}
    parts = {k: control.figure(v, "count", True) for k, v in raw.items()}
    assert [k for k, f in control.protect_parts(parts, raw, False).items() if f.hidden] == ["may"]


# --- nothing hidden leaves the warehouse ---------------------------------------------------


@pytest.fixture
def settings(tmp_path):
    settings = make_settings(tmp_path)
    build_mart(settings)
    return settings


def _standalone(token: str, text: str) -> bool:
    """True when ``token`` appears as a number of its own (not inside 13, 2025, 3.5 or 3px),
    leaving out footnote references ("note 3", "[3]")."""
    text = re.sub(r"\bnote \d+|\[\d+\]", " ", text, flags=re.I)
    return re.search(rf"(?<![\w.,£-]){re.escape(token)}(?![\w.,%])", text) is not None


def _between(text: str, start: str, end: str) -> str:
    i = text.index(start)
    j = text.find(end, i + len(start))
    return text[i: j if j != -1 else None]


def _strip_tags(html: str) -> str:
    html = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", html)
    return re.sub(r"<[^>]+>", " ", html).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _xlsx_strings(path) -> list[str]:
    wb = openpyxl.load_workbook(path)
    return [str(c.value) for ws in wb.worksheets for row in ws.iter_rows() for c in row if c.value is not None]


def test_hidden_figures_never_reach_any_output(settings):
    output = produce_scorecard(settings, PERIOD)
    deliver_scorecard(settings, PERIOD)  # no SMTP host: the exact email goes to the outbox

    html = output.html.read_text(encoding="utf-8")
    pdf_text = "\n".join(p.extract_text() for p in PdfReader(output.pdf).pages)
    csv_text = output.csv.read_text(encoding="utf-8")
    xlsx_cells = _xlsx_strings(output.xlsx)
    [eml] = settings.outbox_dir.glob("*.eml")
    email = BytesParser(policy=policy.default).parsebytes(eml.read_bytes())
    email_text = email.get_body(("plain",)).get_content()
    email_html = email.get_body(("html",)).get_content()

    # The hidden percentage (2 of 3 = 66.7%) appears nowhere, in any rounding.
    everything = [html, pdf_text, csv_text, email_text, email_html, eml.read_text(errors="replace"), *xlsx_cells]
    for text in everything:
        for hidden in HIDDEN_JAR_PCT_TEXT:
            assert hidden not in text

    # The hidden count (3 notifications this month) reads <5 wherever the month's figure is.
    rows = {r["kpi_code"]: r for r in csv.DictReader(csv_text.splitlines())}
    assert rows["CDN_NOTIFICATIONS"]["value"] == "<5"
    assert rows["CDN_NOTIFICATIONS"]["suppressed"] == "true"
    assert rows["CDN_UNEXPECTED_JAR_PCT"]["value"] == "[c]"
    assert rows["CON_CONTACTS"]["suppressed"] == "false"
    for text in (
        _strip_tags(_between(html, 'id="kpi-CDN_NOTIFICATIONS"', 'class="kpi"')),
        _strip_tags(_between(email_html, 'id="kpi-CDN_NOTIFICATIONS"', 'class="kpi"')),
        _between(email_text, "Child death notifications", "Unexpected deaths"),
        _between(pdf_text, "Child death notifications", "Unexpected deaths"),
    ):
        assert "<5" in text
        assert not _standalone("3", text), text
    summary = openpyxl.load_workbook(output.xlsx)["Summary"]
    cdn = next(r for r in summary.iter_rows(values_only=True) if r[1] == "CDN_NOTIFICATIONS")
    assert cdn[4] is None and "withheld (fewer than 5)" in cdn[9] and 3 not in cdn

    # Were March the year's only hidden month, the year to date published with February's
    # scorecard next to any figure for the whole year would give March's 3 away, so the year's
    # figure is shown only when another month of the year is hidden with March and the hidden
    # months add up to 5 or more (here May 2025, hidden to protect the JAR percentages that
    # leave out one death: 1 of 2 in June, 1 of 2 in October).
    deaths_sheet = openpyxl.load_workbook(output.xlsx)["Child deaths"]
    cdn_rows = [r for r in deaths_sheet.iter_rows(min_row=2, values_only=True) if r[0] == "CDN_NOTIFICATIONS"]
    monthly = {r[3]: r[4] if r[5] is None else r[5] for r in cdn_rows}  # the figure, or its Status
    assert monthly["2026-03"] == "withheld (fewer than 5)" and monthly["2025-04"] == 6
    year = months_between("2025-04", PERIOD)
    hidden_months = [m for m in year if monthly[m] in ("withheld (fewer than 5)", "withheld [c]")]
    if monthly["2025-26 to 2026-03"] != "withheld [c]":
        assert len(hidden_months) >= 2 and sum(sum(deaths(m)) for m in hidden_months) >= 5, hidden_months
        assert monthly["2025-26 to 2026-03"] == sum(sum(deaths(m)) for m in year)
    assert (rows["CDN_NOTIFICATIONS"]["fytd_value"] == "[c]") == (monthly["2025-26 to 2026-03"] == "withheld [c]")


def test_charts_do_not_plot_hidden_points(settings, tmp_path):
    charts = {c.kpi_code: c for c in draw_scorecard_charts(build_scorecard(settings, PERIOD), tmp_path / "charts")}
    cdn = charts["CDN_NOTIFICATIONS"]
    assert "Mar 26" in cdn.not_shown  # and any month hidden to protect another (here May 25)
    assert all(label != "Mar 26" for label, _ in cdn.plotted) and ("Apr 25", 6) in cdn.plotted
    assert "CDN_UNEXPECTED_JAR_PCT" not in charts  # every month's base is below 5: no chart at all
    by_year = charts[None]
    # 2024-25 had 3 deaths of unknown type in no month alone... its split is shown or withheld by
    # the same rules; 2025-26's split would give March's unexpected deaths away: at most its
    # total is plotted (see above for when the total may be shown).
    assert not any(label.startswith("2025-26") and not label.endswith("total") for label, _ in by_year.plotted)
    assert "2025-26" in by_year.alt


def test_a_lower_threshold_shows_more(tmp_path):
    settings = make_settings(tmp_path, PKPI_DISCLOSURE_THRESHOLD="3")
    build_mart(settings)
    output = produce_scorecard(settings, PERIOD)
    rows = {r["kpi_code"]: r for r in csv.DictReader(output.csv.read_text().splitlines())}
    assert rows["CDN_NOTIFICATIONS"]["value"] == "3"
    assert rows["CDN_NOTIFICATIONS"]["suppressed"] == "false"
    assert rows["CDN_UNEXPECTED_JAR_PCT"]["value"] == "[c]"  # 2 of 3: the numerator is below 3
    card = _strip_tags(_between(output.html.read_text(), 'id="kpi-CDN_NOTIFICATIONS"', 'class="kpi"'))
    assert _standalone("3", card) and "<3" not in card


def test_no_month_hidden_in_one_scorecard_can_be_worked_out_from_the_others(settings):
    """Leads keep every month's scorecard: across a year of them, a hidden month is never shown
    in another, and never sits between two year-to-date figures that are both shown (their
    difference would be the month)."""
    from pkpi.periods import months_between, shift_month

    hidden_texts = {"<5", "[c]"}
    shown: dict[tuple[str, str], str] = {}
    hidden: set[tuple[str, str]] = set()
    fytd: dict[tuple[str, str], str] = {}
    year = months_between("2025-04", PERIOD)
    for month in year:
        output = produce_scorecard(settings, month)
        for row in csv.DictReader(output.csv.read_text(encoding="utf-8").splitlines()):
            kpi = row["kpi_code"]
            fytd[(kpi, month)] = row["fytd_value"]
            for column, at in (("value", month), ("previous_month_value", shift_month(month, -1)),
                               ("same_month_last_year_value", shift_month(month, -12))):
                text = row[column]
                if text in hidden_texts:
                    hidden.add((kpi, at))
                elif text:
                    shown[(kpi, at)] = text
    assert ("CDN_NOTIFICATIONS", PERIOD) in hidden
    assert not hidden & shown.keys(), sorted(hidden & shown.keys())
    for kpi, month in sorted(hidden):
        if month not in year:
            continue
        before = fytd.get((kpi, shift_month(month, -1))) if not month.endswith("-04") else "0"
        assert fytd[(kpi, month)] in hidden_texts or before in hidden_texts, (kpi, month, before, fytd[(kpi, month)])
