"""The scorecard of a demo-like month, checked the way a reader would check it.

One module-scoped run: thirteen months of the demo's sample returns (March 2025 to March 2026,
enough for every 13-month trend; training from three partners to keep it quick), with the March 2026 child death return replaced by one that
disclosure control must protect, then the whole monthly cycle (ingest, dbt build, scorecard,
email to the outbox). The tests then

- count the return files in the archive by hand and find the same figures in mart.scorecard,
  mart.kpi_values and the scorecard files;
- look for the planted small numbers in every output that leaves the warehouse: the HTML page,
  the PDF's text, every workbook cell, the CSV, the .eml file with every part decoded (and the
  attached PDF and workbook read again), and the text chunks of every chart PNG;
- produce the month again with PKPI_DISCLOSURE_THRESHOLD=10.

Planted in March 2026: 3 child death notifications (shown as <5), of which 2 unexpected deaths,
one with a Joint Agency Response within 72 hours: a JAR percentage of 50% on a base of 2 (not
shown).
"""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import struct
import zlib
from email import policy
from email.parser import BytesParser
from pathlib import Path

import openpyxl
import pytest
from pypdf import PdfReader

from pkpi.cycle import run_cycle
from pkpi.demo import write_sample_returns
from pkpi.disclosure.stored import store_decisions
from pkpi.periods import months_between
from pkpi.reference import load_reference
from pkpi.scorecard import produce_scorecard
from pkpi.settings import Settings
from pkpi.warehouse import connect
from support.pdf_layout import page_use
from support.spec import SCORECARD_COLUMNS, SCORECARD_KPIS

REPO = Path(__file__).resolve().parents[1]
SEEDS = REPO / "seeds"
PERIOD = "2026-03"
FIRST_MONTH = "2025-03"
THIS_YEAR = months_between("2025-04", PERIOD)

# The planted child death return for March 2026 (contract columns, in order).
PLANTED_DEATHS = [
    ["notification_id", "notification_date", "age_band", "sex", "ethnicity", "death_type", "jar_within_72h"],
    ["CDN-T-001", "2026-03-04", "under_28_days", "female", "white", "expected", ""],
    ["CDN-T-002", "2026-03-12", "10_to_14", "male", "mixed", "unexpected", "yes"],
    ["CDN-T-003", "2026-03-23", "15_to_17", "male", "white", "unexpected", "no"],
]
TRAINING_PARTNERS = {"NCT", "NPOL", "PROB"}
HIDDEN_COUNT = 3
HIDDEN_JAR_TEXTS = ("50.0%", "50%", "50.0 %")  # 1 of 2 unexpected deaths


def _quick_reference(folder: Path) -> Path:
    """The shipped reference data with training expected from three partners instead of seven
    (the planted rejection, the planted missing return and one more), so the test is quick."""
    shutil.copytree(SEEDS, folder)
    schedule = folder / "return_schedule.csv"
    with schedule.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    kept = [r for r in rows if r["return_type"] != "training" or r["partner_code"] in TRAINING_PARTNERS]
    with schedule.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(kept)
    return folder


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """Thirteen months of demo returns, the planted child death return, one full cycle."""
    root = tmp_path_factory.mktemp("scorecard-demo")
    reference = _quick_reference(root / "reference")
    settings = Settings.from_env({"PKPI_DATA_DIR": str(root / "data"), "PKPI_REFERENCE_DIR": str(reference)})
    summary = write_sample_returns(settings, first_month=FIRST_MONTH, last_month=PERIOD)
    [written] = [r for r in summary.returns if r.return_type == "child_deaths" and r.period == PERIOD]
    stat = written.path.stat()
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(PLANTED_DEATHS)
    written.path.write_text(buffer.getvalue(), encoding="utf-8")
    os.utime(written.path, (stat.st_atime, stat.st_mtime))  # uploaded when the demo said
    cycle = run_cycle(settings, PERIOD, send=True)  # no SMTP host: the email goes to the outbox
    return settings, summary, cycle


