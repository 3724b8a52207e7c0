"""Scorecard charts (PNG, matplotlib's Agg backend: no display needed).

Charts are drawn from the disclosure-controlled model only: a hidden figure has no number, so
it is simply not plotted; its month is shaded, and the chart's caption (``ChartFile.caption``,
printed beneath it in the HTML, email and PDF) says which points are not shown and why. Axis
limits come from the plotted points, so they cannot hint at a hidden one either; a percentage
axis is padded around them (:func:`percent_limits`) rather than always 0-100%.

Charts are drawn small in inches with ordinary text sizes, so that shrunk to a phone's width
the labels stay readable.
"""

from __future__ import annotations

import io
import math
import textwrap
from dataclasses import dataclass
from pathlib import Path

# Figures are drawn straight onto Agg canvases, never through pyplot: no display is needed
# (servers, Airflow workers), and pyplot's import and figure bookkeeping cost a second a run.
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure as MplFigure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from ..disclosure import Figure, format_value
from ..files import write_atomic
from .model import ChildDeathYear, Scorecard, ScorecardRow

# Okabe-Ito colours: distinguishable with the common colour-vision deficiencies.
LINE_COLOUR = "#0072B2"
TARGET_COLOUR = "#555555"
DEATH_TYPE_COLOURS = {"expected": "#0072B2", "unexpected": "#D55E00", "not_known": "#999999"}
DEATH_TYPE_LABELS = {"expected": "Expected", "unexpected": "Unexpected", "not_known": "Not known"}
# Drawn small in inches with normal-sized text, so the text stays readable when the image is
# shrunk to a phone's width (about 340 CSS pixels); the DPI keeps it sharp on phone screens.
SIZE_INCHES = (4.4, 2.9)
DPI = 150
FONT = {"title": 10, "tick": 8.5, "label": 9, "legend": 8, "note": 7.5}
HIDDEN_BAND = "#e8e8e8"
CHILD_DEATHS_CHART = "child-deaths-by-year.png"


@dataclass(frozen=True)
class ChartFile:
    """A chart written to disk, with what it shows (for alt text, notes and checks)."""

    path: Path
    cid: str  # Content-ID used when the chart is embedded in the email
    title: str
    kpi_code: str | None
    alt: str
    plotted: tuple[tuple[str, float], ...]
    not_shown: tuple[str, ...]
    caption: str = ""  # which points are not shown and why (note numbers), as text
    y_range: tuple[float, float] | None = None  # the value axis's limits, as drawn

    @property
    def caption_lines(self) -> list[str]:
        return [line for line in self.caption.split("\n") if line]

    @property
    def name(self) -> str:
        return self.path.name


def _compact_gbp(v: float, _pos=None) -> str:
    """Axis labels short enough for a phone: £850k, £1.2m."""
    if abs(v) >= 1_000_000:
        return f"£{v / 1_000_000:,.1f}m".replace(".0m", "m")
    if abs(v) >= 1_000:
        return f"£{v / 1_000:,.0f}k"
    return f"£{v:,.0f}"


def _axis_formatter(unit: str) -> FuncFormatter:
    if unit == "percent":
        return FuncFormatter(lambda v, _: f"{v:.0f}%")
    if unit == "gbp":
        return FuncFormatter(_compact_gbp)
    return FuncFormatter(lambda v, _: f"{v:,.0f}" if float(v).is_integer() else f"{v:,.1f}")


def percent_limits(values: list[float]) -> tuple[float, float]:
    """A percentage axis that shows the movement: the shown values (and target) padded by a
    quarter of their spread, at least 10 points tall, on multiples of 5, within 0 to 100 unless
    a value is outside it (a completion rate can pass 100%)."""
    low, high = min(values), max(values)
    pad = max((high - low) * 0.25, 2.5)
    bottom = 5 * math.floor((low - pad) / 5)
    top = 5 * math.ceil((high + pad) / 5)
    if top - bottom < 10:
        top = bottom + 10
    if low >= 0:
        bottom = max(bottom, 0)
    if high <= 100:
        top = min(top, 105)  # room for the latest point's label above 100%
    return float(bottom), float(max(top, bottom + 10))


