"""Great Expectations suites derived from the contracts.

Each return type gets two suites, both built from its contract and nothing else:

* ``<return_type>.values`` runs on the file's text (trimmed, enumerations lower-cased, dates
  normalised to ISO where they parse): direct identifiers in any column (a custom expectation,
  below), presence, formats (ids are codes), lengths, enumerations, uniqueness, reference codes
  and the rules that tie columns of a row together.
* ``<return_type>.ranges`` runs on the typed values (numbers and dates; unparseable cells are
  null there, so a bad cell is reported once, by the values suite): ranges, the return's period,
  dates in the future and the order of dates.

Today's date and reference code lists are suite parameters. What belongs to a row's own file
reaches the suites as columns the gate adds to each row: the return's period (
:data:`PERIOD_COLUMNS`: the first and last day of the period of the file the row came from) and,
for each column that must be unique within a file, the value keyed by its file
(:func:`in_file_column`). So the suites are the same for every file, the files of one return
type share one GX run whatever their periods and values, and the suites can be saved as the GX
project in ``expectations/``.
Every expectation carries ``meta`` with the rule id, column and a plain-English message.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import ClassVar, List

import pandas as pd

from .quiet_logs import quiet_great_expectations

quiet_great_expectations()  # before GX's first import, which logs hundreds of lines
import great_expectations as gx  # noqa: E402
import great_expectations.expectations as gxe  # noqa: E402
from great_expectations.execution_engine import PandasExecutionEngine, SqlAlchemyExecutionEngine  # noqa: E402
from great_expectations.expectations.expectation import ColumnMapExpectation  # noqa: E402
from great_expectations.expectations.metrics.map_metric_provider import (  # noqa: E402
    ColumnMapMetricProvider, column_condition_partial,
)
from great_expectations.expectations.row_conditions import Column as Col  # noqa: E402

from .contracts import ID_CHARACTERS, ID_REGEX, Contract, RowRule, load_contracts
from .identifiers import ID_KINDS, PERSON_NAME, VALUE_KINDS, describe_kinds, identifier_kind
from .rules import (DECIMAL_REGEX, FORMULA_REGEX, IDENTIFIER_RULE, INTEGER_REGEX, ISO_DATE_REGEX, PERIOD_COLUMNS,
                    in_file_column, reference_parameter, suite_names)


# A code that provably looks like no identifier of any kind, checked with one regex instead of
# identifier_kind's several (ids are nearly all distinct, so this is most of the rule's cost on
# large files). ASCII letters, digits and _ - / . only: nothing to fold or strip, no @ (so no
# email), no space (so no postcode written in words); at least one digit (so not a name); a
# joiner or no letter directly before a digit (so not a postcode written whole); not starting
# with a digit, so every digit follows a letter, digit or joiner and no NHS or phone number
# can start anywhere (see identifiers._NHS and _PHONE). Every other value gets
# identifier_kind; tests/test_gate_identifier_codes.py holds the two to agreement.
SAFE_CODE = re.compile(r"(?![0-9])(?=.*[0-9])(?:(?=.*[_\-/.])|(?!.*[A-Za-z][0-9]))[A-Za-z0-9_\-/.]+")


def looks_like_identifier_value(value: object, kinds: tuple[str, ...]) -> bool:
    """``identifier_kind(value, kinds) is not None``, answered at once for a plain code."""
    if isinstance(value, str) and SAFE_CODE.fullmatch(value):
        return False
    return identifier_kind(value, kinds) is not None


IDENTIFIER_FUNCTION = "pkpi_looks_like_identifier"
"""The SQL function (DuckDB, in Python) that answers ``looks_like_identifier_value``; see
:func:`register_sql_functions`."""


@lru_cache(maxsize=65_536)
def _looks_like_identifier_sql(value: str, kinds: str) -> bool:
    return looks_like_identifier_value(value, tuple(kinds.split(",")))


def register_sql_functions(connection) -> None:
    """Give a DuckDB connection the function the identifier rule's SQL calls."""
    from duckdb import sqltypes

    connection.create_function(IDENTIFIER_FUNCTION, _looks_like_identifier_sql,
                               [sqltypes.VARCHAR, sqltypes.VARCHAR], sqltypes.BOOLEAN)


