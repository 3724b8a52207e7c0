"""The rules of disclosure control, stated once: what a figure may show once it leaves the warehouse.

The mart keeps every figure exactly; disclosure control is applied on the way out (scorecard
files, charts, email, published exports). Which figures it applies to is
:func:`is_disclosive`: every KPI the catalogue marks disclosive, every child death KPI
(:data:`DISCLOSIVE_KPI_PREFIXES`, even if its catalogue row were mislabelled) and any breakdown
by sex or ethnicity (:data:`DISCLOSIVE_DIMENSIONS`), whatever the KPI. The dbt project marks
``mart.kpi_values.disclosive`` by the same rule, which :func:`dbt_var` hands it on every build.
With the threshold ``t`` (``settings.disclosure_threshold``, default 5):

- a count from 1 to t-1 is shown as ``<t``;
- a percentage or rate whose numerator or denominator is from 1 to t-1 is not shown (``[c]``),
  nor one whose numerator counts some of the denominator's cases when the rest (denominator
  minus numerator) is from 1 to t-1: 5 of 6 discloses one case;
- when a total is published beside its parts (the months of a financial year beside the year
  to date), one hidden part could be worked out by subtraction, so further parts are hidden
  ("complementary suppression", :meth:`DisclosureControl.protect_parts`) until the hidden
  parts add up to at least t.

A percentage's numerator and denominator are counts of categories that other figures publish too
(the under-1 numerator is two age bands of the notifications; the JAR denominator is the
unexpected deaths): :data:`KPI_LINKS` says, once per KPI, which counts each figure is made of,
so that the decisions over the whole mart (:mod:`pkpi.disclosure.decisions`) suppress them
together.

Every hidden figure carries a :class:`Reason`, which the outputs turn into a footnote. A hidden
figure's ``value`` is ``None``: renderers only ever see :class:`Figure` objects, so the number
itself cannot reach an output by accident.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from typing import Hashable, Mapping

from ..settings import Settings

HIDDEN_PERCENT_TEXT = "[c]"  # the GSS symbol for "confidential"
MISSING_TEXT = "–"

# Breakdowns that are disclosive whatever the KPI: with small numbers they identify children.
DISCLOSIVE_DIMENSIONS = frozenset({"sex", "ethnicity"})
# Child death KPIs are disclosive even if the catalogue row were ever mislabelled.
DISCLOSIVE_KPI_PREFIXES = ("CDN_",)

# Units whose value is itself a count of people or events (the "<5" rule applies to the value);
# every other unit is a ratio, checked on its numerator and denominator.
COUNT_UNITS = frozenset({"count"})


class Reason(str, Enum):
    """Why a figure is hidden; each becomes one footnote."""

    SMALL_COUNT = "small_count"
    SMALL_BASE = "small_base"
    COMPLEMENT = "complement"
    UNCHECKED = "unchecked"

    def footnote(self, threshold: int) -> str:
        """The sentence a reader sees for this reason."""
        low = threshold - 1
        return {
            Reason.SMALL_COUNT: (
                f"Counts from 1 to {low} are shown as <{threshold} so that no child or family "
                "can be identified."
            ),
            Reason.SMALL_BASE: (
                f"Not shown ({HIDDEN_PERCENT_TEXT}): the percentage or rate is based on a count "
                f"from 1 to {low} (or leaves out from 1 to {low} cases), so showing it could identify "
                "a child or family."
            ),
            Reason.COMPLEMENT: (
                f"Not shown ({HIDDEN_PERCENT_TEXT}): with the totals and other figures published, "
                f"this figure (even as <{threshold}) would let a count from 1 to {low} be worked out."
            ),
            Reason.UNCHECKED: (
                f"Not shown ({HIDDEN_PERCENT_TEXT}): the counts behind this figure were not "
                "available to check it against the disclosure threshold."
            ),
        }[self]


@dataclass(frozen=True)
class Figure:
    """A figure as it may be published.

    ``value`` is the number to publish (``None`` when hidden or when there is no value);
    ``text`` is how it reads; ``hidden`` and ``reason`` say whether and why it was withheld.
    """

    value: float | None
    unit: str
    text: str
    hidden: bool = False
    reason: Reason | None = None

    @property
    def missing(self) -> bool:
        """True when there is simply no value (not loaded, or a zero denominator)."""
        return self.value is None and not self.hidden


def format_value(value: float | None, unit: str) -> str:
    """Format a published number for reading: 1,234 / 45.3% / £12,345 / 12.3 per 10k."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING_TEXT
    if unit == "count":
        return f"{value:,.0f}"
    if unit == "percent":
        return f"{value:.1f}%"
    if unit == "gbp":
        return f"£{value:,.0f}"
    if unit == "rate_per_10k":
        return f"{value:,.1f}"
    return f"{value:,.2f}".rstrip("0").rstrip(".")


