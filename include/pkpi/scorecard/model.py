"""The scorecard model: what every output (HTML, text, CSV, XLSX, PDF, charts, email) shows.

:func:`pkpi.scorecard.assemble.build_scorecard` fills it from the mart, already through
disclosure control: every number on it is a :class:`~pkpi.disclosure.Figure`, so a hidden
number has no value to render. This module also holds the scorecard's vocabulary, once: the
columns of ``scorecard.csv`` (docs/scorecard.md), the RAG ratings and the trend words.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from functools import cached_property
from pathlib import Path

from ..disclosure import DisclosureControl, Figure, Reason
from ..errors import PermanentError
from ..periods import financial_year_label, parse_financial_year, parse_month, shift_month
from .marks import NOTE_MARKS, mark_of, with_mark

# scorecard.csv's columns, in order: mart.scorecard's published interface (docs/scorecard.md).
SCORECARD_COLUMNS = (
    "period", "kpi_code", "kpi_name", "theme", "unit", "value", "fytd_value",
    "previous_month_value", "same_month_last_year_value", "target", "polarity", "rag", "trend",
    "provisional", "suppressed",
)
DEATH_TYPES = ("expected", "unexpected", "not_known")
TREND_MONTHS = 13  # a KPI's trend: the reporting month and the twelve before it
FIVE_YEARS = 5  # annual KPIs and child deaths by year: this financial year and four before


class ScorecardError(PermanentError, RuntimeError):
    """The scorecard cannot be produced; the message says what to run first."""


# --- the vocabulary ------------------------------------------------------------------------


@dataclass(frozen=True)
class RagStyle:
    word: str
    symbol: str
    background: str
    colour: str
    meaning: str


# RAG is always shown by word and symbol as well as colour (colour-blind readers, printouts).
# The keys are mart.scorecard.rag's accepted values.
RAG = {
    "green": RagStyle("Green", "✔", "#00703c", "#ffffff", "on or better than target"),
    "amber": RagStyle("Amber", "▲", "#ffdd00", "#0b0c0c", "just short of target"),
    "red": RagStyle("Red", "✖", "#d4351c", "#ffffff", "off target"),
    "grey": RagStyle("Grey", "○", "#b1b4b6", "#0b0c0c", "not rated"),
}


@dataclass(frozen=True)
class TrendWords:
    """How a trend reads: ``long`` in sentences ("→ No change on February 2026"), ``short`` in
    table cells ("→ Same"); ``arrow`` beside a verdict ("↓ Better", :attr:`ScorecardRow.trend_short`)."""

    long: str
    short: str
    arrow: str  # beside a verdict in a table cell: "↓ Better"


# The keys are mart.scorecard.trend's accepted values; "n/a" is also used wherever a direction
# would hint at a hidden figure.
TRENDS = {
    "up": TrendWords("↑ Up", "↑ Up", "↑"),
    "down": TrendWords("↓ Down", "↓ Down", "↓"),
    "flat": TrendWords("→ No change", "→ Same", "→"),
    "n/a": TrendWords("– No trend", "–", "–"),
}
# The direction that is better, by mart.scorecard.polarity (neutral KPIs have none).
BETTER = {"higher_is_better": "up", "lower_is_better": "down"}


@dataclass(frozen=True)
class VerdictStyle:
    """How a trend's verdict reads in a table cell: the word always, the colour as well."""

    word: str
    colour: str


# Shown as a word beside the arrow, so colour is never the only sign (colour-blind readers,
# printouts); the colours are the RAG badges' green and red, dark enough for text on white.
VERDICTS = {
    "better": VerdictStyle("Better", "#00703c"),
    "worse": VerdictStyle("Worse", "#d4351c"),
}


# --- period labels ---------------------------------------------------------------------------


def month_label(label: str) -> str:
    """``2026-03`` as "March 2026"."""
    return parse_month(label).start.strftime("%B %Y")


def short_month(label: str) -> str:
    """``2026-03`` as "Mar 26" (chart axes, series labels)."""
    return parse_month(label).start.strftime("%b %y")