def _archived_rows(settings: Settings, return_type: str, month: str) -> list[dict]:
    """Every data row of the accepted files for ``month``, read straight from the archive."""
    rows: list[dict] = []
    for path in sorted((settings.archive_dir / return_type).glob(f"*/{month}/*/*.csv")):
        with path.open(newline="", encoding="utf-8-sig") as handle:
            rows += list(csv.DictReader(handle))
    return rows


def _mart(settings: Settings, sql: str, params: list | None = None) -> list[tuple]:
    with connect(settings, read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def _csv_rows(path: Path) -> dict[str, dict]:
    with path.open(newline="", encoding="utf-8") as handle:
        return {r["kpi_code"]: r for r in csv.DictReader(handle)}


def _summary_rows(xlsx) -> tuple[list, dict]:
    sheet = openpyxl.load_workbook(xlsx)["Summary"]
    header = next(r for r in sheet.iter_rows(values_only=True) if r[0] == "Theme")
    rows = {r[1]: r for r in sheet.iter_rows(values_only=True) if r[1] and r[1] != "KPI code"}
    return list(header), rows


# --- the figures -----------------------------------------------------------------------------


def test_mart_scorecard_has_every_column_and_kpi(demo):
    settings, _, _ = demo
    with connect(settings, read_only=True) as con:
        columns = [d[0] for d in con.execute("SELECT * FROM mart.scorecard LIMIT 0").description]
        codes = {r[0] for r in con.execute("SELECT kpi_code FROM mart.scorecard WHERE period = ?", [PERIOD]).fetchall()}
        on_scorecard = {r[0] for r in con.execute("SELECT kpi_code FROM mart.dim_kpi WHERE on_scorecard").fetchall()}
    assert columns[: len(SCORECARD_COLUMNS)] == SCORECARD_COLUMNS
    assert codes == on_scorecard and SCORECARD_KPIS <= codes


def test_contacts_match_a_hand_count_of_the_returns(demo):
    settings, _, cycle = demo
    contacts = _archived_rows(settings, "contacts", PERIOD)
    referrals = sum(r["outcome"] == "referral" for r in contacts)
    year = sum(len(_archived_rows(settings, "contacts", m)) for m in THIS_YEAR)
    previous = len(_archived_rows(settings, "contacts", "2026-02"))
    last_year = len(_archived_rows(settings, "contacts", "2025-03"))
    assert len(contacts) > 1000  # the demo's front door, not an empty month

    [(value, fytd, prev, same)] = _mart(settings, """
        SELECT value, fytd_value, previous_month_value, same_month_last_year_value
        FROM mart.scorecard WHERE period = ? AND kpi_code = 'CON_CONTACTS'""", [PERIOD])
    assert (value, fytd, prev, same) == (len(contacts), year, previous, last_year)
    [(numerator,)] = _mart(settings, """
        SELECT numerator FROM mart.kpi_values WHERE kpi_code = 'CON_CONTACTS' AND period = ?
          AND partner_code = 'ALL' AND dimension = 'total'""", [PERIOD])
    assert numerator == len(contacts)

    rows = _csv_rows(cycle.scorecard.csv)
    assert rows["CON_CONTACTS"]["value"] == str(len(contacts))
    assert rows["CON_CONTACTS"]["fytd_value"] == str(year)
    assert float(rows["CON_CONVERSION_PCT"]["value"]) == pytest.approx(100 * referrals / len(contacts))
    header, summary = _summary_rows(cycle.scorecard.xlsx)
    assert summary["CON_CONTACTS"][header.index(f"This month ({PERIOD})")] == len(contacts)
    html = cycle.scorecard.html.read_text(encoding="utf-8")
    assert f"{len(contacts):,}" in html and f"{100 * referrals / len(contacts):.1f}%" in html


def test_training_attendances_match_the_accepted_returns_only(demo):
    settings, summary, cycle = demo
    training = _archived_rows(settings, "training", PERIOD)
    attended = sum(r["event_type"] == "attended" for r in training)
    # The planted rejection is quarantined, never archived: its rows are not counted.
    assert not list((settings.archive_dir / "training" / summary.planted_rejection.partner_code).glob(f"{PERIOD}/*/*"))
    assert _csv_rows(cycle.scorecard.csv)["TRN_ATTENDANCES"]["value"] == str(attended)


def test_returns_on_time_match_the_schedule_and_the_upload_times(demo):
    settings, summary, cycle = demo
    written = [r for r in summary.returns if r.period == PERIOD]
    rejected = summary.planted_rejection
    on_time = [
        r for r in written
        if r.received_at.date() <= r.due_date
        and (r.return_type, r.partner_code) != (rejected.return_type, rejected.partner_code)
    ]
    expected = len(written) + 1  # the missing return was never written
    [(value, numerator, denominator)] = _mart(settings, """
        SELECT value, numerator, denominator FROM mart.scorecard
        WHERE period = ? AND kpi_code = 'RET_ON_TIME_PCT'""", [PERIOD])
    assert (numerator, denominator) == (len(on_time), expected)
    row = _csv_rows(cycle.scorecard.csv)["RET_ON_TIME_PCT"]
    assert float(row["value"]) == pytest.approx(100 * len(on_time) / expected)
    assert row["rag"] == "red" and row["provisional"] == "true"


def test_small_child_death_counts_are_in_the_mart_but_hidden_on_the_scorecard(demo):
    settings, _, cycle = demo
    assert len(_archived_rows(settings, "child_deaths", PERIOD)) == HIDDEN_COUNT
    [(value, suppressed)] = _mart(settings, """
        SELECT value, suppressed FROM mart.scorecard
        WHERE period = ? AND kpi_code = 'CDN_NOTIFICATIONS'""", [PERIOD])
    assert value == HIDDEN_COUNT  # the mart keeps the figure exactly
    [(numerator, denominator)] = _mart(settings, """
        SELECT numerator, denominator FROM mart.kpi_values WHERE kpi_code = 'CDN_UNEXPECTED_JAR_PCT'
          AND period = ? AND partner_code = 'ALL' AND dimension = 'total'""", [PERIOD])
    assert (numerator, denominator) == (1, 2)
    rows = _csv_rows(cycle.scorecard.csv)
    assert rows["CDN_NOTIFICATIONS"]["value"] == "<5" and rows["CDN_NOTIFICATIONS"]["suppressed"] == "true"
    assert rows["CDN_UNEXPECTED_JAR_PCT"]["value"] == "[c]"
    # A colour or direction beside a hidden figure would hint at it.
    assert rows["CDN_UNEXPECTED_JAR_PCT"]["rag"] == "grey" and rows["CDN_UNEXPECTED_JAR_PCT"]["trend"] == "n/a"
    # March's year to date is the whole year: shown, since the hidden months from April on add
    # up to far more than 4 (earlier in the year it is hidden: next to the month before's, it
    # would give a hidden month away).
    year = sum(len(_archived_rows(settings, "child_deaths", m)) for m in THIS_YEAR)
    assert rows["CDN_NOTIFICATIONS"]["fytd_value"] == str(year)


def test_the_provisional_note_names_the_missing_and_rejected_returns(demo):
    settings, summary, cycle = demo
    missing, rejected = summary.missing_return, summary.planted_rejection
    names = {p.code: p.name for p in load_reference(settings).partners}
    expected = [
        f"Multi-agency training return from {names[rejected.partner_code]}: rejected",
        f"Multi-agency training return from {names[missing.partner_code]}: missing",
    ]
    html = cycle.scorecard.html.read_text(encoding="utf-8")
    banner = html[html.index('id="provisional"'):html.index('id="glance"')]
    pdf = "\n".join(p.extract_text() for p in PdfReader(cycle.scorecard.pdf).pages)
    text = cycle.scorecard.email_text.read_text(encoding="utf-8")
    sheet = openpyxl.load_workbook(cycle.scorecard.xlsx)["Summary"]
    cells = " ".join(str(c) for row in sheet.iter_rows(values_only=True) for c in row if c)
    for line in expected:
        assert line in banner and line in text and line in cells
        assert line in re.sub(r"\s+", " ", pdf)
    # The training measures say what they wait for; the front door's do not.
    card = html[html.index('id="kpi-TRN_ATTENDANCES"'):html.index('id="kpi-CDN_NOTIFICATIONS"')]
    assert "Provisional: waiting for the multi-agency training returns from" in card
    assert names[missing.partner_code] in card and names[rejected.partner_code] in card
    contacts_card = html[html.index('id="kpi-CON_CONTACTS"'):html.index('id="kpi-CON_CONVERSION_PCT"')]
    assert "waiting for" not in contacts_card
    assert cycle.delivery.subject.endswith("scorecard: March 2026 (provisional)")


def test_every_output_marks_the_same_measures_provisional_as_the_mart(demo):
    settings, _, cycle = demo
    out = cycle.scorecard
    mart = {code for code, provisional in _mart(settings, """
        SELECT kpi_code, provisional FROM mart.scorecard WHERE period = ?""", [PERIOD]) if provisional}
    # The demo's March training returns: PROB's is missing and NPOL's rejected. Return
    # compliance counts every return; the front door, child deaths and finance wait for none.
    training = {code for (code,) in _mart(settings, """
        SELECT kpi_code FROM mart.dim_kpi WHERE on_scorecard AND source IN ('training', 'returns')""")}
    assert mart == training and "TRN_ATTENDANCES" in mart and "CON_CONTACTS" not in mart

    csv_marked = {code for code, r in _csv_rows(out.csv).items() if r["provisional"] == "true"}
    header, summary = _summary_rows(out.xlsx)
    xlsx_marked = {code for code, r in summary.items() if r[header.index("Provisional")] == "Yes"}
    html = out.html.read_text(encoding="utf-8")
    glance = html[html.index('id="glance"'):html.index('id="summary"')]
    html_marked = {code for code, row in re.findall(r'href="#kpi-([A-Z0-9_]+)"(.*?)</tr>', glance, flags=re.S)
                   if "provisional" in row}
    cards = {code: card for code, card in re.findall(r'id="kpi-([A-Z0-9_]+)"(.*?)</table>', html, flags=re.S)}
    card_marked = {code for code, card in cards.items() if "(provisional)" in card}
    pdf = re.sub(r"\s+", " ", _pdf_text(out.pdf.read_bytes()))
    names = dict(_mart(settings, "SELECT kpi_code, kpi_name FROM mart.scorecard WHERE period = ?", [PERIOD]))
    pdf_marked = {code for code, name in names.items() if re.search(re.escape(name) + r"( \([^)]*annual\))? \(provisional\)", pdf)}
    text = cycle.scorecard.email_text.read_text(encoding="utf-8")
    text_marked = {code for code, name in names.items() if f"\n{name} (provisional)\n" in text}
    assert csv_marked == xlsx_marked == html_marked == card_marked == pdf_marked == text_marked == mart


def test_the_demo_pdf_has_no_near_empty_page(demo):
    _, _, cycle = demo
    reader = PdfReader(cycle.scorecard.pdf)
    uses = [round(page_use(p), 2) for p in reader.pages]
    assert len(uses) >= 2 and all(u > 1 / 3 for u in uses[1:]), uses
    # Every chart is in it, and the JAR percentage, withheld throughout, has its sentence.
    assert sum(len(p.images) for p in reader.pages) == len(cycle.scorecard.charts)
    assert "All figures for this measure over the last 13 months are withheld" in re.sub(
        r"\s+", " ", _pdf_text(cycle.scorecard.pdf.read_bytes()))


# --- nothing hidden leaves the warehouse --------------------------------------------------------


def _visible_text(html: str) -> str:
    html = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", html)
    text = re.sub(r"<[^>]+>", " ", html)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&").replace("&#39;", "'")


def _standalone(token: str, text: str) -> bool:
    """``token`` as a number of its own (not in 13, 2023, 3.5, "note c" or a footnote [c])."""
    text = re.sub(r"\bnote [a-h]\b|\[[a-h]\]", " ", text, flags=re.I)
    return re.search(rf"(?<![\w.,£-]){re.escape(token)}(?![\w.,%])", text) is not None


def _between(text: str, start: str, end: str) -> str:
    i = text.index(start)
    j = text.find(end, i + len(start))
    return text[i: j if j != -1 else None]


def _png_text_chunks(data: bytes) -> list[str]:
    """The text a PNG carries besides its pixels (tEXt, zTXt, iTXt chunks)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    out, at = [], 8
    while at < len(data):
        (length,) = struct.unpack(">I", data[at: at + 4])
        kind, body = data[at + 4: at + 8], data[at + 8: at + 8 + length]
        if kind == b"tEXt":
            out.append(body.decode("latin-1"))
        elif kind == b"zTXt":
            key, _, rest = body.partition(b"\0")
            out.append(key.decode("latin-1") + zlib.decompress(rest[1:]).decode("latin-1"))
        elif kind == b"iTXt":
            out.append(body.decode("utf-8", errors="replace"))
        at += 12 + length
    return out


def _workbook_cells(data: bytes) -> list:
    wb = openpyxl.load_workbook(io.BytesIO(data))
    return [c.value for ws in wb.worksheets for row in ws.iter_rows() for c in row if c.value is not None]


def _pdf_text(data: bytes) -> str:
    return "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(data)).pages)


def _assert_no_hidden_percentage(text: str, where: str) -> None:
    for hidden in HIDDEN_JAR_TEXTS:
        assert hidden not in text, f"the hidden JAR percentage {hidden} appears in {where}"


def _assert_workbook_clean(cells: list, where: str) -> None:
    for value in cells:
        if isinstance(value, (int, float)):
            # The JAR percentage as a fraction (0.5) or as a percentage (50).
            assert value not in (0.5, 50), f"{where} holds the hidden JAR percentage: {value!r}"
        else:
            _assert_no_hidden_percentage(str(value), where)


def test_no_hidden_figure_appears_in_any_output(demo):
    settings, _, cycle = demo
    out = cycle.scorecard
    [eml] = settings.outbox_dir.glob(f"*-scorecard-{PERIOD}.eml")
    message = BytesParser(policy=policy.default).parsebytes(eml.read_bytes())

    texts = {
        "scorecard.html": _visible_text(out.html.read_text(encoding="utf-8")),
        "scorecard.pdf": _pdf_text(out.pdf.read_bytes()),
        "scorecard.csv": out.csv.read_text(encoding="utf-8"),
        "the email's raw file": eml.read_text(encoding="utf-8", errors="replace"),
    }
    workbooks = {"scorecard.xlsx": out.xlsx.read_bytes()}
    pngs = {p.name: p.read_bytes() for p in out.charts}
    for part in message.walk():
        if part.is_multipart():
            continue
        name = f"the email's {part.get_content_type()} part {part.get_filename() or ''}".strip()
        content = part.get_content()
        if part.get_content_type() == "text/html":
            texts[name] = _visible_text(content)
        elif part.get_content_type() == "text/plain":
            texts[name] = content
        elif part.get_content_type() == "application/pdf":
            texts[name] = _pdf_text(content)
        elif part.get_content_type().endswith("spreadsheetml.sheet"):
            workbooks[name] = content
        elif part.get_content_type() == "image/png":
            pngs[name] = content
    assert {"text/html", "text/plain", "application/pdf", "image/png"} <= {
        p.get_content_type() for p in message.walk()
    }

    for where, text in texts.items():
        _assert_no_hidden_percentage(text, where)
    for where, data in workbooks.items():
        _assert_workbook_clean(_workbook_cells(data), where)
    for where, data in pngs.items():
        for chunk in _png_text_chunks(data):
            _assert_no_hidden_percentage(chunk, where)
            assert not _standalone(str(HIDDEN_COUNT), chunk), f"{where} carries text {chunk!r}"

    # Wherever March's child death count is given, it reads <5 and never 3.
    email_html = _visible_text(message.get_body(("html",)).get_content())
    email_text = message.get_body(("plain",)).get_content()
    pdf_text = texts["scorecard.pdf"]
    for where, section in {
        "HTML card": _between(texts["scorecard.html"], "Deaths of children notified", "Unexpected deaths"),
        "email HTML card": _between(email_html, "Deaths of children notified", "Unexpected deaths"),
        "email text": _between(email_text, "Child death notifications\n", "Unexpected deaths"),
        "PDF table": _between(pdf_text, "Child death notifications", "Unexpected deaths"),
    }.items():
        assert "<5" in section, where
        assert not _standalone(str(HIDDEN_COUNT), section), f"{where}: {section}"
    for where, data in workbooks.items():
        sheet = openpyxl.load_workbook(io.BytesIO(data))["Child deaths"]
        march = [r for r in sheet.iter_rows(values_only=True) if r[0] == "CDN_NOTIFICATIONS" and r[3] == PERIOD]
        assert [(r[4], r[5]) for r in march] == [(None, "withheld (fewer than 5)")], where
    # The trend chart leaves March out and says so beneath it.
    card = _between(texts["scorecard.html"], "Deaths of children notified", "Unexpected deaths")
    assert re.search(r"Not shown \(note [a-h]\): [^.]*Mar 26", card)


def test_a_higher_threshold_hides_more(demo, tmp_path, monkeypatch):
    settings, _, _ = demo
    (tmp_path / "data").mkdir()
    shutil.copy2(settings.warehouse_path, tmp_path / "data" / settings.warehouse_path.name)
    monkeypatch.setenv("PKPI_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("PKPI_REFERENCE_DIR", str(settings.reference_dir))
    monkeypatch.setenv("PKPI_DISCLOSURE_THRESHOLD", "10")
    strict = Settings.from_env()
    # What `pkpi build` does after dbt at the new threshold: decide once and store (the mart's
    # figures are the same; a dbt run would rebuild them unchanged).
    with connect(strict) as con:
        store_decisions(con, strict.disclosure_threshold)
    output = produce_scorecard(strict, PERIOD)
    rows = _csv_rows(output.csv)
    assert rows["CDN_NOTIFICATIONS"]["value"] == "<10"
    # Not disclosive: shown whatever the threshold.
    assert rows["TRN_ATTENDANCES"]["value"] == _csv_rows(demo[2].scorecard.csv)["TRN_ATTENDANCES"]["value"]
    html = _visible_text(output.html.read_text(encoding="utf-8"))
    assert "Counts from 1 to 9 are shown as <10" in html
    # The year's notifications (the year to date in March): shown at 5 and at 10, hidden at a
    # threshold above them.
    year = sum(len(_archived_rows(settings, "child_deaths", m)) for m in THIS_YEAR)
    assert 10 <= year < 40
    assert rows["CDN_NOTIFICATIONS"]["fytd_value"] == str(year)
    monkeypatch.setenv("PKPI_DISCLOSURE_THRESHOLD", "40")
    strictest = Settings.from_env()
    with connect(strictest) as con:
        store_decisions(con, strictest.disclosure_threshold)
    stricter = produce_scorecard(strictest, PERIOD)
    assert _csv_rows(stricter.csv)["CDN_NOTIFICATIONS"]["fytd_value"] == "<40"
    card = _between(_visible_text(stricter.html.read_text(encoding="utf-8")), "Deaths of children notified", "Target")
    assert re.search(r"Year to date \(2025-26\)\s+<40", card), card
