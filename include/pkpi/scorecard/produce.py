"""Writing one month's scorecard files, and the manifest the email is put together from.

The files are a function of the scorecard model (what :func:`build_scorecard` reads from the
mart, disclosure control applied) and of the code that draws them. The manifest records a
fingerprint of both and the checksum of every file written: when a month is produced again and
nothing changed (a second ``pkpi run``, the daily cycle, a send after a run), the files on disk
are already those files and are kept, which spares two to three seconds of drawing. A missing,
altered or extra file, or a render cut short before its manifest, has the month drawn again.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from importlib.metadata import version
from pathlib import Path

from ..files import file_sha256, make_dir, secure_tree, source_files, write_atomic
from ..periods import parse_month
from ..settings import Settings
from .assemble import build_scorecard
from .model import Scorecard, ScorecardOutput

# What draws the files besides pkpi's own code (its .py files and templates).
_RENDERERS = ("matplotlib", "pillow", "fpdf2", "openpyxl", "jinja2")
_PACKAGE = Path(__file__).parents[1]
_SCHEME = "1"  # bump when what goes into the fingerprint changes
# The month's files, by what they are (the charts are named by draw_scorecard_charts).
HTML, CSV, XLSX, PDF = "scorecard.html", "scorecard.csv", "scorecard.xlsx", "scorecard.pdf"
EMAIL_HTML, EMAIL_TEXT, MANIFEST = "email/body.html", "email/body.txt", "manifest.json"


def export_dir(settings: Settings, period: str) -> Path:
    """Where the scorecard files for a month live."""
    return settings.exports_dir / parse_month(period).label


def produce_scorecard(settings: Settings, period: str) -> ScorecardOutput:
    """Produce every scorecard file for ``period`` (``YYYY-MM``). Run again, it draws them again
    only if the scorecard, the code or a file changed (see the module docstring).

    Raises ScorecardError, saying what to run first, when the mart has nothing for the month.
    """
    scorecard = build_scorecard(settings, period)
    fingerprint = render_fingerprint(scorecard)
    out_dir = export_dir(settings, period)
    kept = _rendered(out_dir, fingerprint)
    if kept is not None:
        secure_tree(settings, out_dir)  # the deployment's file modes, should they have changed
        return _output(out_dir, kept, up_to_date=True)
    return _output(out_dir, _draw(settings, scorecard, out_dir, fingerprint), up_to_date=False)


def _draw(settings: Settings, scorecard: Scorecard, out_dir: Path, fingerprint: str) -> dict:
    """Write every file of the month, the manifest last; returns the manifest."""
    # Imported here: matplotlib and the PDF and spreadsheet writers are a second of start-up
    # that a month already drawn does not need.
    from .charts import draw_scorecard_charts
    from .csv import render_csv
    from .html import render_html
    from .pdf import render_pdf
    from .text import render_text
    from .xlsx import render_xlsx

    out_dir = make_dir(settings, out_dir)
    chart_files = draw_scorecard_charts(scorecard, out_dir / "charts")

    written = [
        write_atomic(out_dir / HTML, render_html(scorecard, chart_files, mode="file")),
        write_atomic(out_dir / CSV, render_csv(scorecard)),
        write_atomic(out_dir / XLSX, render_xlsx(scorecard)),
        write_atomic(out_dir / PDF, render_pdf(scorecard, chart_files)),
        write_atomic(out_dir / EMAIL_HTML, render_html(scorecard, chart_files, mode="email")),
        write_atomic(out_dir / EMAIL_TEXT, render_text(scorecard)),
        *(c.path for c in chart_files),
    ]
    manifest = {
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
        "email": {"html": EMAIL_HTML, "text": EMAIL_TEXT},
        # The exported files, and the names they are attached to the email under.
        "attachments": [
            {"file": PDF, "filename": scorecard.attachment_name("pdf")},
            {"file": XLSX, "filename": scorecard.attachment_name("xlsx")},
        ],
        # What the files were drawn from, and their checksums: see the module docstring.
        "rendered_from": fingerprint,
        "files": {str(p.relative_to(out_dir)): file_sha256(p) for p in written},
    }
    write_atomic(out_dir / MANIFEST, json.dumps(manifest, indent=2))
    secure_tree(settings, out_dir)
    return manifest


def render_fingerprint(scorecard: Scorecard) -> str:
    """A digest of what a month's files are drawn from: the model (a tree of frozen dataclasses,
    whose repr holds every value it shows) and the code that draws it."""
    return hashlib.sha256(f"{_SCHEME}\n{_code_digest()}\n{scorecard!r}\n".encode()).hexdigest()


@cache
def _code_digest() -> str:
    """The drawing code's digest: once per process, which runs the code it imported then."""
    digest = hashlib.sha256("".join(f"{p}=={version(p)}\n" for p in _RENDERERS).encode())
    for pattern in ("*.py", "*.j2"):
        for path in source_files(_PACKAGE, pattern):
            digest.update(f"{path.relative_to(_PACKAGE).as_posix()} {file_sha256(path)}\n".encode())
    return digest.hexdigest()


def listed_files(manifest: dict) -> list[str]:
    """The files a month's email is put together from, as its manifest names them (KeyError or
    TypeError for a manifest of an older version)."""
    return [manifest["email"]["html"], manifest["email"]["text"],
            *(a["file"] for a in manifest["attachments"]), *(c["file"] for c in manifest["charts"])]


def _rendered(out_dir: Path, fingerprint: str) -> dict | None:
    """The manifest in ``out_dir`` when it was drawn from ``fingerprint`` and every file it lists
    is there with the bytes it was written with; otherwise None (the month is drawn again)."""
    if out_dir.is_symlink():
        return None  # make_dir refuses it, saying why
    try:
        manifest = json.loads((out_dir / MANIFEST).read_text(encoding="utf-8"))
        if manifest.get("rendered_from") != fingerprint:
            return None
        files = manifest["files"]
        # Exactly the files under out_dir, so no name points outside it.
        present = {p.relative_to(out_dir).as_posix() for p in out_dir.rglob("*") if not p.is_dir()}
        if not set(listed_files(manifest)) <= set(files) or present != {*files, MANIFEST}:
            return None  # a file missing, or one left from an older scorecard (drawing clears it)
        if any((out_dir / name).is_symlink() or file_sha256(out_dir / name) != checksum
               for name, checksum in files.items()):
            return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None  # missing, unreadable, or written by an older version
    return manifest


def _output(out_dir: Path, manifest: dict, *, up_to_date: bool) -> ScorecardOutput:
    return ScorecardOutput(
        period=manifest["period"],
        directory=out_dir,
        html=out_dir / HTML,
        pdf=out_dir / PDF,
        xlsx=out_dir / XLSX,
        csv=out_dir / CSV,
        manifest=out_dir / MANIFEST,
        email_html=out_dir / manifest["email"]["html"],
        email_text=out_dir / manifest["email"]["text"],
        charts=tuple(out_dir / c["file"] for c in manifest["charts"]),
        provisional=manifest["provisional"],
        subject=manifest["subject"],
        up_to_date=up_to_date,
    )