def fy_of(period: str) -> str:
    """The financial year (``2025-26``) a month (``2026-03``) falls in."""
    return financial_year_label(parse_month(period).start)


def fy_shift(fy: str, years: int) -> str:
    """The financial year ``years`` before (negative) or after ``fy``."""
    start = parse_financial_year(fy).start
    return financial_year_label(date(start.year + years, 4, 1))


# --- the model -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SeriesPoint:
    """One point of a KPI's trend: a month (``YYYY-MM``) or a financial year (``YYYY-YY``)."""

    period: str
    label: str
    figure: Figure


@dataclass(frozen=True)
class ScorecardRow:
    """One KPI on the scorecard, disclosure-controlled."""

    period: str
    kpi_code: str
    kpi_name: str
    theme: str
    unit: str
    polarity: str
    definition: str
    value: Figure
    fytd: Figure
    previous_month: Figure
    same_month_last_year: Figure
    target: Figure
    rag: str
    trend: str
    provisional: bool  # mart.scorecard.provisional: the one home of the rule (docs/scorecard.md)
    series_grain: str  # 'month', or 'financial_year' for KPIs with no monthly figures
    series: tuple[SeriesPoint, ...]
    source: str | None = None  # the return type the KPI is counted from (None: every return)
    gaps: tuple["ReturnGap", ...] = ()  # missing or rejected returns this KPI is counted from (named in the note)

    @property
    def figures(self) -> tuple[Figure, ...]:
        return (self.value, self.fytd, self.previous_month, self.same_month_last_year)

    @property
    def suppressed(self) -> bool:
        """True when disclosure control hides any figure on the row."""
        return any(f.hidden for f in self.figures)

    @property
    def all_withheld(self) -> bool:
        """True when disclosure control withholds every figure of the KPI's trend that exists,
        so a chart would be empty."""
        return any(p.figure.hidden for p in self.series) and all(p.figure.value is None for p in self.series)

    @property
    def annual(self) -> bool:
        """True for KPIs counted by financial year only (finance): "this month" is the year."""
        return self.series_grain == "financial_year"

    @property
    def value_label(self) -> str:
        """What the headline figure covers: "March 2026", or "2025-26" for an annual KPI."""
        if self.annual:
            return f"Financial year {fy_of(self.period)}"
        return month_label(self.period)

    @property
    def comparisons(self) -> tuple["Comparison", ...]:
        """The figures shown beside the headline, labelled for a reader, in order."""
        fy = fy_of(self.period)
        target = Comparison(f"Target ({fy})", self.target if self.target.value is not None else None, "none set")
        if self.annual:
            # Month-on-month comparisons of an annual figure are the same year twice.
            return (
                Comparison(f"Previous financial year ({fy_shift(fy, -1)})", self.same_month_last_year),
                target,
            )
        return (
            Comparison(f"Year to date ({fy})", self.fytd),
            Comparison(f"Previous month ({month_label(shift_month(self.period, -1))})", self.previous_month),
            Comparison(f"Same month last year ({month_label(shift_month(self.period, -12))})", self.same_month_last_year),
            target,
        )

    @property
    def trend_verdict(self) -> str:
        """"better" or "worse" for a KPI with a direction that went up or down, else ""."""
        better = BETTER.get(self.polarity)
        if better is None or self.trend not in ("up", "down"):
            return ""
        return "better" if self.trend == better else "worse"

    @property
    def trend_text(self) -> str:
        """The trend as words: "↓ Down on February 2026 (better)"; "– No trend" when there is none."""
        if self.trend not in ("up", "down", "flat"):
            return TRENDS["n/a"].long
        against = fy_shift(fy_of(self.period), -1) if self.annual else month_label(shift_month(self.period, -1))
        verdict = f" ({self.trend_verdict})" if self.trend_verdict else ""
        return f"{TRENDS[self.trend].long} on {against}{verdict}"

    @property
    def trend_short(self) -> str:
        """The trend for a table cell: "↓ Better" or "↑ Worse" for a KPI with a direction,
        else "↑ Up", "→ Same" or "–"."""
        verdict = self.trend_verdict
        if verdict:
            return f"{TRENDS[self.trend].arrow} {VERDICTS[verdict].word}"
        return TRENDS[self.trend].short

    @property
    def provisional_note(self) -> str:
        """What a provisional KPI waits for, as a sentence ("" when it is not provisional)."""
        if not self.provisional:
            return ""
        if self.waiting_for:
            return f"Provisional: waiting for the {self.waiting_for}."
        return "Provisional: a return it is counted from is missing or was rejected."

    @property
    def waiting_for(self) -> str:
        """The returns this KPI still waits for, named by return and partner ("" for none):
        "multi-agency training returns from Northamptonshire Police (rejected) and Probation
        Service (missing)"."""
        by_title: dict[str, list[str]] = {}
        for gap in self.gaps:
            title = gap.return_title[:1].lower() + gap.return_title[1:]  # mid-sentence
            by_title.setdefault(title, []).append(gap.short())

        def listed(who: list[str]) -> str:
            return who[0] if len(who) == 1 else f"{', '.join(who[:-1])} and {who[-1]}"

        return "; ".join(
            f"{title} return{'s' if len(who) > 1 else ''} from {listed(who)}" for title, who in by_title.items()
        )


