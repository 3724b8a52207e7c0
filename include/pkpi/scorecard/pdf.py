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

    if charts:
        pdf.add_page()
        pdf.set_font("DejaVu", "B", 12)
        pdf.cell(width, 8, "Trends", new_x="LMARGIN", new_y="NEXT")
        gap = 5
        chart_w = (width - gap) / 2
        chart_h = chart_w * SIZE_INCHES[1] / SIZE_INCHES[0]  # every chart has the same shape
        caption_h = 3.4
        pdf.set_font("DejaVu", "", 7)

        def caption_lines(chart: ChartFile) -> int:
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