def _new_chart():
    """A figure and its axes on an Agg canvas of its own (garbage-collected with the figure)."""
    fig = MplFigure(figsize=SIZE_INCHES)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _save(fig, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    write_atomic(path, buf.getvalue())


def _notes_text(scorecard: Scorecard, hidden: list[tuple[str, Figure]], missing: list[str]) -> str:
    """Which points are not shown (with their note numbers) and which have no figure."""
    lines = []
    by_note: dict[int, list[str]] = {}
    for label, figure in hidden:
        by_note.setdefault(scorecard.note_number(figure) or 0, []).append(label)
    for number, labels in sorted(by_note.items()):
        lines.append(f"Not shown (note {number}): {', '.join(labels)}.")
    if missing:
        lines.append(f"No figure: {', '.join(missing)}.")
    return "\n".join(lines)


def _style(ax, title: str) -> None:
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(axis="y", alpha=0.3)
    ax.tick_params(axis="both", labelsize=FONT["tick"])
    ax.set_title(textwrap.fill(title, width=52), fontsize=FONT["title"], loc="left", fontweight="bold")


def _footer(fig, hidden: bool, missing: bool) -> float:
    """A one-line key under the plot; the full list is the chart's caption. Returns its height."""
    parts = []
    if hidden:
        parts.append("shaded: figure not shown (see the notes)")
    if missing:
        parts.append("gap: no figure")
    if not parts:
        return 0.0
    text = "; ".join(parts)
    fig.text(0.01, 0.01, text[:1].upper() + text[1:], fontsize=FONT["note"], color=TARGET_COLOUR, va="bottom")
    return 0.07


def trend_chart(scorecard: Scorecard, row: ScorecardRow, path: Path) -> ChartFile:
    """The KPI over 13 months (or five financial years for annual KPIs); hidden points omitted.

    A hidden point is not plotted: its month is shaded instead, so the gap is explained
    without hinting at the figure.
    """
    monthly = row.series_grain == "month"
    labels = [p.label for p in row.series]
    ys = [p.figure.value if p.figure.value is not None else math.nan for p in row.series]
    plotted = [(p.label, p.figure.value) for p in row.series if p.figure.value is not None]
    hidden = [(p.label, p.figure) for p in row.series if p.figure.hidden]
    missing = [p.label for p in row.series if p.figure.missing]

    fig, ax = _new_chart()
    xs = list(range(len(labels)))
    for i, point in enumerate(row.series):
        if point.figure.hidden:
            ax.axvspan(i - 0.45, i + 0.45, color=HIDDEN_BAND, linewidth=0, zorder=0)
    ax.plot(xs, ys, color=LINE_COLOUR, marker="o", linewidth=2, markersize=3.5, zorder=3)
    if row.target.value is not None:
        ax.axhline(row.target.value, color=TARGET_COLOUR, linestyle="--", linewidth=1,
                   label=f"Target {row.target.text}" + (f" ({scorecard.financial_year})" if not monthly else ""),
                   zorder=2)
        ax.legend(fontsize=FONT["legend"], frameon=False, loc="best", handlelength=1.8)
    if plotted and not math.isnan(ys[-1]):
        # Label the latest point only: the reporting month (or year), the figure in the table.
        ax.annotate(
            format_value(ys[-1], row.unit), xy=(xs[-1], ys[-1]), xytext=(0, 6),
            textcoords="offset points", ha="right", fontsize=FONT["label"], fontweight="bold", zorder=4,
        )
    elif not plotted:
        ax.text(0.5, 0.5, "No figures can be shown", transform=ax.transAxes,
                ha="center", va="center", fontsize=FONT["label"], color=TARGET_COLOUR)
        ax.set_yticks([])
    # Limits come from shown figures (and the target) only, so they cannot hint at a hidden one.
    tops = [v for _, v in plotted] + ([row.target.value] if row.target.value is not None else [])
    if tops and row.unit == "percent":
        ax.set_ylim(*percent_limits(tops))
    elif tops and min(tops) >= 0:
        ax.set_ylim(0, max(max(tops) * 1.2, 1))  # from zero, with headroom for the labels
    if monthly:
        # "Mar" over "25": thirteen labels fit across a phone screen without turning them.
        tick_labels = [label.replace(" ", "\n") for label in labels]
    else:
        tick_labels = labels
    ax.set_xticks(xs, tick_labels)
    ax.set_xlim(-0.6, len(xs) - 0.4)
    ax.yaxis.set_major_formatter(_axis_formatter(row.unit))
    if tops and row.unit == "percent":
        # Whole percentages only (a 22.5% tick would read "22%"), and none above 100% when
        # the room above is only for the latest point's label.
        bottom, top = ax.get_ylim()
        ceiling = min(top, 100) if max(tops) <= 100 else top
        ticks = MaxNLocator(nbins=4, steps=[1, 2, 5, 10], integer=True).tick_values(bottom, ceiling)
        ax.set_yticks([t for t in ticks if bottom <= t <= ceiling])
    else:
        ax.yaxis.set_major_locator(MaxNLocator(nbins=4, integer=row.unit == "count"))
    span = "13 months" if monthly else "five financial years"
    _style(ax, f"{row.kpi_name}: last {span}")
    bottom = _footer(fig, bool(hidden), bool(missing))
    fig.tight_layout(rect=(0, bottom, 1, 1), pad=0.6)
    _save(fig, path)

    shown_text = ", ".join(f"{label} {format_value(v, row.unit)}" for label, v in plotted) or "no figures"
    return ChartFile(
        path=path,
        cid=f"{path.stem}.{scorecard.period}@pkpi.scorecard",
        title=row.kpi_name,
        kpi_code=row.kpi_code,
        alt=f"{row.kpi_name}, last {span}: {shown_text}."
        + (f" {len(hidden)} figure(s) not shown." if hidden else ""),
        plotted=tuple(plotted),
        not_shown=tuple(label for label, _ in hidden),
        caption=_notes_text(scorecard, hidden, missing),
        y_range=tuple(float(v) for v in ax.get_ylim()),
    )


def child_deaths_chart(scorecard: Scorecard, years: tuple[ChildDeathYear, ...], path: Path) -> ChartFile:
    """Child death notifications by financial year over five years, stacked by death type.

    A year whose split is withheld shows its total only (when that may be shown), as a hatched
    grey bar marked "split not shown".
    """
    fig, ax = _new_chart()
    xs = list(range(len(years)))
    bottoms = [0.0] * len(years)
    plotted: list[tuple[str, float]] = []
    hidden: list[tuple[str, Figure]] = []
    for year in years:
        for death_type, figure in year.parts.items():
            if figure.hidden:
                hidden.append((f"{year.label} {DEATH_TYPE_LABELS[death_type].lower()}", figure))
    for death_type in DEATH_TYPE_COLOURS:
        heights = []
        for year in years:
            figure = year.parts[death_type]
            heights.append(figure.value or 0.0)
            if figure.value is not None:
                plotted.append((f"{year.financial_year} {death_type}", figure.value))
        bars = ax.bar(xs, heights, bottom=bottoms, color=DEATH_TYPE_COLOURS[death_type],
                      label=DEATH_TYPE_LABELS[death_type], width=0.62)
        for bar, h, b in zip(bars, heights, bottoms):
            if h > 0:
                ax.text(bar.get_x() + bar.get_width() / 2, b + h / 2, format_value(h, "count"),
                        ha="center", va="center", fontsize=FONT["label"], color="white", fontweight="bold")
        bottoms = [b + h for b, h in zip(bottoms, heights)]
    totals_only = [(i, y) for i, y in enumerate(years) if y.has_data and not y.split_shown]
    if any(y.total.value is not None for _, y in totals_only):
        label = "Total (split not shown)"
        for i, year in totals_only:
            if year.total.value is None:
                continue
            ax.bar([i], [year.total.value], color="#d9d9d9", edgecolor="#6f777b", hatch="//",
                   width=0.62, label=label)
            label = None
            ax.text(i, year.total.value / 2, format_value(year.total.value, "count"), ha="center",
                    va="center", fontsize=FONT["label"], fontweight="bold", color="#0b0c0c",
                    bbox={"facecolor": "white", "edgecolor": "none", "pad": 1.5})
            plotted.append((f"{year.financial_year} total", year.total.value))
            bottoms[i] = year.total.value
    for i, year in enumerate(years):
        if not year.has_data:
            ax.text(i, 0, "no data", ha="center", va="bottom", fontsize=FONT["note"], color=TARGET_COLOUR)
        elif year.total.hidden:
            ax.text(i, 0, "not shown", ha="center", va="bottom", fontsize=FONT["note"], color=TARGET_COLOUR)
            hidden.append((f"{year.label} total", year.total))
    ax.set_xticks(xs, [y.label.replace(" (", "\n(") for y in years])
    ax.yaxis.set_major_locator(MaxNLocator(nbins=4, integer=True))
    ax.set_ylim(bottom=0, top=max(max(bottoms) * 1.45, 1))  # headroom for the legend
    ax.legend(fontsize=FONT["legend"], frameon=False, ncols=2, loc="upper left")
    _style(ax, "Child death notifications by financial year")
    fig.tight_layout(pad=0.6)
    _save(fig, path)

    def describe(year: ChildDeathYear) -> str:
        if year.split_shown:
            return f"{year.label}: " + ", ".join(
                f"{DEATH_TYPE_LABELS[t].lower()} {f.text}" for t, f in year.parts.items()
            )
        return f"{year.label}: {year.total.text} in total, split by type not shown"

    caption = _notes_text(scorecard, hidden, [])
    if totals_only:
        caption = "\n".join(filter(None, [
            "Hatched bars: the year's total only; its split by type is not shown (see the notes).",
            caption,
        ]))
    return ChartFile(
        path=path,
        cid=f"{path.stem}.{scorecard.period}@pkpi.scorecard",
        title="Child death notifications by financial year",
        kpi_code=None,
        alt="Child death notifications by financial year and death type: "
        + ("; ".join(describe(y) for y in years if y.has_data) or "no data")
        + ".",
        plotted=tuple(plotted),
        not_shown=tuple(label for label, _ in hidden),
        caption=caption,
    )


def draw_scorecard_charts(scorecard: Scorecard, directory: Path) -> list[ChartFile]:
    """Draw every chart for the scorecard into ``directory``; stale charts there are removed.

    A KPI whose figures are all withheld gets no chart (an empty frame says nothing): the
    outputs print :meth:`Scorecard.withheld_text` in its place.
    """
    directory.mkdir(parents=True, exist_ok=True)
    out = [trend_chart(scorecard, row, directory / f"trend-{row.kpi_code.lower()}.png")
           for row in scorecard.rows if not row.all_withheld]
    out.append(child_deaths_chart(scorecard, scorecard.child_deaths_by_year, directory / CHILD_DEATHS_CHART))
    keep = {c.path.name for c in out}
    for old in directory.glob("*.png"):
        if old.name not in keep:  # a KPI dropped from the scorecard since the last run
            old.unlink()
    return out
