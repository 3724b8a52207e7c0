"""Scorecard charts (PNG, matplotlib's Agg backend: no display needed).

Charts are drawn from the disclosure-controlled model only: a hidden figure has no number, so
it is simply not plotted, and the chart says beneath it which points are not shown and why.
Axis limits come from the plotted points, so they cannot hint at a hidden one either.
"""

from __future__ import annotations

import io
import math
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")  # before pyplot: servers and Airflow workers have no display
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter, MaxNLocator  # noqa: E402

from .disclosure import Figure, format_value  # noqa: E402

if TYPE_CHECKING:  # pragma: no cover
    from .scorecard import ChildDeathYear, Scorecard, ScorecardRow

# Okabe-Ito colours: distinguishable with the common colour-vision deficiencies.
LINE_COLOUR = "#0072B2"
TARGET_COLOUR = "#555555"
DEATH_TYPE_COLOURS = {"expected": "#0072B2", "unexpected": "#D55E00", "not_known": "#999999"}
DEATH_TYPE_LABELS = {"expected": "Expected", "unexpected": "Unexpected", "not_known": "Not known"}
SIZE_INCHES = (6.4, 3.4)
DPI = 110
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

    @property
    def name(self) -> str:
        return self.path.name


def _axis_formatter(unit: str) -> FuncFormatter:
    if unit == "percent":
        return FuncFormatter(lambda v, _: f"{v:.0f}%")
    if unit == "gbp":
        return FuncFormatter(lambda v, _: f"£{v:,.0f}")
    return FuncFormatter(lambda v, _: f"{v:,.0f}" if float(v).is_integer() else f"{v:,.1f}")


def _save(fig, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    plt.close(fig)
    # Imported here to keep the one atomic writer in scorecard.py.
    from .scorecard import write_atomic

    write_atomic(path, buf.getvalue())


def _notes_text(scorecard: "Scorecard", hidden: list[tuple[str, Figure]], missing: list[str]) -> str:
    lines = []
    by_note: dict[int, list[str]] = {}
    for label, figure in hidden:
        by_note.setdefault(scorecard.note_number(figure) or 0, []).append(label)
    for number, labels in sorted(by_note.items()):
        lines += textwrap.wrap(f"Not shown (see note {number}): {', '.join(labels)}", width=150)
    if missing:
        lines.append(f"No figures: {', '.join(missing)}")
    return "\n".join(lines)


def trend_chart(scorecard: "Scorecard", row: "ScorecardRow", path: Path) -> ChartFile:
    """The KPI over 13 months (or five financial years for annual KPIs); hidden points omitted."""
    labels = [p.label for p in row.series]
    ys = [p.figure.value if p.figure.value is not None else math.nan for p in row.series]
    plotted = [(p.label, p.figure.value) for p in row.series if p.figure.value is not None]
    hidden = [(p.label, p.figure) for p in row.series if p.figure.hidden]
    missing = [p.label for p in row.series if p.figure.missing]

    fig, ax = plt.subplots(figsize=SIZE_INCHES)
    xs = list(range(len(labels)))
    ax.plot(xs, ys, color=LINE_COLOUR, marker="o", linewidth=2, markersize=4)
    if row.target.value is not None:
        ax.axhline(row.target.value, color=TARGET_COLOUR, linestyle="--", linewidth=1)
        ax.annotate(
            f"Target {row.target.text}", xy=(0, row.target.value), xytext=(0, 4),
            textcoords="offset points", fontsize=8, color=TARGET_COLOUR,
            bbox={"facecolor": "white", "edgecolor": "none", "pad": 1, "alpha": 0.8},
        )
    if plotted and not math.isnan(ys[-1]):
        # Label the latest point only: the reporting month (or year), the figure in the table.
        ax.annotate(
            format_value(ys[-1], row.unit), xy=(xs[-1], ys[-1]), xytext=(0, 7),
            textcoords="offset points", ha="center", fontsize=9, fontweight="bold",
        )
    elif not plotted:
        ax.text(0.5, 0.5, "No figures can be shown for this period", transform=ax.transAxes,
                ha="center", va="center", fontsize=10, color=TARGET_COLOUR)
        ax.set_yticks([])
    tops = [v for _, v in plotted] + ([row.target.value] if row.target.value is not None else [])
    if tops and min(tops) >= 0:
        # From zero, with headroom for the labels; limits come from shown figures only.
        ax.set_ylim(0, max(max(tops) * 1.18, 1))
    ax.set_xticks(xs, labels, rotation=45 if row.series_grain == "month" else 0, fontsize=8)
    ax.set_xlim(-0.5, len(xs) - 0.5)  # room for the first and last labels
    ax.yaxis.set_major_formatter(_axis_formatter(row.unit))
    ax.yaxis.set_major_locator(MaxNLocator(nbins=5, integer=row.unit == "count"))
    ax.tick_params(axis="y", labelsize=8)
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(axis="y", alpha=0.3)
    span = "13 months" if row.series_grain == "month" else "five financial years"
    ax.set_title(textwrap.fill(f"{row.kpi_name}: last {span}", width=80), fontsize=10, loc="left")
    notes = _notes_text(scorecard, hidden, missing)
    if notes:
        fig.text(0.01, 0.01, notes, fontsize=7, color=TARGET_COLOUR, va="bottom")
    fig.tight_layout(rect=(0, 0.06 * (notes.count("\n") + 1) if notes else 0, 1, 1))
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
    )


