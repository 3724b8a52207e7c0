"""Render the disclosure-controlled scorecard as HTML, text, CSV, XLSX and PDF.

Each renderer takes a :class:`~pkpi.scorecard.Scorecard` (already through disclosure control)
and returns the file's content; :func:`pkpi.scorecard.produce_scorecard` writes them. HTML and
text come from the Jinja2 templates in ``templates/``.
"""

from __future__ import annotations

import base64
import csv
import io
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import jinja2
from markupsafe import Markup, escape

from .disclosure import Figure

if TYPE_CHECKING:  # pragma: no cover
    from .charts import ChartFile
    from .scorecard import Scorecard, ScorecardRow


@dataclass(frozen=True)
class RagStyle:
    word: str
    symbol: str
    background: str
    colour: str
    meaning: str


# RAG is always shown by word and symbol as well as colour (colour-blind readers, printouts).
RAG = {
    "green": RagStyle("Green", "✔", "#00703c", "#ffffff", "on or better than target"),
    "amber": RagStyle("Amber", "▲", "#ffdd00", "#0b0c0c", "just short of target"),
    "red": RagStyle("Red", "✖", "#d4351c", "#ffffff", "off target"),
    "grey": RagStyle("Grey", "○", "#b1b4b6", "#0b0c0c", "not rated"),
}
TREND = {"up": "↑ Up", "down": "↓ Down", "flat": "→ No change", "n/a": "– No trend"}
SUPERSCRIPT = str.maketrans("abcdefgh", "ᵃᵇᶜᵈᵉᶠᵍʰ")
# Percentages are stored in the workbook as fractions (23.4% is 0.234), the way Excel keeps
# them, so they calculate correctly; the other units as the number itself.
NUMBER_FORMATS = {
    "count": "#,##0",
    "percent": "0.0%",
    "gbp": '"£"#,##0',
    "rate_per_10k": "#,##0.0",
}


def _rag(key: str) -> RagStyle:
    return RAG.get(key, RAG["grey"])


def _trend(key: str) -> str:
    return TREND.get(key, TREND["n/a"])


def rag_reason(row: "ScorecardRow") -> str:
    """Why a KPI has its RAG rating, in a few words ("off target", "not rated: no target")."""
    if row.rag != "grey":
        return _rag(row.rag).meaning
    if row.value.hidden:
        return "not rated: the figure is not shown"
    if row.value.value is None:
        return "not rated: no figure"
    if row.target.value is None:
        return "not rated: no target"
    return "not rated"


