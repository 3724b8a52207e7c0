"""``scorecard.xlsx``: a summary sheet and a data sheet per theme, set up to sort and to print."""

from __future__ import annotations

import io
import math

from ..disclosure import Figure, Reason
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
LINE_HEIGHT = 15  # points per line of 11-point text, for the rows whose text wraps

# The summary table: (heading, width in characters). The figure columns hold numbers only;
# "Status" says which of them are withheld, so the columns sort and chart.
SUMMARY_COLUMNS = (
    ("Theme", 18), ("KPI code", 26), ("KPI", 40), ("Unit", 9), ("This month", 12),
    ("Year to date", 12), ("Previous month", 12), ("Same month last year", 12), ("Target", 11),
    ("Status", 30), ("RAG", 11), ("Trend", 30), ("Provisional", 11), ("Waiting for", 40),
    ("Notes", 12),
)
FIGURE_LABELS = ("This month", "Year to date", "Previous month", "Same month last year", "Target")
THEME_COLUMNS = (("KPI code", 26), ("KPI", 40), ("Unit", 10), ("Period", 18), ("Value", 14),
                 ("Status", 26), ("Notes", 12))


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


def withheld_status(figure: Figure, threshold: int) -> str:
    """Why a figure's cell is empty: "withheld (fewer than 5)" for a small count, "withheld
    [c]" for any other hidden figure; "" for a figure that is shown or has no value."""
    if not figure.hidden:
        return ""
    if figure.reason is Reason.SMALL_COUNT:
        return f"withheld (fewer than {threshold})"
    return f"withheld {figure.text}"


def _lines(text: str, width: int) -> int:
    """How many lines ``text`` wraps to in a column ``width`` characters wide (about)."""
    return max(1, math.ceil(len(text) / max(width - 1, 1)))


def _print_setup(ws, title_row: int) -> None:
    """Landscape A4, as wide as one page and as long as it needs, with the table's header
    repeated on every page."""
    from openpyxl.worksheet.properties import PageSetupProperties

    ws.page_setup.orientation = "landscape"
    ws.page_setup.paperSize = ws.PAPERSIZE_A4
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0  # as many pages down as the rows need
    ws.sheet_properties.pageSetUpPr = PageSetupProperties(fitToPage=True)
    ws.print_title_rows = f"{title_row}:{title_row}"


