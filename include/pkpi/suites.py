"""Great Expectations suites derived from the contracts.

Each return type gets two suites, both built from its contract and nothing else:

* ``<return_type>.values`` runs on the file's text (trimmed, enumerations lower-cased, dates
  normalised to ISO where they parse): presence, formats, lengths, enumerations, uniqueness,
  reference codes and the rules that tie columns of a row together.
* ``<return_type>.ranges`` runs on the typed values (numbers and dates; unparseable cells are
  null there, so a bad cell is reported once, by the values suite): ranges, the return's period,
  dates in the future and the order of dates.

Period bounds, today's date and reference code lists are suite parameters, so the suites are
the same for every file and can be saved as the GX project in ``expectations/``.
Every expectation carries ``meta`` with the rule id, column and a plain-English message.
"""

from __future__ import annotations

import json
from pathlib import Path

import great_expectations as gx
import great_expectations.expectations as gxe
from great_expectations.expectations.row_conditions import Column as Col

from .contracts import Contract, RowRule, load_contracts

# [0-9], not \d: Python's \d also matches other scripts' digits (such as Arabic-Indic), which
# would pass the format check and then fail to convert, loading a blank into a required column.
#
# A real calendar date written YYYY-MM-DD (zero-padded; 29 February only in leap years; no year
# 0000). One regular expression rather than GX's strftime expectation: strptime accepts "2025-3-5"
# and runs in Python once per cell, which made it the slowest rule on large files. The tests
# check this pattern against the calendar day by day.
ISO_DATE_REGEX = (
    r"^(?!0000)(?:[0-9]{4}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])"
    r"|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)|02-(?:0[1-9]|1[0-9]|2[0-8]))"
    r"|(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:[02468][048]|[13579][26])00)-02-29)$"
)
INTEGER_REGEX = r"^-?[0-9]+$"
DECIMAL_REGEX = r"^-?[0-9]+(?:\.[0-9]+)?$"
FORMULA_REGEX = r"^[=+\-@]"
DATE_PARAMS = ("period_start", "period_end", "today")


def reference_parameter(table: str, column: str) -> str:
    return f"reference__{table}__{column}"


def _meta(rule: str, column: str | None, message: str) -> dict:
    return {"rule": rule, "column": column, "message": message}


def _values_expectations(contract: Contract) -> list:
    out: list = []
    for c in contract.columns:
        n = c.name
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
                out.append(gxe.ExpectColumnValuesToMatchRegex(
                    column=n, regex=rf"^-?[0-9]+(?:\.[0-9]{{1,{c.decimal_places}}})?$|^(?!-?[0-9]+(?:\.[0-9]+)?$)",
                    meta=_meta("decimal_places", n,
                               f"{n} may have at most {c.decimal_places} decimal places.")))
        elif c.type == "enum":
            out.append(gxe.ExpectColumnValuesToBeInSet(
                column=n, value_set=list(c.values),
                meta=_meta("enum", n, f"{n} must be one of: {', '.join(c.values)}.")))
        elif c.type == "text":
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
                column=n, meta=_meta("unique", n,
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
            out.append(gxe.ExpectColumnValuesToBeBetween(
                column=n, min_value={"$PARAMETER": "period_start"},
                max_value={"$PARAMETER": "period_end"},
                meta=_meta("in_period", n,
                           f"{n} must fall inside the return's {period_words} (the period in "
                           "the folder name).")))
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


def suite_names(contract: Contract) -> tuple[str, str]:
    return f"{contract.return_type}.values", f"{contract.return_type}.ranges"


def build_suites(contract: Contract) -> tuple[gx.ExpectationSuite, gx.ExpectationSuite]:
    """The values and ranges suites for one return type."""
    values_name, ranges_name = suite_names(contract)
    values = gx.ExpectationSuite(name=values_name, expectations=_values_expectations(contract),
                                 meta={"return_type": contract.return_type, "frame": "text"})
    ranges = gx.ExpectationSuite(name=ranges_name, expectations=_ranges_expectations(contract),
                                 meta={"return_type": contract.return_type, "frame": "typed"})
    return values, ranges


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