def is_disclosive(kpi_code: str, marked_disclosive: bool, dimension: str = "total") -> bool:
    """Whether disclosure control applies to a KPI (and breakdown) at all."""
    return (
        bool(marked_disclosive)
        or kpi_code.upper().startswith(DISCLOSIVE_KPI_PREFIXES)
        or dimension in DISCLOSIVE_DIMENSIONS
    )


def dbt_var() -> dict:
    """The dbt var ``disclosive`` that ``pkpi build`` passes: :func:`is_disclosive`'s rule, for
    the macro ``is_disclosive`` that marks ``mart.kpi_values.disclosive`` (never a second copy)."""
    return {
        "disclosive": {
            "dimensions": sorted(DISCLOSIVE_DIMENSIONS),
            "kpi_prefixes": [p.upper() for p in DISCLOSIVE_KPI_PREFIXES],
        }
    }


@dataclass(frozen=True)
class Count:
    """A count of one category: ``kpi_code``'s figure for ``dimension`` equal to any of
    ``values`` (summed), for the same period and partner; by default the KPI's total."""

    kpi_code: str
    dimension: str = "total"
    values: tuple[str, ...] = ("total",)


@dataclass(frozen=True)
class Link:
    """Which counts a KPI's figures are made of (see :data:`KPI_LINKS`).

    ``same_as``: a count KPI whose total is another KPI's count of a category.
    ``numerator`` / ``denominator``: the counts behind a ratio when other KPIs publish them;
    None when they are counted for this KPI alone.
    ``nested``: the numerator's cases are some of the denominator's, so denominator minus
    numerator is a count of a category too (hidden when small: 5 of 6 discloses one case).
    ``rest``: what denominator minus numerator is, when another KPI publishes it.
    ``denominator_counted``: False when the denominator is not a count of cases (a population).
    ``counted``: False for figures that are not counts at all (money): they link to nothing.
    """

    same_as: Count | None = None
    numerator: Count | None = None
    denominator: Count | None = None
    nested: bool = False
    rest: Count | None = None
    denominator_counted: bool = True
    counted: bool = True


_CONTACTS = Count("CON_CONTACTS")
_NOTIFICATIONS = Count("CDN_NOTIFICATIONS")

KPI_LINKS: dict[str, Link] = {
    # Front door: every figure is a count of contacts, by outcome.
    "CON_CONTACTS": Link(),
    "CON_REFERRALS": Link(same_as=Count("CON_CONTACTS", "outcome", ("referral",))),
    "CON_CONVERSION_PCT": Link(numerator=Count("CON_CONTACTS", "outcome", ("referral",)), denominator=_CONTACTS, nested=True),
    "CON_NFA_PCT": Link(numerator=Count("CON_CONTACTS", "outcome", ("nfa",)), denominator=_CONTACTS, nested=True),
    "CON_EARLY_HELP_PCT": Link(numerator=Count("CON_CONTACTS", "outcome", ("early_help",)), denominator=_CONTACTS, nested=True),
    "CON_REREFERRAL_12M_PCT": Link(denominator=Count("CON_REFERRALS"), nested=True),
    "CON_PER_10K": Link(numerator=_CONTACTS, denominator_counted=False),
    # Training: completions are not a subset of the courses commenced in the same period.
    "TRN_ELEARN_COMMENCED": Link(),
    "TRN_ELEARN_COMPLETED": Link(),
    "TRN_ATTENDANCES": Link(),
    "TRN_ELEARN_COMPLETION_PCT": Link(numerator=Count("TRN_ELEARN_COMPLETED"), denominator=Count("TRN_ELEARN_COMMENCED")),
    "TRN_DNA_PCT": Link(nested=True, rest=Count("TRN_ATTENDANCES")),  # places booked = not attended + attended
    "TRN_POSITIVE_IMPACT_PCT": Link(nested=True),
    # Child deaths.
    "CDN_NOTIFICATIONS": Link(),
    "CDN_UNDER_1_PCT": Link(numerator=Count("CDN_NOTIFICATIONS", "age_band", ("under_28_days", "28_to_364_days")),
                            denominator=_NOTIFICATIONS, nested=True),
    "CDN_UNEXPECTED_JAR_PCT": Link(denominator=Count("CDN_NOTIFICATIONS", "death_type", ("unexpected",)), nested=True),
    # Finance is money, not counts of people.
    "FIN_CONTRIBUTIONS_GBP": Link(counted=False),
    "FIN_GRANT_INCOME_GBP": Link(counted=False),
    "FIN_TOTAL_INCOME_GBP": Link(counted=False),
    "FIN_SHARE_PCT": Link(counted=False),
    "FIN_YOY_CHANGE_PCT": Link(counted=False),
    # Return compliance: counts of returns.
    "RET_ON_TIME_PCT": Link(nested=True),
    "RET_REJECTED": Link(),
}
"""Every KPI of the catalogue, and which counts its figures are made of; a new KPI states its
links here once (tests/test_disclosure_adversarial.py fails for a catalogue KPI missing here)."""

