"""Render the disclosure-controlled scorecard as HTML, text, CSV, XLSX and PDF.

Each renderer takes a :class:`~pkpi.scorecard.Scorecard` (already through disclosure control)
and returns the file's content; :func:`pkpi.scorecard.produce_scorecard` writes them. HTML and
text come from the Jinja2 templates in ``templates/``.
"""

from __future__ import annotations

import base64
import csv
import io
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import jinja2
from markupsafe import Markup, escape

from .disclosure import Figure

if TYPE_CHECKING:  # pragma: no cover
    from .charts import ChartFile
    from .scorecard import Scorecard


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
    "amber": RagStyle("Amber", "▲", "#ffdd00", "#0b0c0c", "close to target"),
    "red": RagStyle("Red", "✖", "#d4351c", "#ffffff", "off target"),
    "grey": RagStyle("Grey", "○", "#b1b4b6", "#0b0c0c", "no target or no figure"),
}
TREND = {"up": "↑ Up", "down": "↓ Down", "flat": "→ Flat", "n/a": "– n/a"}
SUPERSCRIPT = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")
NUMBER_FORMATS = {
    "count": "#,##0",
    "percent": '0.0"%"',
    "gbp": '"£"#,##0.00',
    "rate_per_10k": "#,##0.0",
}


def _rag(key: str) -> RagStyle:
    return RAG.get(key, RAG["grey"])


def _trend(key: str) -> str:
    return TREND.get(key, TREND["n/a"])


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

    def fig(figure: Figure) -> str:
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


def render_xlsx(sc: "Scorecard") -> bytes:
    """``scorecard.xlsx``: a summary sheet and a data sheet per theme.

    Shown figures are stored as numbers with a number format (so they sum and chart in Excel);
    hidden ones as the text ``<5`` or ``[c]`` with the note number beside them.
    """
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    bold = Font(bold=True)
    wb = Workbook()
    ws = wb.active
    ws.title = "Summary"
    taken = {"summary", "notes"}

    def put(cell, figure: Figure):
        if figure.hidden:
            cell.value = figure.text
            cell.alignment = Alignment(horizontal="right")
        elif figure.value is not None:
            cell.value = float(figure.value)
            cell.number_format = NUMBER_FORMATS.get(figure.unit, "#,##0.00")

    def notes_for(*figures: Figure) -> str:
        numbers = sorted({n for f in figures if (n := sc.note_number(f))})
        return ", ".join(f"Note {n}" for n in numbers)

    ws["A1"] = f"Partnership scorecard: {sc.period_label}"
    ws["A1"].font = Font(bold=True, size=14)
    ws["A2"] = sc.partnership
    row_no = 3
    if sc.provisional:
        ws.cell(row_no, 1, "Provisional: not every expected return for the month is in.").font = bold
        row_no += 1
        for gap in sc.gaps:
            ws.cell(row_no, 1, gap.describe())
            row_no += 1
    row_no += 1
    headers = [
        "Theme", "KPI code", "KPI", "Unit", "This month", f"Year to date ({sc.financial_year})",
        "Previous month", "Same month last year", "Target", "RAG", "Trend", "Provisional", "Notes",
    ]
    header_row = row_no
    for col, text in enumerate(headers, start=1):
        ws.cell(header_row, col, text).font = bold
    for row in sc.rows:
        row_no += 1
        ws.cell(row_no, 1, row.theme)
        ws.cell(row_no, 2, row.kpi_code)
        ws.cell(row_no, 3, row.kpi_name)
        ws.cell(row_no, 4, row.unit)
        for col, figure in zip(range(5, 10), (row.value, row.fytd, row.previous_month, row.same_month_last_year, row.target)):
            put(ws.cell(row_no, col), figure)
        style = _rag(row.rag)
        rag_cell = ws.cell(row_no, 10, f"{style.symbol} {style.word}")
        rag_cell.fill = PatternFill("solid", fgColor=style.background.lstrip("#"))
        rag_cell.font = Font(bold=True, color=style.colour.lstrip("#"))
        ws.cell(row_no, 11, _trend(row.trend))
        ws.cell(row_no, 12, "Yes" if row.provisional else "No")
        ws.cell(row_no, 13, notes_for(*row.figures))
    row_no += 2
    ws.cell(row_no, 1, "Notes").font = bold
    for number, text in sc.footnotes():
        row_no += 1
        ws.cell(row_no, 1, f"Note {number}: {text}")
    ws.freeze_panes = ws.cell(header_row + 1, 1)
    for col, width in enumerate((18, 26, 44, 12, 12, 18, 15, 20, 12, 12, 10, 11, 14), start=1):
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
                data.cell(r, 6, notes_for(point.figure))
            r += 1
            data.cell(r, 1, row.kpi_code)
            data.cell(r, 2, row.kpi_name)
            data.cell(r, 3, row.unit)
            data.cell(r, 4, f"{sc.financial_year} to {sc.period}")
            put(data.cell(r, 5), row.fytd)
            data.cell(r, 6, notes_for(row.fytd))
        data.freeze_panes = "A2"
        for col, width in enumerate((26, 44, 12, 18, 14, 12), start=1):
            data.column_dimensions[get_column_letter(col)].width = width
        data.auto_filter.ref = f"A1:F{max(r, 2)}"

    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


