"""``scorecard.xlsx``: a summary sheet and a data sheet per theme."""

from __future__ import annotations

import io

from ..disclosure import Figure
from .marks import notes_label
from .model import RAG, Scorecard, reading_notes

# Percentages are stored in the workbook as fractions (23.4% is 0.234), the way Excel keeps
# them, so they calculate correctly; the other units as the number itself.
NUMBER_FORMATS = {
    "count": "#,##0",
    "percent": "0.0%",
    "gbp": '"£"#,##0',
    "rate_per_10k": "#,##0.0",
}


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


def render_xlsx(sc: Scorecard) -> bytes:
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
        return notes_label([sc.note_number(f) for f in figures])

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
        style = RAG[row.rag]
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
