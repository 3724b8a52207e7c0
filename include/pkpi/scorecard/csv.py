"""``scorecard.csv``: the columns of mart.scorecard (docs/scorecard.md), after disclosure control."""

from __future__ import annotations

import csv
import io

from ..disclosure import Figure
from .model import SCORECARD_COLUMNS, Scorecard


def _csv_number(figure: Figure) -> str:
    """A figure for the CSV: the number unformatted, `<5`/`[c]` when hidden, blank when none."""
    if figure.hidden:
        return figure.text
    if figure.value is None:
        return ""
    value = round(float(figure.value), 6)
    return str(int(value)) if value.is_integer() else repr(value)


def render_csv(sc: Scorecard) -> str:
    """``scorecard.csv``: one row per KPI, in :data:`~pkpi.scorecard.model.SCORECARD_COLUMNS`."""
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