# SAFE_CODE in RE2 (no look-ahead), matched whole. Without a joiner, a code that starts with a
# letter and holds a digit has a letter right before its first digit, so SAFE_CODE needs a
# joiner: a joiner first and a digit later, or a letter first and both later, in either order.
_C, _J = r"[A-Za-z0-9_\-/.]", r"[_\-/.]"
SAFE_CODE_RE2 = rf"(?:{_J}{_C}*[0-9]|[A-Za-z]{_C}*(?:[0-9]{_C}*{_J}|{_J}{_C}*[0-9])){_C}*"
# Anything that could make a value an identifier of VALUE_KINDS: a character outside printable
# ASCII (it may fold into a digit, or be a space), an @ (email), a letter before a digit with
# only spaces between (postcode) or ten digits (NHS or phone number).
MAYBE_IDENTIFIER_RE2 = r"[^ -~]|@|[A-Za-z] *[0-9]|(?:[0-9][^0-9]*){10}"


def not_identifier_sql(column, kinds: tuple[str, ...]):
    """SQL (DuckDB) that is true where ``column`` looks like no identifier of ``kinds``.

    Most values are settled in DuckDB by regular expressions (RE2) that prove them no
    identifier: a plain code (:data:`SAFE_CODE_RE2`, :data:`SAFE_CODE` in RE2), or a value
    with nothing :data:`MAYBE_IDENTIFIER_RE2` looks for (in an id column also with a digit, as a
    name has none). Only the rest reach Python's ``identifier_kind``, through
    :data:`IDENTIFIER_FUNCTION`. tests/test_gate_identifier_codes.py runs this SQL against
    identifier_kind.
    """
    import sqlalchemy as sa  # only the DuckDB runner builds this SQL

    def search(pattern: str):
        return sa.func.regexp_matches(column, sa.literal(pattern))

    plain = sa.not_(search(MAYBE_IDENTIFIER_RE2))
    if PERSON_NAME in kinds:
        plain = sa.and_(plain, search(r"[0-9]"))
    code = sa.func.regexp_full_match(column, sa.literal(SAFE_CODE_RE2))
    checked = sa.not_(getattr(sa.func, IDENTIFIER_FUNCTION)(column, sa.literal(",".join(kinds))))
    return sa.case((sa.or_(code, plain), sa.true()), else_=checked)


class ColumnValuesAreNotIdentifiers(ColumnMapMetricProvider):
    """Map metric: True for each value that does not look like a direct identifier of ``kinds``."""

    condition_metric_name = "column_values.pkpi_not_identifier"
    condition_value_keys = ("kinds",)

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column, kinds, **kwargs):
        kinds = tuple(kinds)
        # Each distinct value once: dates, numbers and enumerations repeat a great deal.
        flagged = {v: looks_like_identifier_value(v, kinds) for v in pd.unique(column)}
        return ~column.map(flagged).astype(bool)

    @column_condition_partial(engine=SqlAlchemyExecutionEngine)
    def _sqlalchemy(cls, column, kinds, **kwargs):
        return not_identifier_sql(column, tuple(kinds))


class ExpectColumnValuesToNotLookLikeIdentifiers(ColumnMapExpectation):
    """Expect no value to look like an NHS number, email address, UK postcode, UK phone number
    or (with ``name`` among ``kinds``) a person's name; see :mod:`pkpi.identifiers`.

    Registered with GX when this module is imported (GX registers every Expectation subclass by
    its snake-cased name, ``expect_column_values_to_not_look_like_identifiers``); open the
    committed GX project after ``import pkpi.suites``.
    """

    kinds: List[str]  # no default, so the committed suite always spells them out

    map_metric: ClassVar[str] = "column_values.pkpi_not_identifier"
    success_keys: ClassVar[tuple] = ("kinds", "mostly")
    args_keys: ClassVar[tuple] = ("column", "kinds")
    library_metadata: ClassVar[dict] = {"maturity": "production", "tags": ["pkpi", "privacy"],
                                        "contributors": ["pkpi"]}


def _meta(rule: str, column: str | None, message: str) -> dict:
    return {"rule": rule, "column": column, "message": message}


