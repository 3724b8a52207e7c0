"""``scorecard.pdf``: A4, the same content as the HTML copy (fpdf2, DejaVu fonts)."""

from __future__ import annotations

import math
from pathlib import Path

from ..disclosure import Figure
from .charts import SIZE_INCHES, ChartFile
from .model import RAG, Scorecard, reading_notes


def _font_dir() -> Path:
    # DejaVu ships with matplotlib: full Unicode (£, –, ✔, ▲, ⚠) without another dependency.
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


def _rgb(colour: str) -> tuple[int, int, int]:
    colour = colour.lstrip("#")
    return tuple(int(colour[i:i + 2], 16) for i in (0, 2, 4))  # type: ignore[return-value]


def render_pdf(sc: Scorecard, charts: list[ChartFile]) -> bytes:
    """``scorecard.pdf``: A4, the same content as the HTML: the table of every KPI with its
    notes, then the trend charts with what they do not show, flowed two to a row."""
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
        return sc.figure_text(figure, "superscript", none_text)

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
        + ", ".join(f"{RAG[k].symbol} {counts[k]} {RAG[k].word.lower()}" for k in ("green", "amber", "red", "grey"))
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
                style = RAG[row.rag]
                cells = table.row()
                name = row.kpi_name
                if row.annual:
                    name += f" ({sc.financial_year}, annual)"
                if row.provisional:
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
                cells.cell(row.trend_short)
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

    _trends(pdf, sc, charts)
    return bytes(pdf.output())


# The trends grid: two cells to a row, each a chart with its caption beneath, or for a measure
# whose figures are all withheld, its name and the sentence saying so.
GAP_MM = 5
CAPTION_PT, CAPTION_LINE_MM = 7, 3.4
WITHHELD_PT, WITHHELD_LINE_MM = 8.5, 4.2
ROW_GAP_MM = 4
HEADING_MM = 8


def _trends(pdf, sc: Scorecard, charts: list[ChartFile]) -> None:
    """The trend charts after the notes, starting on the same page when a row fits there.

    Rows are never split (a chart stays with its caption), and the rows are spread evenly over
    the pages they need, so the last page is never left with a single row under a full one.
    """
    by_code = {c.kpi_code: c for c in charts}
    cells: list[ChartFile | tuple[str, str]] = []
    for row in sc.rows:
        if row.kpi_code in by_code:
            cells.append(by_code[row.kpi_code])
        elif sc.withheld_text(row):
            cells.append((row.kpi_name, sc.withheld_text(row)))
    cells += [c for c in charts if c.kpi_code is None]  # child deaths over five years
    if not cells:
        return
    width = pdf.epw
    chart_w = (width - GAP_MM) / 2
    chart_h = chart_w * SIZE_INCHES[1] / SIZE_INCHES[0]  # every chart has the same shape

    def lines(text: str, size: float) -> int:
        # Wrapped lines, measured in the font they are drawn in (a little slack for word breaks).
        pdf.set_font("DejaVu", "", size)
        return math.ceil((pdf.get_string_width(text) + 1) / (chart_w * 0.95))

    def height(cell) -> float:
        if isinstance(cell, ChartFile):
            return chart_h + 1 + sum(lines(t, CAPTION_PT) for t in cell.caption_lines) * CAPTION_LINE_MM
        return lines(cell[0], 9) * 5 + lines(cell[1], WITHHELD_PT) * WITHHELD_LINE_MM

    rows = [cells[i:i + 2] for i in range(0, len(cells), 2)]
    heights = [max(height(c) for c in pair) + ROW_GAP_MM for pair in rows]
    bottom = pdf.h - pdf.b_margin
    page_room = bottom - pdf.t_margin

    pdf.ln(2)
    if pdf.get_y() + HEADING_MM + heights[0] > bottom:
        pdf.add_page()
    first_room = bottom - pdf.get_y() - HEADING_MM
    pages = _pages(heights, first_room, page_room)
    pdf.set_font("DejaVu", "B", 12)
    pdf.cell(width, HEADING_MM, "Trends", new_x="LMARGIN", new_y="NEXT")
    for page_no, page_rows in enumerate(pages):
        if page_no:
            pdf.add_page()
        for index in page_rows:
            _draw_row(pdf, rows[index], chart_w, chart_h)


def _pages(heights: list[float], first_room: float, page_room: float) -> list[list[int]]:
    """Row numbers page by page: as many as fit on the page the trends start on, then the rest
    spread evenly over as few whole pages as hold them (rows are never split)."""
    out: list[list[int]] = [[]]
    used, i = 0.0, 0
    while i < len(heights) and used + heights[i] <= first_room:
        out[0].append(i)
        used += heights[i]
        i += 1
    rest = list(range(i, len(heights)))  # the caller starts a page when not even one row fits
    if not rest:
        return out
    # Greedy filling says how many pages the rest needs; then aim for the same rows per page.
    needed, used = 1, 0.0
    for j in rest:
        if used and used + heights[j] > page_room:
            needed, used = needed + 1, 0.0
        used += heights[j]
    # Seven rows over three pages are 3, 2 and 2, never 3, 3 and 1.
    sizes = [len(rest) // needed + (1 if k < len(rest) % needed else 0) for k in range(needed)]
    page: list[int] = []
    used = 0.0
    for j in rest:
        planned = sizes[len(out) - 1] if len(out) - 1 < needed else math.inf  # rows on this page
        if page and (len(page) >= planned or used + heights[j] > page_room):
            out.append(page)
            page, used = [], 0.0
        page.append(j)
        used += heights[j]
    out.append(page)
    return out


def _draw_row(pdf, pair, chart_w: float, chart_h: float) -> None:
    y = pdf.get_y()
    bottom = y
    for j, cell in enumerate(pair):
        x = pdf.l_margin + j * (chart_w + GAP_MM)
        if isinstance(cell, ChartFile):
            pdf.image(str(cell.path), x=x, y=y, w=chart_w, h=chart_h, alt_text=cell.alt)
            pdf.set_xy(x, y + chart_h + 0.5)
            pdf.set_font("DejaVu", "", CAPTION_PT)
            pdf.set_text_color(80, 90, 95)
            for line in cell.caption_lines:
                pdf.set_x(x)
                pdf.multi_cell(chart_w, CAPTION_LINE_MM, line, new_x="LEFT", new_y="NEXT", align="L")
        else:
            name, text = cell
            pdf.set_xy(x, y)
            pdf.set_font("DejaVu", "B", 9)
            pdf.multi_cell(chart_w, 5, name, new_x="LEFT", new_y="NEXT", align="L")
            pdf.set_font("DejaVu", "", WITHHELD_PT)
            pdf.set_text_color(80, 90, 95)
            pdf.multi_cell(chart_w, WITHHELD_LINE_MM, text, new_x="LEFT", new_y="NEXT", align="L")
        pdf.set_text_color(11, 12, 12)
        bottom = max(bottom, pdf.get_y())
    pdf.set_xy(pdf.l_margin, bottom + ROW_GAP_MM)
