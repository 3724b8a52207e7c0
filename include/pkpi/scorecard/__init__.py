"""The monthly scorecard: read the mart, apply disclosure control, write the files.

:func:`produce_scorecard` writes, into ``$PKPI_DATA_DIR/exports/<YYYY-MM>/``:

- ``scorecard.html`` (self-contained), ``scorecard.pdf``, ``scorecard.xlsx``, ``scorecard.csv``;
- ``charts/*.png``: a 13-month trend per KPI and child death notifications over five years;
- ``email/body.html`` and ``email/body.txt`` plus ``manifest.json``: the email version, which
  :mod:`pkpi.delivery` sends without going back to the warehouse.

Rerunning overwrites the same files. The package reads top to bottom:

==================  ===========================================================================
``marks``           footnote marks: which letter a hidden figure carries, how each format writes it
``model``           the dataclasses every output is rendered from, the scorecard's columns, RAG
                    and trend vocabulary, period labels
``mart``            reading the mart for one month (the only module that queries the warehouse)
``assemble``        building the disclosure-controlled :class:`Scorecard` from it
``charts``          the PNG charts
``templating``      the Jinja2 templates (in ``pkpi/templates/``) the next two are rendered from
``html``, ``text``  the HTML page and email body; the plain-text email body
``csv``, ``xlsx``,  one module per file format
``pdf``
``produce``         writing every file of a month (:func:`pkpi.files.write_atomic`) and the manifest
==================  ===========================================================================

Imports only go down this list (a format imports the model, never the other way), so there is
no import circle. A new output format is one module here and one line in ``produce``.
Renderers only ever see :class:`~pkpi.disclosure.Figure` objects, so a hidden number cannot
reach any of these files.
"""

from __future__ import annotations

from .assemble import build_scorecard
from .model import (
    SCORECARD_COLUMNS,
    ChildDeathYear,
    Comparison,
    ReturnGap,
    Scorecard,
    ScorecardError,
    ScorecardOutput,
    ScorecardRow,
    SeriesPoint,
)
from .produce import export_dir, listed_files, produce_scorecard

__all__ = [
    "SCORECARD_COLUMNS",
    "ChildDeathYear",
    "Comparison",
    "ReturnGap",
    "Scorecard",
    "ScorecardError",
    "ScorecardOutput",
    "ScorecardRow",
    "SeriesPoint",
    "build_scorecard",
    "export_dir",
    "listed_files",
    "produce_scorecard",
]