def render_xlsx(sc: Scorecard) -> bytes:
    """``scorecard.xlsx``: a summary sheet and a data sheet per theme.

    Shown figures are stored as numbers with a number format (so they sort, sum and chart in
    Excel; percentages as fractions formatted ``0.0%``); a hidden figure's cell is empty, and
    the row's Status column says it is withheld and why, with the note beside it. Every sheet
    prints landscape, one page wide, with its table's header on every page; its panes are
    frozen under the header and the table has filters.
    """
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    bold = Font(bold=True)
    wrap = Alignment(wrap_text=True, vertical="top")
    top = Alignment(vertical="top")
    wb = Workbook()
    ws = wb.active
    ws.title = "Summary"
    taken = {"summary"}

    def put(cell, figure: Figure | None):
        cell.alignment = top
        if figure is not None and not figure.hidden and figure.value is not None:
            cell.value = _xlsx_number(figure)
            cell.number_format = NUMBER_FORMATS.get(figure.unit, "#,##0.00")

    def notes_for(*figures: Figure) -> str:
        return notes_label([sc.note_number(f) for f in figures])

    def header(sheet, row: int, columns) -> None:
        for col, (text, width) in enumerate(columns, start=1):
            cell = sheet.cell(row, col, text)
            cell.font = bold
            cell.alignment = wrap
            sheet.column_dimensions[get_column_letter(col)].width = width
        # Tall enough for the longest wrapped heading, so it never runs into the first row.
        sheet.row_dimensions[row].height = LINE_HEIGHT * max(_lines(t, w) for t, w in columns) + 3

    def fit(sheet, row: int, columns) -> None:
        """Wrap the row's text cells and make the row tall enough for them."""
        lines = 1
        for col, (_, width) in enumerate(columns, start=1):
            cell = sheet.cell(row, col)
            if isinstance(cell.value, str):
                cell.alignment = wrap
                lines = max(lines, _lines(cell.value, width))
        sheet.row_dimensions[row].height = LINE_HEIGHT * lines + 3

    ws["A1"] = f"Partnership scorecard: {sc.period_label}"
    ws["A1"].font = Font(bold=True, size=14)
    ws.row_dimensions[1].height = 22  # the 14-point title clear of the row below
    ws["A2"] = sc.partnership
    row_no = 3
    if sc.provisional:
        ws.cell(row_no, 1, "Provisional: not every expected return for the month is in, so figures may change.").font = bold
        row_no += 1
        for gap in sc.gaps:
            ws.cell(row_no, 1, f"{gap.describe()} ({gap.explanation})")
            row_no += 1
    row_no += 1
    columns = list(SUMMARY_COLUMNS)
    columns[4] = (f"This month ({sc.period})", 12)
    columns[5] = (f"Year to date ({sc.financial_year})", 12)
    header_row = row_no
    header(ws, header_row, columns)
    for row in sc.rows:
        row_no += 1
        ws.cell(row_no, 1, row.theme)
        ws.cell(row_no, 2, row.kpi_code)
        ws.cell(row_no, 3, row.kpi_name + (f" ({sc.financial_year}, annual)" if row.annual else ""))
        ws.cell(row_no, 4, row.unit)
        previous = None if row.annual else row.previous_month  # an annual KPI has no month before
        figures = (row.value, row.fytd, previous, row.same_month_last_year, row.target)
        for col, figure in zip(range(5, 10), figures):
            put(ws.cell(row_no, col), figure)
        status = [f"{label}: {withheld_status(f, sc.threshold)}"
                  for label, f in zip(FIGURE_LABELS, figures) if f is not None and f.hidden]
        ws.cell(row_no, 10, "; ".join(status) or None)
        style = RAG[row.rag]
        rag_cell = ws.cell(row_no, 11, f"{style.symbol} {style.word}")
        rag_cell.fill = PatternFill("solid", fgColor=style.background.lstrip("#"))
        rag_cell.font = Font(bold=True, color=style.colour.lstrip("#"))
        ws.cell(row_no, 12, row.trend_text)
        ws.cell(row_no, 13, "Yes" if row.provisional else "No")
        ws.cell(row_no, 14, row.waiting_for or None)
        ws.cell(row_no, 15, notes_for(*row.figures) or None)
        fit(ws, row_no, columns)
    last_row = row_no
    ws.auto_filter.ref = f"A{header_row}:{get_column_letter(len(columns))}{last_row}"
    row_no += 2
    ws.cell(row_no, 1, "Notes").font = bold
    notes = [f"Note {number}: {text}" for number, text in sc.footnotes()] + reading_notes(sc)
    if any(r.annual for r in sc.rows):
        notes.append("For annual measures, Same month last year is the previous financial year; "
                     "there is no previous month.")
    notes.append("A figure that is withheld leaves its cell empty; the Status column says which "
                 "figures are withheld and why, so the figure columns hold numbers only and sort.")
    notes.append("One sheet per theme holds each measure for the last 13 months (financial "
                 "years for annual measures) and the year to date.")
    for line in notes:
        row_no += 1
        ws.cell(row_no, 1, line)  # runs across the empty cells to its right, as text does
    ws.freeze_panes = ws.cell(header_row + 1, 4)
    _print_setup(ws, header_row)

    for theme, rows in sc.themes:
        data = wb.create_sheet(_sheet_title(theme, taken))
        header(data, 1, THEME_COLUMNS)
        r = 1

        def line(row, period: str, figure: Figure) -> None:
            nonlocal r
            r += 1
            data.cell(r, 1, row.kpi_code)
            data.cell(r, 2, row.kpi_name)
            data.cell(r, 3, row.unit)
            data.cell(r, 4, period)
            put(data.cell(r, 5), figure)
            data.cell(r, 6, withheld_status(figure, sc.threshold) or None)
            data.cell(r, 7, notes_for(figure) or None)

        for row in rows:
            for point in row.series:
                line(row, point.period, point.figure)
            if not row.annual:  # an annual KPI's own year above is its year to date
                line(row, f"{sc.financial_year} to {sc.period}", row.fytd)
        data.freeze_panes = "A2"
        data.auto_filter.ref = f"A1:{get_column_letter(len(THEME_COLUMNS))}{max(r, 2)}"
        _print_setup(data, 1)

    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
