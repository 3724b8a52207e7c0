"""The email's plain-text body (template ``scorecard.txt.j2``)."""

from __future__ import annotations

from ..disclosure import Figure
from .model import Scorecard
from .templating import common_context, environment


def render_text(sc: Scorecard) -> str:
    """The plain-text alternative of the email."""

    def fig(figure: Figure | None, none_text: str = "–") -> str:
        return sc.figure_text(figure, "brackets", none_text)

    return environment().get_template("scorecard.txt.j2").render(**common_context(sc), fig=fig)
