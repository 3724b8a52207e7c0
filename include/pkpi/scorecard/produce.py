"""Writing one month's scorecard files, and the manifest the email is put together from."""

from __future__ import annotations

import json
from pathlib import Path

from ..files import make_dir, secure_tree, write_atomic
from ..periods import parse_month
from ..settings import Settings
from .assemble import build_scorecard
from .charts import draw_scorecard_charts
from .csv import render_csv
from .html import render_html
from .model import ScorecardOutput
from .pdf import render_pdf
from .text import render_text
from .xlsx import render_xlsx


def export_dir(settings: Settings, period: str) -> Path:
    """Where the scorecard files for a month live."""
    return settings.exports_dir / parse_month(period).label


def produce_scorecard(settings: Settings, period: str) -> ScorecardOutput:
    """Produce every scorecard file for ``period`` (``YYYY-MM``); rerunning overwrites them.

    Raises ScorecardError, saying what to run first, when the mart has nothing for the month.
    """
    scorecard = build_scorecard(settings, period)
    out_dir = make_dir(settings, export_dir(settings, period))
    chart_files = draw_scorecard_charts(scorecard, out_dir / "charts")

    html = write_atomic(out_dir / "scorecard.html", render_html(scorecard, chart_files, mode="file"))
    csv_path = write_atomic(out_dir / "scorecard.csv", render_csv(scorecard))
    xlsx = write_atomic(out_dir / "scorecard.xlsx", render_xlsx(scorecard))
    pdf = write_atomic(out_dir / "scorecard.pdf", render_pdf(scorecard, chart_files))
    email_html = write_atomic(out_dir / "email" / "body.html", render_html(scorecard, chart_files, mode="email"))
    email_text = write_atomic(out_dir / "email" / "body.txt", render_text(scorecard))
    manifest = write_atomic(
        out_dir / "manifest.json",
        json.dumps(
            {
                "period": scorecard.period,
                "period_label": scorecard.period_label,
                "partnership": scorecard.partnership,
                "subject": scorecard.subject,
                "provisional": scorecard.provisional,
                "gaps": [g.describe() for g in scorecard.gaps],
                "disclosure_threshold": scorecard.threshold,
                "charts": [
                    {"file": str(c.path.relative_to(out_dir)), "cid": c.cid, "title": c.title}
                    for c in chart_files
                ],
                "email": {"html": "email/body.html", "text": "email/body.txt"},
                # The exported files, and the names they are attached to the email under.
                "attachments": [
                    {"file": "scorecard.pdf", "filename": scorecard.attachment_name("pdf")},
                    {"file": "scorecard.xlsx", "filename": scorecard.attachment_name("xlsx")},
                ],
            },
            indent=2,
        ),
    )
    secure_tree(settings, out_dir)
    return ScorecardOutput(
        period=scorecard.period,
        directory=out_dir,
        html=html,
        pdf=pdf,
        xlsx=xlsx,
        csv=csv_path,
        manifest=manifest,
        email_html=email_html,
        email_text=email_text,
        charts=tuple(c.path for c in chart_files),
        provisional=scorecard.provisional,
        subject=scorecard.subject,
    )