# --- PDF ---------------------------------------------------------------------------------


def _font_dir() -> Path:
    # DejaVu ships with matplotlib: full Unicode (£, –, ✔, ▲) without another dependency.
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


def render_pdf(sc: "Scorecard", charts: list["ChartFile"]) -> bytes:
    """``scorecard.pdf``: A4, the same content as the HTML, with the charts embedded."""
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

    def fig(figure: Figure) -> str:
        number = sc.note_number(figure)
        return figure.text if number is None else figure.text + str(number).translate(SUPERSCRIPT)

    pdf.set_font("DejaVu", "", 10)
    pdf.set_text_color(80, 90, 95)
    pdf.cell(width, 6, sc.partnership, new_x="LMARGIN", new_y="NEXT")
    pdf.set_text_color(11, 12, 12)
    pdf.set_font("DejaVu", "B", 17)
    pdf.cell(width, 10, f"Partnership scorecard: {sc.period_label}", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    if sc.provisional:
        pdf.set_fill_color(255, 244, 229)
        pdf.set_font("DejaVu", "B", 10)
        text = "Provisional figures. Not every expected return for the month is in, so figures marked provisional will change:"
        lines = [text] + [f"•  {g.describe()}" for g in sc.gaps]
        pdf.set_font("DejaVu", "", 9.5)
        pdf.multi_cell(width, 5.5, "\n".join(lines), fill=True, new_x="LMARGIN", new_y="NEXT", padding=2, align="L")
        pdf.ln(3)
    pdf.set_font("DejaVu", "", 10)
    counts = sc.rag_counts
    pdf.multi_cell(
        width, 5.5,
        f"{len(sc.rows)} measures: "
        + ", ".join(f"{_rag(k).symbol} {counts[k]} {_rag(k).word.lower()}" for k in ("green", "amber", "red", "grey"))
        + ". RAG is shown by word and symbol as well as colour.",
        new_x="LMARGIN", new_y="NEXT", align="L",
    )
    pdf.ln(2)

    headings = ("Measure", "This month", "Year to date", "Previous month", "Same month last year", "Target", "RAG", "Trend")
    col_widths = (52, 19, 20, 20, 21, 17, 20, 17)
    for theme, rows in sc.themes:
        if pdf.get_y() + 30 > pdf.h - pdf.b_margin:  # keep a theme's heading with its table
            pdf.add_page()
        pdf.set_font("DejaVu", "B", 12)
        pdf.cell(width, 8, theme, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("DejaVu", "", 8.5)
        with pdf.table(
            col_widths=col_widths,
            text_align=("LEFT", "RIGHT", "RIGHT", "RIGHT", "RIGHT", "RIGHT", "CENTER", "LEFT"),
            line_height=4.6,
            padding=1.2,
            headings_style=FontFace(emphasis="BOLD", fill_color=(235, 235, 235)),
        ) as table:
            table.row(headings)
            for row in rows:
                style = _rag(row.rag)
                cells = table.row()
                cells.cell(row.kpi_name + (" (provisional)" if row.provisional else ""))
                for figure in (row.value, row.fytd, row.previous_month, row.same_month_last_year):
                    cells.cell(fig(figure))
                cells.cell(row.target.text if row.target.value is not None else "none")
                cells.cell(
                    f"{style.symbol} {style.word}",
                    style=FontFace(emphasis="BOLD", color=style.colour, fill_color=style.background),
                )
                cells.cell(_trend(row.trend))
        pdf.ln(3)

    if charts:
        pdf.add_page()
        pdf.set_font("DejaVu", "B", 12)
        pdf.cell(width, 8, "Trends", new_x="LMARGIN", new_y="NEXT")
        chart_w = (width - 4) / 2
        chart_h = chart_w * 3.4 / 6.4
        for i, chart in enumerate(charts):
            if i % 2 == 0 and pdf.get_y() + chart_h > pdf.h - pdf.b_margin:
                pdf.add_page()
            x = pdf.l_margin + (i % 2) * (chart_w + 4)
            y = pdf.get_y()
            pdf.image(str(chart.path), x=x, y=y, w=chart_w, h=chart_h, alt_text=chart.alt)
            if i % 2 == 1 or i == len(charts) - 1:
                pdf.set_y(y + chart_h + 3)

    pdf.ln(2)
    pdf.set_font("DejaVu", "B", 11)
    pdf.cell(width, 7, "Notes", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("DejaVu", "", 8.5)
    for number, text in sc.footnotes():
        pdf.multi_cell(width, 4.6, f"{number}. {text}", new_x="LMARGIN", new_y="NEXT", align="L")
    pdf.multi_cell(
        width, 4.6,
        'Figures are for the whole partnership. "Year to date" runs from 1 April. A dash (–) means there is no figure for that period.',
        new_x="LMARGIN", new_y="NEXT", align="L",
    )
    return bytes(pdf.output())