def _values_expectations(contract: Contract) -> list:
    out: list = []
    for c in contract.columns:
        n = c.name
        # Every column: an identifier typed into a date or number column must be refused as
        # one too, never echoed back under that column's type rule.
        kinds = ID_KINDS if c.is_id else VALUE_KINDS
        out.append(ExpectColumnValuesToNotLookLikeIdentifiers(
            column=n, kinds=list(kinds),
            meta=_meta(IDENTIFIER_RULE, n,
                       f"{n} holds a value that looks like a direct identifier "
                       f"({describe_kinds(kinds)}); the warehouse does not accept "
                       "identifiers, so the value is not repeated here. Replace it with your "
                       "pseudonymous reference (see the contract's notes on ids) and send the "
                       "file again.")))
        if c.required:
            out.append(gxe.ExpectColumnValuesToNotBeNull(
                column=n, meta=_meta("required", n, f"{n} is required on every row.")))
        if c.type == "date":
            out.append(gxe.ExpectColumnValuesToMatchRegex(
                column=n, regex=ISO_DATE_REGEX,
                meta=_meta("type_date", n,
                           f"{n} must be a real date written YYYY-MM-DD or DD/MM/YYYY.")))
        elif c.type == "integer":
            out.append(gxe.ExpectColumnValuesToMatchRegex(
                column=n, regex=INTEGER_REGEX,
                meta=_meta("type_integer", n, f"{n} must be a whole number.")))
        elif c.type == "decimal":
            out.append(gxe.ExpectColumnValuesToMatchRegex(
                column=n, regex=DECIMAL_REGEX,
                meta=_meta("type_decimal", n,
                           f"{n} must be a number such as 1234.50, without £ signs or commas.")))
            if c.decimal_places is not None:
                # Only a well-formed number can have too many places (anything else fails type_decimal).
                out.append(gxe.ExpectColumnValuesToNotMatchRegex(
                    column=n, regex=rf"^-?[0-9]+\.[0-9]{{{c.decimal_places + 1},}}\Z",
                    meta=_meta("decimal_places", n,
                               f"{n} may have at most {c.decimal_places} decimal places.")))
        elif c.type == "enum":
            out.append(gxe.ExpectColumnValuesToBeInSet(
                column=n, value_set=list(c.values),
                meta=_meta("enum", n, f"{n} must be one of: {', '.join(c.values)}.")))
        elif c.type == "text":
            if c.is_id:
                out.append(gxe.ExpectColumnValuesToMatchRegex(
                    column=n, regex=ID_REGEX,
                    meta=_meta("id_format", n,
                               f"{n} is a code: it may hold {ID_CHARACTERS}. Use your own "
                               "reference in that form (never a name, address or number from "
                               "another system).")))
            if c.max_length:
                out.append(gxe.ExpectColumnValueLengthsToBeBetween(
                    column=n, max_value=c.max_length,
                    meta=_meta("max_length", n,
                               f"{n} may be at most {c.max_length} characters long.")))
            out.append(gxe.ExpectColumnValuesToNotMatchRegex(
                column=n, regex=FORMULA_REGEX,
                meta=_meta("no_formula", n,
                           f"{n} must not start with =, +, - or @ (spreadsheet formulas are not "
                           "accepted; paste values only).")))
        if c.reference:
            table, ref_col = c.reference
            out.append(gxe.ExpectColumnValuesToBeInSet(
                column=n, value_set={"$PARAMETER": reference_parameter(table, ref_col)},
                meta=_meta("reference", n,
                           f"{n} must be a code from the partnership's {table} list "
                           f"({table}.csv); check the code or ask the partnership to add it.")))
        if c.unique:
            out.append(gxe.ExpectColumnValuesToBeUnique(
                column=in_file_column(n), meta=_meta("unique", n,
                                     f"{n} must be unique within the file; this value appears "
                                     "more than once.")))
    for rule in contract.rules:
        out.extend(_row_rule_expectations(rule))
    return out