def child_deaths_chart(scorecard: "Scorecard", years: tuple["ChildDeathYear", ...], path: Path) -> ChartFile:
    """Child death notifications by financial year over five years, stacked by death type.

    A year whose split is withheld shows its total only (when that may be shown), as a hatched
    grey bar marked "split not shown".
    """
    fig, ax = plt.subplots(figsize=SIZE_INCHES)
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
                      label=DEATH_TYPE_LABELS[death_type], width=0.6)
        for bar, h, b in zip(bars, heights, bottoms):
            if h > 0:
                ax.text(bar.get_x() + bar.get_width() / 2, b + h / 2, format_value(h, "count"),
                        ha="center", va="center", fontsize=8, color="white", fontweight="bold")
        bottoms = [b + h for b, h in zip(bottoms, heights)]
    totals_only = [(i, y) for i, y in enumerate(years) if y.has_data and not y.split_shown]
    if any(y.total.value is not None for _, y in totals_only):
        label = "Total (split not shown)"
        for i, year in totals_only:
            if year.total.value is None:
                continue
            ax.bar([i], [year.total.value], color="#d9d9d9", edgecolor="#6f777b", hatch="//",
                   width=0.6, label=label)
            label = None
            ax.text(i, year.total.value / 2, format_value(year.total.value, "count"), ha="center",
                    va="center", fontsize=8, fontweight="bold", color="#0b0c0c")
            plotted.append((f"{year.financial_year} total", year.total.value))
            bottoms[i] = year.total.value
    for i, year in enumerate(years):
        if not year.has_data:
            ax.text(i, 0, "no data", ha="center", va="bottom", fontsize=8, color=TARGET_COLOUR)
        elif year.total.hidden:
            ax.text(i, 0, "not shown", ha="center", va="bottom", fontsize=8, color=TARGET_COLOUR)
            hidden.append((f"{year.label} total", year.total))
    ax.set_xticks(xs, [y.label for y in years], fontsize=8)
    ax.yaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))
    ax.tick_params(axis="y", labelsize=8)
    ax.set_ylim(bottom=0, top=max(max(bottoms) * 1.25, 1))
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, frameon=False, ncols=4, loc="upper left")
    ax.set_title("Child death notifications by financial year", fontsize=10, loc="left")
    notes = _notes_text(scorecard, hidden, [])
    if notes:
        fig.text(0.01, 0.01, notes, fontsize=7, color=TARGET_COLOUR, va="bottom", wrap=True)
    fig.tight_layout(rect=(0, 0.05 * (notes.count("\n") + 1) if notes else 0, 1, 1))
    _save(fig, path)

    def describe(year: "ChildDeathYear") -> str:
        if year.split_shown:
            return f"{year.label}: " + ", ".join(
                f"{DEATH_TYPE_LABELS[t].lower()} {f.text}" for t, f in year.parts.items()
            )
        return f"{year.label}: {year.total.text} in total, split by type not shown"

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
    )


def draw_scorecard_charts(scorecard: "Scorecard", directory: Path) -> list[ChartFile]:
    """Draw every chart for the scorecard into ``directory``; stale charts there are removed."""
    directory.mkdir(parents=True, exist_ok=True)
    out = [trend_chart(scorecard, row, directory / f"trend-{row.kpi_code.lower()}.png") for row in scorecard.rows]
    out.append(child_deaths_chart(scorecard, scorecard.child_deaths_by_year, directory / CHILD_DEATHS_CHART))
    keep = {c.path.name for c in out}
    for old in directory.glob("*.png"):
        if old.name not in keep:  # a KPI dropped from the scorecard since the last run
            old.unlink()
    return out
