"""The rules' vocabulary, without Great Expectations: rule ids, the pattern each type's text must
match, the names of the suites and of the columns the gate adds to each row.

:mod:`pkpi.suites` builds the GX suites from these and :mod:`pkpi.gate` types and reports with
them; they live here so the gate's module (and so every ingest, even one with nothing waiting)
does not import GX before a file needs validating.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .contracts import Contract

# [0-9], not \d: Python's \d also matches other scripts' digits (such as Arabic-Indic), which
# would pass the format check and then fail to convert, loading a blank into a required column.
# \Z, not $: GX's pandas engine applies a regex with Series.str.contains (re.search), and $
# also matches before a final newline, so "7\n" would pass as a whole number.
#
# A real calendar date written YYYY-MM-DD (zero-padded; 29 February only in leap years; no year
# 0000). One regular expression rather than GX's strftime expectation: strptime accepts "2025-3-5"
# and runs in Python once per cell, which made it the slowest rule on large files. The tests
# check this pattern against the calendar day by day.
#
# Every pattern here runs in two engines, Python's re (the gate's typing) and DuckDB's RE2 (the
# suites, through pkpi.gx_duckdb.re2): so no look-ahead or look-behind, which RE2 lacks.
_YEAR = r"(?:[1-9][0-9]{3}|0[1-9][0-9]{2}|00[1-9][0-9]|000[1-9])"
_LEAP_YEAR = r"(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:0[48]|[2468][048]|[13579][26])00)"
ISO_DATE_REGEX = (
    rf"^(?:{_YEAR}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])"
    r"|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)|02-(?:0[1-9]|1[0-9]|2[0-8]))"
    rf"|{_LEAP_YEAR}-02-29)\Z"
)
INTEGER_REGEX = r"^-?[0-9]+\Z"
DECIMAL_REGEX = r"^-?[0-9]+(?:\.[0-9]+)?\Z"
FORMULA_REGEX = r"^[=+\-@]"

# The rule a value of each type must meet before anything else is checked; the gate converts
# only values that meet it (so a ranges rule never sees a value that failed its type).
TYPE_REGEX = {"date": ISO_DATE_REGEX, "integer": INTEGER_REGEX, "decimal": DECIMAL_REGEX}

IDENTIFIER_RULE = "identifier_value"

# Added by the gate to the typed frame: the bounds of each row's own return period, so the
# in_period rule compares two columns of the row (contract column names never start with "_").
PERIOD_COLUMNS = ("_period_start", "_period_end")


def in_file_column(column: str) -> str:
    """The column the gate adds to the values frame for a column that must be unique within a
    file: the value and the file it came from as one key (null where the value is blank), so
    uniqueness holds within each file even when several files' rows are validated together."""
    return f"_{column}_in_file"


def reference_parameter(table: str, column: str) -> str:
    """The suite parameter holding the codes of a reference list."""
    return f"reference__{table}__{column}"


def suite_names(contract: Contract) -> tuple[str, str]:
    """The names of a return type's two suites: the values suite and the ranges suite."""
    return f"{contract.return_type}.values", f"{contract.return_type}.ranges"