def _row_rule_expectations(rule: RowRule) -> list:
    when, col = rule.when, rule.column
    matches = Col(when.column).is_in(list(when.values))
    differs = Col(when.column).is_not_in(list(when.values))
    if rule.rule == "required_when":
        out = [gxe.ExpectColumnValuesToNotBeNull(
            column=col, row_condition=matches,
            meta=_meta("required_when", col, f"{col} is required when {when.describe()}."))]
        if rule.blank_otherwise:
            out.append(gxe.ExpectColumnValuesToBeNull(
                column=col, row_condition=differs,
                meta=_meta("blank_otherwise", col,
                           f"{col} must be blank unless {when.describe()}.")))
        return out
    if rule.rule == "values_when":
        return [gxe.ExpectColumnValuesToBeInSet(
            column=col, value_set=list(rule.values), row_condition=matches,
            meta=_meta("values_when", col,
                       f"when {when.describe()}, {col} must be one of: {', '.join(rule.values)}."))]
    # blank_unless
    return [gxe.ExpectColumnValuesToBeNull(
        column=col, row_condition=differs,
        meta=_meta("blank_unless", col, f"{col} must be blank unless {when.describe()}."))]


def _ranges_expectations(contract: Contract) -> list:
    out: list = []
    period_words = "month" if contract.period_kind == "month" else "financial year"
    for c in contract.columns:
        n = c.name
        if c.type in ("integer", "decimal") and (c.min is not None or c.max is not None):
            out.append(gxe.ExpectColumnValuesToBeBetween(
                column=n, min_value=c.min, max_value=c.max,
                meta=_meta("range", n, f"{n} must be from {c.min:,g} to {c.max:,g}.")))
        if c.in_period:
            # Two halves of one rule, with one message: a date fails at most one of them.
            meta = _meta("in_period", n, f"{n} must fall inside the return's {period_words} (the period in "
                         "the folder name).")
            start, end = PERIOD_COLUMNS
            out += [gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                        column_A=n, column_B=start, or_equal=True, ignore_row_if="either_value_is_missing", meta=meta),
                    gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                        column_A=end, column_B=n, or_equal=True, ignore_row_if="either_value_is_missing", meta=meta)]
        if c.not_in_future:
            out.append(gxe.ExpectColumnValuesToBeBetween(
                column=n, max_value={"$PARAMETER": "today"},
                meta=_meta("not_in_future", n, f"{n} must not be in the future.")))
        if c.not_before:
            out.append(gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A=n, column_B=c.not_before, or_equal=True,
                ignore_row_if="either_value_is_missing",
                meta=_meta("not_before", n, f"{n} must not be before {c.not_before}.")))
    return out


def build_suites(contract: Contract) -> tuple[gx.ExpectationSuite, gx.ExpectationSuite]:
    """The values and ranges suites for one return type."""
    values_name, ranges_name = suite_names(contract)
    values = gx.ExpectationSuite(name=values_name, expectations=_values_expectations(contract),
                                 meta={"return_type": contract.return_type, "frame": "text"})
    ranges = gx.ExpectationSuite(name=ranges_name, expectations=_ranges_expectations(contract),
                                 meta={"return_type": contract.return_type, "frame": "typed"})
    return values, ranges


def suites_context():
    """A new ephemeral GX context holding every contract's suites, and those suites by name."""
    from great_expectations.data_context.types.base import ProgressBarsConfig

    # GX's start-up lines are quietened by pkpi.quiet_logs, at the top of this module.
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    suites = {suite.name: context.suites.add(suite)
              for contract in load_contracts().values() for suite in build_suites(contract)}
    return context, suites


def suite_documents() -> dict[str, dict]:
    """Every suite as the JSON document GX stores, keyed by its path in the store (ids stripped).

    GX's file store keeps ``contacts.values`` as ``contacts/values.json``.
    """
    docs: dict[str, dict] = {}
    for contract in load_contracts().values():
        for suite in build_suites(contract):
            doc = suite.to_json_dict()
            doc.pop("id", None)
            for exp in doc["expectations"]:
                exp.pop("id", None)
            doc["meta"] = {k: v for k, v in doc["meta"].items() if k != "great_expectations_version"}
            docs["/".join(suite.name.split(".")) + ".json"] = doc
    return docs


def write_gx_project(expectations_dir: Path) -> list[Path]:
    """Write the suites into the GX file project at ``expectations_dir`` (``gx/expectations``)."""
    folder = expectations_dir / "gx" / "expectations"
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, doc in suite_documents().items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        written.append(path)
    return written
