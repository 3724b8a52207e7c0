"""``scorecard.html`` and the email's HTML body (template ``scorecard.html.j2``)."""

from __future__ import annotations

import base64

from ..disclosure import Figure
from .charts import ChartFile
from .model import Scorecard
from .templating import common_context, environment


def render_html(sc: Scorecard, charts: list[ChartFile], mode: str = "file") -> str:
    """The scorecard page. ``mode='file'`` embeds charts as data URIs (self-contained);
    ``mode='email'`` refers to them by Content-ID for the email's related parts."""
    if mode not in ("file", "email"):
        raise ValueError("mode must be 'file' or 'email'")

    def src(chart: ChartFile) -> str:
        if mode == "email":
            return f"cid:{chart.cid}"
        return "data:image/png;base64," + base64.b64encode(chart.path.read_bytes()).decode("ascii")

    def fig(figure: Figure) -> str:
        return sc.figure_text(figure, "html")

    cdn_row = next((r for r in sc.rows if r.kpi_code.startswith("CDN_")), None)
    return environment().get_template("scorecard.html.j2").render(
        **common_context(sc),
        mode=mode,
        src=src,
        fig=fig,
        charts={c.kpi_code: c for c in charts if c.kpi_code},
        child_death_chart=next((c for c in charts if c.kpi_code is None), None),
        child_death_theme=cdn_row.theme if cdn_row else None,
    )
