"""The scorecard files for a month, read back the way their users read them."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import re

import openpyxl
import pytest
from pypdf import PdfReader

from pkpi.scorecard import ScorecardError, build_scorecard, produce_scorecard
from pkpi.scorecard.charts import draw_scorecard_charts
from pkpi.scorecard.model import ReturnGap
from pkpi.scorecard.pdf import render_pdf
from pkpi.warehouse import initialise
from support.mart_fixture import (
    CATALOGUE, MISSING_RETURN, NOT_ON_SCORECARD, PERIOD, PROVISIONAL, REJECTED_RETURN, build_mart,
    make_settings,
)
from support.pdf_layout import page_use
from support.spec import SCORECARD_COLUMNS

SCORECARD_KPIS = [c[0] for c in CATALOGUE if c[0] not in NOT_ON_SCORECARD]


@pytest.fixture(scope="module")
def produced(tmp_path_factory):
    """One produced scorecard shared by the read-only tests of this module."""
    settings = make_settings(tmp_path_factory.mktemp("scorecard"))
    build_mart(settings)
    return settings, produce_scorecard(settings, PERIOD)


def test_every_file_is_written_to_the_months_export_folder(produced):
    settings, output = produced
    folder = settings.data_dir / "exports" / PERIOD
    assert output.directory == folder
    for name in ("scorecard.html", "scorecard.pdf", "scorecard.xlsx", "scorecard.csv"):
        assert (folder / name).is_file() and (folder / name).stat().st_size > 0
    charts = sorted(p.name for p in (folder / "charts").glob("*.png"))
    # The JAR percentage's figures are all withheld: a sentence stands in for its chart.
    charted = [k for k in SCORECARD_KPIS if k != "CDN_UNEXPECTED_JAR_PCT"]
    assert charts == sorted([f"trend-{k.lower()}.png" for k in charted] + ["child-deaths-by-year.png"])
    for chart in output.charts:
        assert chart.read_bytes().startswith(b"\x89PNG")


def test_html_is_self_contained_and_readable_on_a_phone(produced):
    _, output = produced
    html = output.html.read_text(encoding="utf-8")
    links = re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)["']""", html, flags=re.I)
    assert links, "expected the charts to be embedded"
    for link in links:
        assert link.startswith(("data:image/png;base64,", "#", "mailto:")), link
    assert not re.search(r"https?://", re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", html))
    assert "<script" not in html and "<link" not in html and "@import" not in html
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
    # Nothing is fixed wider than a 375px phone screen; images scale down.
    fixed = [int(w) for w in re.findall(r"(?<![-\w])width:\s*(\d+)px", html)]
    assert all(w <= 375 for w in fixed), fixed
    for img in re.findall(r"<img[^>]*>", html):
        assert "width:100%" in img and "height:auto" in img and 'alt="' in img


def test_html_shows_rag_by_word_and_symbol_and_names_what_is_provisional(produced):
    _, output = produced
    html = output.html.read_text(encoding="utf-8")
    for word in ("✔ Green", "▲ Amber", "✖ Red", "○ Grey"):
        assert word in html
    provisional = html[html.index('id="provisional"'):html.index('id="summary"')]
    assert "Provisional figures" in provisional
    assert f"{MISSING_RETURN[2]}: missing" in provisional
    assert f"{REJECTED_RETURN[2]}: rejected" in provisional
    assert "Multi-agency training return" in provisional  # the return is named, not just coded
    assert "(provisional)" in html
    # Hidden figures carry a footnote saying why.
    assert 'href="#note-a"' in html and 'id="note-a"' in html
    assert "shown as &lt;5" in html


def test_csv_has_the_mart_columns_after_disclosure_control(produced):
    settings, output = produced
    with output.csv.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
    assert reader.fieldnames == SCORECARD_COLUMNS
    assert [r["kpi_code"] for r in rows] == SCORECARD_KPIS
    by_code = {r["kpi_code"]: r for r in rows}
    assert all(r["period"] == PERIOD for r in rows)
    assert {r["kpi_code"] for r in rows if r["provisional"] == "true"} == PROVISIONAL
    assert by_code["CON_CONTACTS"]["value"] == "391"
    assert by_code["CDN_NOTIFICATIONS"]["value"] == "<5"
    # March's 3 is hidden: the year to date (71) minus February's (68, in February's scorecard)
    # would give it away, so one of the two is hidden (February's, when another month before
    # March is hidden with it).
    february = {r["kpi_code"]: r for r in csv.DictReader(
        produce_scorecard(settings, "2026-02").csv.read_text(encoding="utf-8").splitlines())}
    assert "[c]" in (by_code["CDN_NOTIFICATIONS"]["fytd_value"], february["CDN_NOTIFICATIONS"]["fytd_value"])
    assert by_code["CDN_NOTIFICATIONS"]["rag"] == "grey" and by_code["CDN_NOTIFICATIONS"]["trend"] == "n/a"
    assert by_code["RET_ON_TIME_PCT"]["rag"] == "red" and float(by_code["RET_ON_TIME_PCT"]["value"]) == 40.0
    assert float(by_code["FIN_CONTRIBUTIONS_GBP"]["fytd_value"]) == 1234567.89


def test_xlsx_has_a_summary_and_a_sheet_per_theme_with_real_numbers(produced):
    _, output = produced
    wb = openpyxl.load_workbook(output.xlsx)
    assert wb.sheetnames == ["Summary", "Contacts", "Training", "Child deaths", "Finance", "Return compliance"]
    summary = wb["Summary"]
    header_row = next(r for r in summary.iter_rows() if r[0].value == "Theme")
    headers = [c.value for c in header_row]
    rows = {r[1].value: r for r in summary.iter_rows(min_row=header_row[0].row + 1) if r[1].value}
    value_col = headers.index(f"This month ({PERIOD})")
    contacts = rows["CON_CONTACTS"][value_col]
    assert contacts.value == 391 and isinstance(contacts.value, (int, float))
    assert contacts.number_format == "#,##0"
    # A percentage is an Excel percentage: the fraction, shown with a % format.
    conversion = rows["CON_CONVERSION_PCT"][value_col]
    assert isinstance(conversion.value, float) and conversion.number_format == "0.0%"
    csv_rows = {r["kpi_code"]: r for r in csv.DictReader(output.csv.read_text().splitlines())}
    assert conversion.value == pytest.approx(float(csv_rows["CON_CONVERSION_PCT"]["value"]) / 100)
    finance = rows["FIN_CONTRIBUTIONS_GBP"][headers.index("Year to date (2025-26)")]
    assert finance.value == pytest.approx(1234567.89) and "£" in finance.number_format
    # A withheld figure leaves its cell empty (the column stays numbers only); Status says why.
    assert rows["CDN_NOTIFICATIONS"][value_col].value is None
    assert "This month: withheld (fewer than 5)" in rows["CDN_NOTIFICATIONS"][headers.index("Status")].value
    assert "This month: withheld [c]" in rows["CDN_UNEXPECTED_JAR_PCT"][headers.index("Status")].value
    assert rows["CON_CONTACTS"][headers.index("Status")].value is None
    for code, cells in rows.items():
        for col in range(value_col, headers.index("Target") + 1):
            assert cells[col].value is None or isinstance(cells[col].value, (int, float)), (code, headers[col])
    assert rows["CDN_NOTIFICATIONS"][headers.index("RAG")].value == "○ Grey"
    contacts_sheet = wb["Contacts"]
    series = [r for r in contacts_sheet.iter_rows(min_row=2, values_only=True) if r[0] == "CON_CONTACTS"]
    assert len(series) == 14  # 13 months and the year to date
    assert all(isinstance(r[4], (int, float)) for r in series)
    deaths = wb["Child deaths"]
    assert [c.value for c in deaths[1]] == ["KPI code", "KPI", "Unit", "Period", "Value", "Status", "Notes"]
    march = [r for r in deaths.iter_rows(min_row=2, values_only=True) if r[0] == "CDN_NOTIFICATIONS" and r[3] == PERIOD]
    assert [(r[4], r[5]) for r in march] == [(None, "withheld (fewer than 5)")]
    assert all(isinstance(r[4], (int, float)) or (r[4] is None and r[5]) or r[5] is None
               for r in deaths.iter_rows(min_row=2, values_only=True))


def test_every_workbook_sheet_prints_landscape_one_page_wide_with_its_header_on_every_page(produced):
    _, output = produced
    wb = openpyxl.load_workbook(output.xlsx)
    for ws in wb.worksheets:
        header_row = 1 if ws.title != "Summary" else next(
            r[0].row for r in ws.iter_rows() if r[0].value == "Theme")
        assert ws.page_setup.orientation == "landscape", ws.title
        assert ws.sheet_properties.pageSetUpPr.fitToPage, ws.title
        assert (ws.page_setup.fitToWidth, ws.page_setup.fitToHeight) == (1, 0), ws.title
        assert ws.print_title_rows.replace("$", "") == f"{header_row}:{header_row}", ws.title
        assert ws.freeze_panes.endswith(str(header_row + 1)), (ws.title, ws.freeze_panes)
        # Filters on the table, from its header to its last row.
        first, last = ws.auto_filter.ref.split(":")
        assert first == f"A{header_row}" and int(re.sub(r"[A-Z]", "", last)) > header_row + 1, ws.title
        # The header wraps and its row is tall enough for its longest heading (never into the data).
        headings = [c for c in ws[header_row] if c.value]
        assert all(c.alignment.wrap_text for c in headings), ws.title
        for cell in headings:
            width = ws.column_dimensions[cell.column_letter].width
            lines = -(-len(cell.value) // int(width - 1))
            assert ws.row_dimensions[header_row].height >= 15 * lines, (ws.title, cell.value)


def test_pdf_is_a4_with_the_same_content_and_the_charts(produced):
    _, output = produced
    reader = PdfReader(output.pdf)
    width, height = float(reader.pages[0].mediabox.width), float(reader.pages[0].mediabox.height)
    assert (round(width), round(height)) == (595, 842)  # A4 in points
    text = "\n".join(p.extract_text() for p in reader.pages)
    assert "Partnership scorecard: March 2026" in text
    assert "Provisional figures" in text and MISSING_RETURN[2] in text
    for word in ("Green", "Amber", "Red", "Grey"):
        assert word in text
    for row in CATALOGUE:
        if row[0] not in NOT_ON_SCORECARD:
            assert row[1].split()[0] in text
    images = sum(len(p.images) for p in reader.pages)
    assert images == len(output.charts)


def _files(folder):
    return {p.relative_to(folder).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in folder.rglob("*") if p.is_file()}


def test_producing_a_month_again_keeps_its_files_until_something_they_show_changes(tmp_path):
    settings = make_settings(tmp_path)
    build_mart(settings)
    first = produce_scorecard(settings, PERIOD)
    drawn = _files(first.directory)
    assert not first.up_to_date

    again = produce_scorecard(settings, PERIOD)  # nothing changed: the same files, not rewritten
    assert again.up_to_date and again == dataclasses.replace(first, up_to_date=True)
    assert _files(again.directory) == drawn

    chart = first.charts[0]
    chart.write_bytes(b"not the chart")  # a file altered by hand
    (first.directory / "charts" / "trend-old_kpi.png").write_bytes(b"stale")  # a KPI since dropped
    first.pdf.unlink()
    redrawn = produce_scorecard(settings, PERIOD)
    assert not redrawn.up_to_date
    now = _files(redrawn.directory)
    assert now.keys() == drawn.keys()  # the stale chart cleared, the deleted PDF back
    # The same content (the PDF and workbook carry the time they were written, the manifest their checksums).
    assert {n: c for n, (c, _) in now.items() if n.endswith((".csv", ".html", ".txt", ".png"))} == {
        n: c for n, (c, _) in drawn.items() if n.endswith((".csv", ".html", ".txt", ".png"))}
    assert not list(redrawn.directory.rglob(".*.tmp"))

    (first.directory / "manifest.json").write_text("{")  # a manifest cut short: drawn again
    assert not produce_scorecard(settings, PERIOD).up_to_date

    settings = make_settings(tmp_path, PKPI_DISCLOSURE_THRESHOLD="10")
    build_mart(settings)  # the mart decided again at the new threshold
    stricter = produce_scorecard(settings, PERIOD)
    assert not stricter.up_to_date  # what the scorecard shows changed: drawn again
    assert json.loads(stricter.manifest.read_text())["disclosure_threshold"] == 10


def test_a_complete_month_is_not_provisional(tmp_path):
    settings = make_settings(tmp_path)
    build_mart(settings)
    scorecard = build_scorecard(settings, "2026-02")
    assert not scorecard.provisional and scorecard.gaps == ()
    output = produce_scorecard(settings, "2026-02")
    assert 'id="provisional"' not in output.html.read_text()
    assert "(provisional)" not in output.subject


def test_clear_errors_when_there_is_nothing_to_report(tmp_path):
    settings = make_settings(tmp_path)
    with pytest.raises(ScorecardError, match="pkpi ingest"):
        produce_scorecard(settings, PERIOD)  # no warehouse at all
    initialise(settings)
    with pytest.raises(ScorecardError, match="pkpi build"):
        produce_scorecard(settings, PERIOD)  # returns loaded, mart never built
    build_mart(settings)
    with pytest.raises(ScorecardError, match="no scorecard rows for 2026-05") as err:
        produce_scorecard(settings, "2026-05")
    assert "latest month in the mart is 2026-03" in str(err.value)
    assert not (settings.exports_dir / "2026-05").exists()


def _glance_rows(html: str) -> dict[str, str]:
    """The at-a-glance table's rows by KPI code, as visible text."""
    table = html[html.index('id="glance"'):html.index('id="summary"')]
    rows = re.findall(r'<tr style="border-bottom[^>]*>(.*?)</tr>', table, flags=re.S)
    return {re.search(r'href="#kpi-([A-Z0-9_]+)"', r).group(1): re.sub(r"<[^>]+>|\s+", " ", r) for r in rows}


def test_the_at_a_glance_trend_says_better_or_worse_by_the_measures_polarity(produced):
    _, output = produced
    glance = _glance_rows(output.html.read_text(encoding="utf-8"))
    # Conversion (higher is better) went up; re-referrals (lower is better) went up too.
    assert "↑ Better" in glance["CON_CONVERSION_PCT"]
    assert "↑ Worse" in glance["CON_REREFERRAL_12M_PCT"]
    assert "↓ Worse" in glance["TRN_ELEARN_COMPLETION_PCT"]
    # A neutral measure only goes up or down.
    assert "↓ Down" in glance["CON_CONTACTS"] and "Better" not in glance["CON_CONTACTS"]
    pdf = "\n".join(p.extract_text() for p in PdfReader(output.pdf).pages)
    assert "↑ Worse" in pdf and "↑ Better" in pdf


def _scorecard_and_charts(settings, tmp_path, **changes):
    sc = dataclasses.replace(build_scorecard(settings, PERIOD), **changes)
    return sc, draw_scorecard_charts(sc, tmp_path / "charts")


def test_the_pdf_flows_the_trends_after_the_notes_with_no_near_empty_page(produced, tmp_path):
    settings, output = produced
    # Every page of the month's PDF after the first is at least a third full.
    pages = PdfReader(output.pdf).pages
    assert all(page_use(p) > 1 / 3 for p in pages[1:]), [page_use(p) for p in pages]
    # A long provisional box pushes the notes onto the second page: the trends follow them
    # there rather than leaving that page with a few lines of notes.
    gaps = tuple(ReturnGap("training", "Multi-agency training", f"P{i}", f"Partner number {i}", "missing", None)
                 for i in range(14))
    sc, charts = _scorecard_and_charts(settings, tmp_path, gaps=gaps)
    reader = PdfReader(io.BytesIO(render_pdf(sc, charts)))
    uses = [round(page_use(p), 2) for p in reader.pages]
    assert "Year to date runs from" in reader.pages[1].extract_text() and len(reader.pages[1].images) >= 2, uses
    assert all(u > 1 / 3 for u in uses[1:]), uses
    assert sum(len(p.images) for p in reader.pages) == len(charts)


def test_a_measure_whose_figures_are_all_withheld_gets_a_sentence_not_an_empty_chart(produced):
    _, output = produced
    # Every JAR percentage of the 13 months has a base below 5 (or no deaths at all).
    assert not (output.directory / "charts" / "trend-cdn_unexpected_jar_pct.png").exists()
    html = output.html.read_text(encoding="utf-8")
    card = html[html.index('id="kpi-CDN_UNEXPECTED_JAR_PCT"'):html.index('id="child-deaths-by-year"')]
    sentence = ("All figures for this measure over the last 13 months are withheld to protect the "
                "children and families they count (note b), so there is no chart.")
    assert sentence in card and "<img" not in card
    pdf = re.sub(r"\s+", " ", "\n".join(p.extract_text() for p in PdfReader(output.pdf).pages))
    assert sentence in pdf
    # A measure with some figures shown keeps its chart.
    assert (output.directory / "charts" / "trend-cdn_notifications.png").exists()


def test_percentage_charts_use_an_axis_that_shows_the_movement(produced, tmp_path):
    settings, _ = produced
    _, charts = _scorecard_and_charts(settings, tmp_path)
    by_code = {c.kpi_code: c for c in charts}
    for code in ("CON_CONVERSION_PCT", "TRN_ELEARN_COMPLETION_PCT", "RET_ON_TIME_PCT"):
        chart = by_code[code]
        bottom, top = chart.y_range
        values = [v for _, v in chart.plotted]
        assert bottom <= min(values) and max(values) <= top and top <= 105, (code, chart.y_range)
        # The month-to-month movement fills a good part of the axis rather than a sliver of 0-100%.
        assert (max(values) - min(values)) / (top - bottom) >= 0.25, (code, chart.y_range, values)
    assert by_code["CON_CONVERSION_PCT"].y_range[0] > 0  # conversion runs about 20-24%
    # A count still starts from zero.
    assert by_code["CON_CONTACTS"].y_range[0] == 0


def test_html_uses_the_width_of_a_desktop_screen_and_stays_one_column_on_a_phone(produced, page_at):
    _, output = produced

    def layout(width: int) -> dict:
        page = page_at(width)
        page.goto(output.html.as_uri())
        return page.evaluate("""() => ({
            scroll: document.documentElement.scrollWidth,
            wrap: document.querySelector('.wrap').getBoundingClientRect().width,
            cards: [...document.querySelectorAll('.kpi')].map(e => {
                const r = e.getBoundingClientRect(); return [r.left, r.top, r.width]; }),
        })""")

    desktop, phone = layout(1280), layout(390)
    # A desktop screen: the page is wider than the phone column, two cards side by side.
    assert desktop["wrap"] >= 900, desktop["wrap"]
    lefts = {round(left) for left, _, _ in desktop["cards"]}
    assert len(lefts) == 2, lefts
    tops = [round(top) for _, top, _ in desktop["cards"]]
    assert len(set(tops)) < len(tops)  # some cards share a row
    # A phone: one card per row, nothing wider than the screen.
    assert phone["scroll"] <= 390, phone["scroll"]
    assert len({round(left) for left, _, _ in phone["cards"]}) == 1
    assert len({round(top) for _, top, _ in phone["cards"]}) == len(phone["cards"])