def reading_notes(sc: "Scorecard") -> list[str]:
    """The notes every copy of the scorecard ends with (after the numbered footnotes)."""
    notes = [
        f"Figures are for the whole partnership. Year to date runs from 1 April to the end of {sc.period_label}.",
        "RAG compares the figure with the target for the financial year: ✔ Green on or better "
        "than target, ▲ Amber just short of it (within the agreed tolerance), ✖ Red further off, "
        "○ Grey not rated (no target, or no figure to rate).",
        "Trend compares the figure with the month before; (better) or (worse) is added where a "
        "measure has a direction.",
        "A dash (–) means there is no figure for that period: no return was counted, or there was nothing to divide by.",
    ]
    if any(r.annual for r in sc.rows):
        notes.insert(1, f"Finance is reported by financial year: its figure is for the "
                        f"financial year {sc.financial_year}, compared with the previous financial year.")
    return notes


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("pkpi", "templates"),
        autoescape=jinja2.select_autoescape(["html", "html.j2"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


class _Lookup(dict):
    """A dict that falls back to a default key, so an unexpected mart value still renders."""

    def __init__(self, data: dict, default: str):
        super().__init__(data)
        self.default = default

    def __missing__(self, key):
        return self[self.default]


def _common_context(sc: "Scorecard") -> dict:
    return {
        "sc": sc,
        "rag": _Lookup(RAG, "grey"),
        "trend": _Lookup(TREND, "n/a"),
        "trend_short": _Lookup({"up": "↑ Up", "down": "↓ Down", "flat": "→ Same", "n/a": "–"}, "n/a"),
        "rag_reason": rag_reason,
        "reading_notes": reading_notes(sc),
    }


def render_html(sc: "Scorecard", charts: list["ChartFile"], mode: str = "file") -> str:
    """The scorecard page. ``mode='file'`` embeds charts as data URIs (self-contained);
    ``mode='email'`` refers to them by Content-ID for the email's related parts."""
    if mode not in ("file", "email"):
        raise ValueError("mode must be 'file' or 'email'")

    def src(chart: "ChartFile") -> str:
        if mode == "email":
            return f"cid:{chart.cid}"
        return "data:image/png;base64," + base64.b64encode(chart.path.read_bytes()).decode("ascii")

    def fig(figure: Figure) -> Markup:
        number = sc.note_number(figure)
        text = escape(figure.text)
        if number is None:
            return Markup(text)
        return Markup(f'{text}<sup><a href="#note-{number}" style="color:inherit;">{number}</a></sup>')

    cdn_row = next((r for r in sc.rows if r.kpi_code.startswith("CDN_")), None)
    return _environment().get_template("scorecard.html.j2").render(
        **_common_context(sc),
        mode=mode,
        src=src,
        fig=fig,
        charts={c.kpi_code: c for c in charts if c.kpi_code},
        child_death_chart=next((c for c in charts if c.kpi_code is None), None),
        child_death_theme=cdn_row.theme if cdn_row else None,
    )


def render_text(sc: "Scorecard") -> str:
    """The plain-text alternative of the email."""

    def fig(figure: Figure | None, none_text: str = "–") -> str:
        if figure is None:
            return none_text
        number = sc.note_number(figure)
        return figure.text if number is None else f"{figure.text} [{number}]"

    return _environment().get_template("scorecard.txt.j2").render(**_common_context(sc), fig=fig)


# --- CSV ---------------------------------------------------------------------------------


def _csv_number(figure: Figure) -> str:
    """A figure for the CSV: the number unformatted, `<5`/`[c]` when hidden, blank when none."""
    if figure.hidden:
        return figure.text
    if figure.value is None:
        return ""
    value = round(float(figure.value), 6)
    return str(int(value)) if value.is_integer() else repr(value)


def render_csv(sc: "Scorecard") -> str:
    """``scorecard.csv``: the columns of mart.scorecard, after disclosure control."""
    from .scorecard import SCORECARD_COLUMNS

    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(SCORECARD_COLUMNS)
    for row in sc.rows:
        writer.writerow([
            row.period, row.kpi_code, row.kpi_name, row.theme, row.unit,
            _csv_number(row.value), _csv_number(row.fytd), _csv_number(row.previous_month),
            _csv_number(row.same_month_last_year), _csv_number(row.target),
            row.polarity, row.rag, row.trend,
            "true" if row.provisional else "false", "true" if row.suppressed else "false",
        ])
    return buf.getvalue()


# --- XLSX --------------------------------------------------------------------------------


def _sheet_title(name: str, taken: set[str]) -> str:
    clean = "".join("-" if ch in '[]:*?/\\' else ch for ch in name)[:31] or "Data"
    title, n = clean, 2
    while title.lower() in taken:
        suffix = f" ({n})"
        title, n = clean[: 31 - len(suffix)] + suffix, n + 1
    taken.add(title.lower())
    return title


def _xlsx_number(figure: Figure) -> float:
    value = float(figure.value)
    return value / 100.0 if figure.unit == "percent" else value


def render_xlsx(sc: "Scorecard") -> bytes:
    """``scorecard.xlsx``: a summary sheet and a data sheet per theme.

    Shown figures are stored as numbers with a number format (so they sum and chart in Excel;
    percentages as fractions formatted ``0.0%``); hidden ones as the text ``<5`` or ``[c]``
    with the note number beside them.
    """
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    bold = Font(bold=True)
    wrap = Alignment(wrap_text=True, vertical="top")
    wb = Workbook()
    ws = wb.active
    ws.title = "Summary"
    taken = {"summary"}

    def put(cell, figure: Figure | None):
        if figure is None:
            return
        if figure.hidden:
            cell.value = figure.text
            cell.alignment = Alignment(horizontal="right")
        elif figure.value is not None:
            cell.value = _xlsx_number(figure)
            cell.number_format = NUMBER_FORMATS.get(figure.unit, "#,##0.00")

    def notes_for(*figures: Figure) -> str:
        numbers = sorted({n for f in figures if (n := sc.note_number(f))})
        return ", ".join(f"Note {n}" for n in numbers)

    ws["A1"] = f"Partnership scorecard: {sc.period_label}"
    ws["A1"].font = Font(bold=True, size=14)
    ws["A2"] = sc.partnership
    row_no = 3
    if sc.provisional:
        ws.cell(row_no, 1, "Provisional: not every expected return for the month is in, so figures may change.").font = bold
        row_no += 1
        for gap in sc.gaps:
            ws.cell(row_no, 1, f"{gap.describe()} ({gap.explanation})")
            row_no += 1
    row_no += 1
    headers = [
        "Theme", "KPI code", "KPI", "Unit", f"This month ({sc.period})", f"Year to date ({sc.financial_year})",
        "Previous month", "Same month last year", "Target", "RAG", "Trend", "Provisional",
        "Waiting for", "Notes",
    ]
    header_row = row_no
    for col, text in enumerate(headers, start=1):
        cell = ws.cell(header_row, col, text)
        cell.font = bold
        cell.alignment = wrap
    for row in sc.rows:
        row_no += 1
        ws.cell(row_no, 1, row.theme)
        ws.cell(row_no, 2, row.kpi_code)
        ws.cell(row_no, 3, row.kpi_name + (f" ({sc.financial_year}, annual)" if row.annual else ""))
        ws.cell(row_no, 4, row.unit)
        previous = None if row.annual else row.previous_month
        for col, figure in zip(range(5, 10), (row.value, row.fytd, previous, row.same_month_last_year, row.target)):
            put(ws.cell(row_no, col), figure)
        if row.annual:
            ws.cell(row_no, 7, "n/a").alignment = Alignment(horizontal="right")
        style = _rag(row.rag)
        rag_cell = ws.cell(row_no, 10, f"{style.symbol} {style.word}")
        rag_cell.fill = PatternFill("solid", fgColor=style.background.lstrip("#"))
        rag_cell.font = Font(bold=True, color=style.colour.lstrip("#"))
        ws.cell(row_no, 11, row.trend_text)
        ws.cell(row_no, 12, "Yes" if row.provisional else "No")
        ws.cell(row_no, 13, row.waiting_for or None)
        ws.cell(row_no, 14, notes_for(*row.figures) or None)
    row_no += 2
    ws.cell(row_no, 1, "Notes").font = bold
    for number, text in sc.footnotes():
        row_no += 1
        ws.cell(row_no, 1, f"Note {number}: {text}")
    for line in reading_notes(sc):
        row_no += 1
        ws.cell(row_no, 1, line)
    if any(r.annual for r in sc.rows):
        row_no += 1
        ws.cell(row_no, 1, "For annual measures, Same month last year is the previous financial year.")
    row_no += 1
    ws.cell(row_no, 1, "One sheet per theme holds each measure for the last 13 months (financial "
                       "years for annual measures) and the year to date.")
    ws.freeze_panes = ws.cell(header_row + 1, 4)
    for col, width in enumerate((18, 26, 44, 9, 13, 14, 13, 13, 12, 11, 30, 11, 40, 12), start=1):
        ws.column_dimensions[get_column_letter(col)].width = width

    for theme, rows in sc.themes:
        data = wb.create_sheet(_sheet_title(theme, taken))
        columns = ["KPI code", "KPI", "Unit", "Period", "Value", "Notes"]
        for col, text in enumerate(columns, start=1):
            data.cell(1, col, text).font = bold
        r = 1
        for row in rows:
            for point in row.series:
                r += 1
                data.cell(r, 1, row.kpi_code)
                data.cell(r, 2, row.kpi_name)
                data.cell(r, 3, row.unit)
                data.cell(r, 4, point.period)
                put(data.cell(r, 5), point.figure)
                data.cell(r, 6, notes_for(point.figure) or None)
            if row.annual:
                continue  # the year's own row above is its year to date
            r += 1
            data.cell(r, 1, row.kpi_code)
            data.cell(r, 2, row.kpi_name)
            data.cell(r, 3, row.unit)
            data.cell(r, 4, f"{sc.financial_year} to {sc.period}")
            put(data.cell(r, 5), row.fytd)
            data.cell(r, 6, notes_for(row.fytd) or None)
        data.freeze_panes = "A2"
        for col, width in enumerate((26, 44, 10, 18, 14, 12), start=1):
            data.column_dimensions[get_column_letter(col)].width = width
        data.auto_filter.ref = f"A1:F{max(r, 2)}"

    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


# --- PDF ---------------------------------------------------------------------------------


def _font_dir() -> Path:
    # DejaVu ships with matplotlib: full Unicode (£, –, ✔, ▲, ⚠) without another dependency.
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


def _rgb(colour: str) -> tuple[int, int, int]:
    colour = colour.lstrip("#")
    return tuple(int(colour[i:i + 2], 16) for i in (0, 2, 4))  # type: ignore[return-value]


PDF_TREND = {"up": "↑ Up", "down": "↓ Down", "flat": "→ Same", "n/a": "–"}


def render_pdf(sc: "Scorecard", charts: list["ChartFile"]) -> bytes:
    """``scorecard.pdf``: A4, the same content as the HTML: the table of every KPI with its
    notes on the first page, then the trend charts with what they do not show."""
    from fpdf import FPDF
    from fpdf.fonts import FontFace

    pdf = FPDF(orientation="portrait", unit="mm", format="A4")
    pdf.set_title(sc.subject)
    pdf.set_author(sc.partnership)
    pdf.set_margins(12, 12, 12)
    pdf.set_auto_page_break(auto=True, margin=14)
    fonts = _font_dir()
    pdf.add_font("DejaVu", "", str(fonts / "DejaVuSans.ttf"))
    pdf.add_font("DejaVu", "B", str(fonts / "DejaVuSans-Bold.ttf"))
    pdf.add_page()
    width = pdf.epw

    def fig(figure: Figure | None, none_text: str = "–") -> str:
        if figure is None:
            return none_text
        number = sc.note_number(figure)
        return figure.text if number is None else figure.text + str(number).translate(SUPERSCRIPT)

    def paragraph(text: str, size: float = 9, height: float = 4.6, bold: bool = False) -> None:
        pdf.set_font("DejaVu", "B" if bold else "", size)
        pdf.multi_cell(width, height, text, new_x="LMARGIN", new_y="NEXT", align="L")

    pdf.set_font("DejaVu", "", 10)
    pdf.set_text_color(80, 90, 95)
    pdf.cell(width, 6, sc.partnership, new_x="LMARGIN", new_y="NEXT")
    pdf.set_text_color(11, 12, 12)
    pdf.set_font("DejaVu", "B", 17)
    pdf.cell(width, 10, f"Partnership scorecard: {sc.period_label}", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(1)
    if sc.provisional:
        pdf.set_fill_color(255, 244, 229)
        pdf.set_draw_color(244, 119, 56)
        lines = [f"⚠ Provisional figures. Not every expected return for {sc.period_label} is in, "
                 "so figures may change when these returns arrive:"]
        lines += [f"•  {g.describe()} ({g.explanation})" for g in sc.gaps]
        if sc.gaps:
            lines.append("Measures counted from these returns are marked (provisional).")
        pdf.set_font("DejaVu", "", 9)
        pdf.multi_cell(width, 5, "\n".join(lines), fill=True, new_x="LMARGIN", new_y="NEXT", padding=2, align="L")
        pdf.set_draw_color(0, 0, 0)
        pdf.set_fill_color(255, 255, 255)
        pdf.ln(2)
    counts = sc.rag_counts
    paragraph(
        f"{len(sc.rows)} measures: "
        + ", ".join(f"{_rag(k).symbol} {counts[k]} {_rag(k).word.lower()}" for k in ("green", "amber", "red", "grey"))
        + ".", size=9.5, height=5,
    )
    pdf.ln(1.5)

    headings = ("Measure", sc.period_short, "Year to date", "Previous month", "Same month last year", "Target", "RAG", "Trend")
    col_widths = (54, 18, 19, 19, 20, 19, 17, 20)
    grey = FontFace(emphasis="BOLD", fill_color=(243, 242, 241))
    pdf.set_font("DejaVu", "", 8.5)
    with pdf.table(
        col_widths=col_widths,
        text_align=("LEFT", "RIGHT", "RIGHT", "RIGHT", "RIGHT", "RIGHT", "CENTER", "LEFT"),
        line_height=4.4,
        padding=1.1,
        headings_style=FontFace(emphasis="BOLD", fill_color=(222, 224, 226)),
        repeat_headings=1,
    ) as table:
        table.row(headings)
        for theme, rows in sc.themes:
            table.row().cell(theme, colspan=len(headings), style=grey, align="LEFT")
            for row in rows:
                style = _rag(row.rag)
                cells = table.row()
                name = row.kpi_name
                if row.annual:
                    name += f" ({sc.financial_year}, annual)"
                if row.gaps:
                    name += " (provisional)"
                cells.cell(name)
                cells.cell(fig(row.value))
                cells.cell(fig(row.fytd))
                cells.cell("n/a" if row.annual else fig(row.previous_month))
                cells.cell(fig(row.same_month_last_year))
                cells.cell(row.target.text if row.target.value is not None else "none")
                cells.cell(
                    f"{style.symbol} {style.word}",
                    style=FontFace(emphasis="BOLD", color=_rgb(style.colour), fill_color=_rgb(style.background)),
                )
                verdict = row.trend_text.rsplit(" (", 1)[1].rstrip(")") if row.trend_text.endswith(")") else ""
                cells.cell(PDF_TREND.get(row.trend, "–") + (f" ({verdict})" if verdict else ""))
    pdf.ln(2)

    def notes() -> None:
        pdf.set_font("DejaVu", "B", 10.5)
        pdf.cell(width, 6, "Notes", new_x="LMARGIN", new_y="NEXT")
        for number, text in sc.footnotes():
            paragraph(f"{number}. {text}", size=8.5, height=4.3)
        for line in reading_notes(sc):
            paragraph(line, size=8.5, height=4.3)
        if any(r.annual for r in sc.rows):
            paragraph("For annual measures, Same month last year is the previous financial year.", size=8.5, height=4.3)

    notes()

    if charts:
        pdf.add_page()
        pdf.set_font("DejaVu", "B", 12)
        pdf.cell(width, 8, "Trends", new_x="LMARGIN", new_y="NEXT")
        gap = 5
        chart_w = (width - gap) / 2
        from .charts import SIZE_INCHES

        chart_h = chart_w * SIZE_INCHES[1] / SIZE_INCHES[0]  # every chart has the same shape
        caption_h = 3.4
        pdf.set_font("DejaVu", "", 7)

        def caption_lines(chart: "ChartFile") -> int:
            # Wrapped lines, measured with the caption font (a little slack for word breaks).
            return sum(math.ceil((pdf.get_string_width(line) + 1) / (chart_w * 0.95)) for line in chart.caption_lines)

        for i in range(0, len(charts), 2):
            pair = charts[i:i + 2]
            block = chart_h + 1 + max(caption_lines(c) for c in pair) * caption_h + 4
            if pdf.get_y() + block > pdf.h - pdf.b_margin:
                pdf.add_page()
            y = pdf.get_y()
            bottom = y
            for j, chart in enumerate(pair):
                x = pdf.l_margin + j * (chart_w + gap)
                pdf.image(str(chart.path), x=x, y=y, w=chart_w, h=chart_h, alt_text=chart.alt)
                pdf.set_xy(x, y + chart_h + 0.5)
                pdf.set_font("DejaVu", "", 7)
                pdf.set_text_color(80, 90, 95)
                for line in chart.caption_lines:
                    pdf.set_x(x)
                    pdf.multi_cell(chart_w, caption_h, line, new_x="LEFT", new_y="NEXT", align="L")
                pdf.set_text_color(11, 12, 12)
                bottom = max(bottom, pdf.get_y())
            pdf.set_xy(pdf.l_margin, bottom + 4)
    return bytes(pdf.output())
