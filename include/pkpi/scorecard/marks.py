"""Footnote marks: which letter a hidden figure carries, and how each format writes it.

Every hidden figure points to the footnote that says why it is hidden. The marks are letters,
not digits: a hidden count of 3 marked with note 3 would read "<5 3" as text. Each output
writes the mark its own way (``[a]`` in plain text, ``ᵃ`` in the PDF, a linked superscript in
HTML), and all of them take it from :func:`with_mark`, so the mark a reader sees beside a
figure is the mark of its footnote in every copy.
"""

from __future__ import annotations

from typing import Sequence

from markupsafe import Markup, escape

from ..disclosure import Figure, Reason

NOTE_MARKS = "abcdefgh"  # one per disclosure reason in use
SUPERSCRIPT = str.maketrans(NOTE_MARKS, "ᵃᵇᶜᵈᵉᶠᵍʰ")
STYLES = ("brackets", "superscript", "html")


def mark_of(reasons: Sequence[Reason], figure: Figure) -> str | None:
    """The footnote mark of a hidden figure ("a", "b", ...) given the reasons in use, else None."""
    if not figure.hidden:
        return None
    return NOTE_MARKS[list(reasons).index(figure.reason)]


def with_mark(figure: Figure, mark: str | None, style: str) -> str:
    """The figure's text followed by its mark in ``style``.

    ``brackets``: ``<5 [a]`` (plain text); ``superscript``: ``<5ᵃ`` (the PDF);
    ``html``: escaped text with a superscript link to ``#note-a`` (returns Markup).
    """
    if style not in STYLES:
        raise ValueError(f"style must be one of {', '.join(STYLES)}")
    if style == "html":
        text = escape(figure.text)
        if mark is None:
            return Markup(text)
        return Markup(f'{text}<sup><a href="#note-{mark}" style="color:inherit;">{mark}</a></sup>')
    if mark is None:
        return figure.text
    if style == "superscript":
        return figure.text + mark.translate(SUPERSCRIPT)
    return f"{figure.text} [{mark}]"


def notes_label(marks: Sequence[str | None]) -> str:
    """The marks of several figures as a spreadsheet cell: "Note a, Note b" ("" for none)."""
    return ", ".join(f"Note {m}" for m in sorted({m for m in marks if m}))