@dataclass(frozen=True)
class Comparison:
    """One labelled figure beside a KPI's headline; ``figure`` None reads as ``none_text``."""

    label: str
    figure: Figure | None
    none_text: str = "–"


@dataclass(frozen=True)
class ReturnGap:
    """An expected return for the month that is missing or was rejected."""

    return_type: str
    return_title: str
    partner_code: str
    partner_name: str
    status: str
    due_date: date | None

    def describe(self) -> str:
        verb = "missing" if self.status == "missing" else "rejected"
        return f"{self.return_title} return from {self.partner_name}: {verb}"

    @property
    def explanation(self) -> str:
        """What the status means for the reader, and when the return was due."""
        what = "not received" if self.status == "missing" else "received but failed the quality checks"
        due = f"; due {self.due_date.day} {self.due_date:%B %Y}" if self.due_date else ""
        return f"{what}{due}"

    def short(self) -> str:
        """The partner and what happened, for a KPI that depends on this return."""
        verb = "missing" if self.status == "missing" else "rejected"
        return f"{self.partner_name} ({verb})"


@dataclass(frozen=True)
class ChildDeathYear:
    """Child death notifications in one financial year, split by death type (controlled)."""

    financial_year: str
    label: str
    parts: dict[str, Figure]
    total: Figure
    has_data: bool

    @property
    def split_shown(self) -> bool:
        return not any(f.hidden for f in self.parts.values())


