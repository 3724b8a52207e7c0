"""The Jinja2 templates the HTML and text copies are rendered from (``pkpi/templates/``)."""

from __future__ import annotations

from functools import lru_cache

import jinja2

from .model import RAG, VERDICTS, Scorecard, rag_reason, reading_notes


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """The template environment: autoescaped HTML, and undefined names are errors."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("pkpi", "templates"),
        autoescape=jinja2.select_autoescape(["html", "html.j2"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def common_context(sc: Scorecard) -> dict:
    """What both templates use: the scorecard and the shared wording."""
    return {
        "sc": sc,
        "rag": RAG,
        "verdicts": VERDICTS,
        "rag_reason": rag_reason,
        "reading_notes": reading_notes(sc),
    }
