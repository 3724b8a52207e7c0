"""Disclosure control: what a figure may show once it leaves the warehouse.

One home, read top to bottom:

- :mod:`.rules`: the rules, stated once: which figures are disclosive (:func:`is_disclosive`),
  what a small number is and how one figure is shown or hidden (:class:`DisclosureControl`,
  :class:`Figure`, :class:`Reason`), and which counts each KPI's figures are made of
  (:data:`KPI_LINKS`). A change to a disclosure rule goes here.
- :mod:`.decisions`: those rules over the whole mart at once (complementary suppression, the
  year rule, the integer audit): :func:`decide` returns :class:`Decisions`.
- :mod:`.stored`: ``pkpi build`` makes the decisions once per build, deciding again only the
  units (a KPI family in one financial year) whose figures changed, and stores them in the
  warehouse (``mart.disclosure_decisions``); the published copy and every scorecard file and
  email read them back (:func:`load_decisions`).
- :mod:`.applied`: the decisions applied to a copy of the tables (the published copy).
"""

from .applied import apply_decisions, apply_disclosure_control
from .decisions import DECISION_TABLES, SCORECARD_FIGURES, Decisions, Key, decide, decide_over, reason_text
from .rules import (
    COUNT_UNITS,
    DISCLOSIVE_DIMENSIONS,
    DISCLOSIVE_KPI_PREFIXES,
    HIDDEN_PERCENT_TEXT,
    KPI_LINKS,
    MISSING_TEXT,
    MONEY_UNITS,
    Count,
    DisclosureControl,
    Figure,
    Link,
    Reason,
    dbt_var,
    format_value,
    is_disclosive,
    link_of,
)
from .stored import DecisionsForAnotherThreshold, DecisionsNotStored, load_decisions, mart_fingerprint, store_decisions

__all__ = [
    "COUNT_UNITS", "DECISION_TABLES", "DISCLOSIVE_DIMENSIONS", "DISCLOSIVE_KPI_PREFIXES",
    "HIDDEN_PERCENT_TEXT", "KPI_LINKS", "MISSING_TEXT", "MONEY_UNITS", "SCORECARD_FIGURES", "Count",
    "Decisions", "DecisionsForAnotherThreshold", "DecisionsNotStored", "DisclosureControl", "Figure",
    "Key", "Link", "Reason", "apply_decisions", "apply_disclosure_control", "dbt_var", "decide",
    "decide_over", "format_value", "is_disclosive", "link_of", "load_decisions", "mart_fingerprint",
    "reason_text", "store_decisions",
]