@dataclass(frozen=True)
class Scorecard:
    """Everything the scorecard outputs show, already through disclosure control."""

    partnership: str
    period: str
    period_label: str
    financial_year: str
    threshold: int
    provisional: bool
    gaps: tuple[ReturnGap, ...]
    rows: tuple[ScorecardRow, ...]
    child_deaths_by_year: tuple[ChildDeathYear, ...]

    @property
    def themes(self) -> list[tuple[str, list[ScorecardRow]]]:
        """Rows grouped by theme, in catalogue order."""
        out: dict[str, list[ScorecardRow]] = {}
        for row in self.rows:
            out.setdefault(row.theme, []).append(row)
        return list(out.items())

    @cached_property
    def reasons(self) -> list[Reason]:
        """The reasons used anywhere in this scorecard, in a fixed order (footnote marks)."""
        used = {f.reason for row in self.rows for f in row.figures + tuple(p.figure for p in row.series) if f.hidden}
        used |= {f.reason for y in self.child_deaths_by_year for f in (*y.parts.values(), y.total) if f.hidden}
        return [r for r in Reason if r in used]

    def note_number(self, figure: Figure) -> str | None:
        """The footnote mark of a hidden figure ("a", "b", ...), else None (:mod:`.marks`)."""
        return mark_of(self.reasons, figure)

    def figure_text(self, figure: Figure | None, style: str, none_text: str = "–") -> str:
        """A figure as an output writes it, with its footnote mark in ``style`` (see
        :func:`.marks.with_mark`); ``none_text`` when there is no figure at all."""
        if figure is None:
            return none_text
        return with_mark(figure, self.note_number(figure), style)

    def withheld_text(self, row: ScorecardRow) -> str:
        """The sentence that stands in for a chart with nothing to plot ("" when there is a
        chart): every figure of the trend is withheld."""
        if not row.all_withheld:
            return ""
        marks = sorted({m for p in row.series if (m := self.note_number(p.figure))})
        notes = f"note{'s' if len(marks) > 1 else ''} {', '.join(marks)}"
        span = "the last 13 months" if row.series_grain == "month" else "the last five financial years"
        return (f"All figures for this measure over {span} are withheld to protect the children "
                f"and families they count ({notes}), so there is no chart.")

    def footnotes(self) -> list[tuple[str, str]]:
        """(mark, sentence) for each reason used, in mark order."""
        control = DisclosureControl(self.threshold)
        return [(NOTE_MARKS[i], control.footnote(r)) for i, r in enumerate(self.reasons)]

    @property
    def rag_counts(self) -> dict[str, int]:
        counts = {k: 0 for k in RAG}
        for row in self.rows:
            counts[row.rag] = counts.get(row.rag, 0) + 1
        return counts

    @property
    def period_short(self) -> str:
        """The month as a column heading: "Mar 2026"."""
        return parse_month(self.period).start.strftime("%b %Y")

    def attachment_name(self, extension: str) -> str:
        """The file name a reader sees for an emailed copy: ``scorecard-2026-03.pdf``."""
        return f"scorecard-{self.period}.{extension}"

    @property
    def subject(self) -> str:
        """The email subject: partnership and month, and 'provisional' when it is."""
        status = " (provisional)" if self.provisional else ""
        return f"{self.partnership} scorecard: {self.period_label}{status}"


@dataclass(frozen=True)
class ScorecardOutput:
    """The files :func:`produce_scorecard` wrote for one month."""

    period: str
    directory: Path
    html: Path
    pdf: Path
    xlsx: Path
    csv: Path
    manifest: Path
    email_html: Path
    email_text: Path
    charts: tuple[Path, ...]
    provisional: bool
    subject: str
    up_to_date: bool = False  # the files were already those of this scorecard: none was drawn again

    @property
    def files(self) -> tuple[Path, ...]:
        return (self.html, self.pdf, self.xlsx, self.csv, *self.charts)


# --- wording every copy shares -----------------------------------------------------------------


def rag_reason(row: ScorecardRow) -> str:
    """Why a KPI has its RAG rating, in a few words ("off target", "not rated: no target")."""
    if row.rag != "grey":
        return RAG[row.rag].meaning
    if row.value.hidden:
        return "not rated: the figure is not shown"
    if row.value.value is None:
        return "not rated: no figure"
    if row.target.value is None:
        return "not rated: no target"
    return "not rated"


def reading_notes(sc: Scorecard) -> list[str]:
    """The notes every copy of the scorecard ends with (after the footnotes)."""
    notes = [
        f"Figures are for the whole partnership. Year to date runs from 1 April to the end of {sc.period_label}.",
        "RAG compares the figure with the target for the financial year: ✔ Green on or better "
        "than target, ▲ Amber just short of it (within the agreed tolerance), ✖ Red further off, "
        "○ Grey not rated (no target, or no figure to rate).",
        "Trend compares the figure with the month before; (better) or (worse) is added where a "
        "measure has a direction.",
        "A dash (–) means there is no figure for that period: no return was counted, or there was nothing to divide by.",
    ]
    if any(r.annual for r in sc.rows):
        notes.insert(1, f"Finance is reported by financial year: its figure is for the "
                        f"financial year {sc.financial_year}, compared with the previous financial year.")
    return notes