MONEY_UNITS = frozenset({"gbp"})


def link_of(kpi_code: str, unit: str) -> Link:
    """The KPI's :class:`Link`; a KPI not listed counts on its own (money links to nothing)."""
    link = KPI_LINKS.get(kpi_code.upper())
    if link is not None:
        return link
    return Link(counted=unit not in MONEY_UNITS)


def _number(x) -> float | None:
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) else x


class DisclosureControl:
    """Applies the rules above with one threshold; build it with :meth:`from_settings`."""

    def __init__(self, threshold: int = 5):
        if threshold < 1:
            raise ValueError("The disclosure threshold must be 1 or more.")
        self.threshold = threshold

    @classmethod
    def from_settings(cls, settings: Settings) -> "DisclosureControl":
        return cls(settings.disclosure_threshold)

    def is_small(self, n: float | None) -> bool:
        """True for a count from 1 to threshold-1 (zero is not disclosive)."""
        return n is not None and 0 < n < self.threshold

    @property
    def hidden_count_text(self) -> str:
        return f"<{self.threshold}"

    def footnote(self, reason: Reason) -> str:
        return reason.footnote(self.threshold)

    def shown(self, value: float | None, unit: str) -> Figure:
        """A figure published as it is (non-disclosive KPIs, or checked and safe)."""
        value = _number(value)
        return Figure(value, unit, format_value(value, unit))

    def hidden(self, unit: str, reason: Reason) -> Figure:
        """A withheld figure; its number is dropped here and never carried further."""
        text = self.hidden_count_text if reason is Reason.SMALL_COUNT else HIDDEN_PERCENT_TEXT
        return Figure(None, unit, text, hidden=True, reason=reason)

    def figure(
        self,
        value: float | None,
        unit: str,
        disclosive: bool,
        numerator: float | None = None,
        denominator: float | None = None,
        nested: bool = False,
    ) -> Figure:
        """Control one figure.

        Counts (unit ``count``) are checked on their value; ratios on their numerator and
        denominator, and when ``nested`` (the numerator's cases are some of the denominator's,
        :attr:`Link.nested`) on denominator minus numerator too. A disclosive ratio whose counts
        are unknown is hidden rather than guessed.
        """
        value = _number(value)
        if not disclosive or value is None:
            return self.shown(value, unit)
        if unit in COUNT_UNITS:
            return self.hidden(unit, Reason.SMALL_COUNT) if self.is_small(value) else self.shown(value, unit)
        numerator, denominator = _number(numerator), _number(denominator)
        if numerator is None and denominator is None:
            return self.hidden(unit, Reason.UNCHECKED)
        if self.is_small(numerator) or self.is_small(denominator):
            return self.hidden(unit, Reason.SMALL_BASE)
        if nested and numerator is not None and denominator is not None and self.is_small(denominator - numerator):
            return self.hidden(unit, Reason.SMALL_BASE)
        return self.shown(value, unit)

    def protect_parts(
        self,
        parts: Mapping[Hashable, Figure],
        raw: Mapping[Hashable, float | None],
        total_published: bool,
    ) -> dict[Hashable, Figure]:
        """Complementary suppression over parts that add up to a published total.

        ``parts`` are already controlled figures, ``raw`` the true counts behind them (used
        only to choose what else to hide). When any part is hidden and the total is published,
        the smallest other non-zero parts are hidden too, until at least two parts are hidden
        and the hidden parts add up to the threshold or more, so subtraction reveals nothing
        below it. Returns the new figures (the input is not changed).
        """
        out = dict(parts)
        if not total_published:
            return out
        hidden = [k for k, f in out.items() if f.hidden]
        if not hidden:
            return out

        def hidden_sum() -> float:
            return sum(_number(raw.get(k)) or 0.0 for k in hidden)

        candidates = sorted(
            (k for k, f in out.items() if not f.hidden and (_number(raw.get(k)) or 0) > 0),
            key=lambda k: (_number(raw.get(k)), str(k)),
        )
        while (len(hidden) < 2 or hidden_sum() < self.threshold) and candidates:
            key = candidates.pop(0)
            out[key] = self.hidden(out[key].unit, Reason.COMPLEMENT)
            hidden.append(key)
        return out

