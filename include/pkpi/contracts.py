"""The data-sharing contract, one declarative description per return type.

Each ``contracts/<return_type>.yml`` describes a return once: its columns, types, enumerations,
ranges, row rules and period. Everything else is derived from it: the parser's types, the Great
Expectations suite, the blank templates, the partner docs, the raw table's DDL and what the dbt
project knows of it (pkpi.dbt_contracts). Adding a return type means adding a YAML file here and
its own dbt models (docs/dbt.md, "Adding a return type"), not Python.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml

from .errors import PermanentError
from .identifiers import header_looks_like_identifier

COLUMN_TYPES = ("text", "enum", "date", "integer", "decimal")
RULE_KINDS = ("required_when", "values_when", "blank_unless")

# What an id may hold. An id is a code, never a name or a number from another system: letters
# (A to Z, with or without accents), the digits 0 to 9 and the joiners - _ / . ; no spaces, no
# other symbols, no digits of other scripts (so two spellings of one code cannot both load).
ID_CHARACTERS = "letters (A to Z, accents allowed), digits 0-9 and - _ / . only, no spaces"
ID_REGEX = r"^[0-9A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u017f_/.\-]+\Z"
TEXT_FORMATS = ("id",)


class ContractError(PermanentError, ValueError):
    """A contract file is malformed: a developer error, caught by the tests."""


@dataclass(frozen=True)
class Condition:
    """``column`` has one of ``values`` on the same row."""

    column: str
    values: tuple[str, ...]

    def describe(self) -> str:
        vals = " or ".join(self.values)
        return f"{self.column} is {vals}"


@dataclass(frozen=True)
class RowRule:
    """A rule that ties two columns of the same row together."""

    rule: str
    column: str
    when: Condition
    values: tuple[str, ...] = ()
    blank_otherwise: bool = False

    @property
    def name(self) -> str:
        return f"{self.rule}:{self.column}:{self.when.column}={'|'.join(self.when.values)}"


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    required: bool = False
    description: str = ""
    max_length: int | None = None
    unique: bool = False
    values: tuple[str, ...] = ()
    min: float | None = None
    max: float | None = None
    decimal_places: int | None = None
    in_period: bool = False
    not_before: str | None = None
    not_in_future: bool = False
    reference: tuple[str, str] | None = None  # (reference table, column)
    format: str | None = None  # text only: "id" (a code of ID_CHARACTERS)
    labels: tuple[tuple[str, str], ...] = ()  # enum only: (value, name) for values a word does not explain

    @property
    def is_coded(self) -> bool:
        """True when the column holds codes from a list: the contract's values or a reference table."""
        return self.type == "enum" or self.reference is not None

    def code_name(self, value: str) -> str:
        """What an allowed value means: its label in the contract, else the value in words."""
        return dict(self.labels).get(value) or value.replace("_", " ").capitalize()

    @property
    def is_id(self) -> bool:
        return self.format == "id"

    @property
    def sql_type(self) -> str:
        return {
            "text": "VARCHAR",
            "enum": "VARCHAR",
            "date": "DATE",
            "integer": "INTEGER",
            "decimal": "DECIMAL(12, 2)",
        }[self.type]

    def type_phrase(self) -> str:
        """How the type reads in partner docs and templates."""
        if self.type == "text":
            # An id's characters are spelt out once, under "No identifiers" (identifier_rules).
            kind = "id" if self.is_id else "text"
            return f"{kind}, at most {self.max_length} characters" if self.max_length else kind
        if self.type == "enum":
            return "one of: " + ", ".join(self.values)
        if self.type == "date":
            return "date, YYYY-MM-DD or DD/MM/YYYY"
        if self.type == "integer":
            return "whole number"
        places = self.decimal_places if self.decimal_places is not None else 2
        return f"number, at most {places} decimal places"

    @property
    def range_phrase(self) -> str | None:
        """The allowed range of a number ("0 to 10,000,000"), or None."""
        if self.type not in ("integer", "decimal") or self.min is None or self.max is None:
            return None
        return f"{self.min:,.0f} to {self.max:,.0f}" if self.type == "decimal" else f"{self.min:g} to {self.max:g}"


@dataclass(frozen=True)
class Contract:
    return_type: str
    title: str
    frequency: str
    period_kind: str  # month | financial_year
    period_column: str | None
    submitted_by: str
    grain: str
    columns: tuple[Column, ...]
    rules: tuple[RowRule, ...] = field(default=())

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)

    def column_rule(self, column: Column) -> str:
        """What a column holds and every rule on it alone, in one sentence or two (the partner
        page, the template's notes and the dbt docs say it the same way; rules between columns
        are :meth:`row_rule_texts`)."""
        limits = []
        if column.range_phrase:
            limits.append(column.range_phrase)
        if column.unique:
            limits.append("unique within the file")
        if column.in_period:
            limits.append("inside the return's " + ("month" if self.period_kind == "month" else "financial year"))
        if column.not_before:
            limits.append(f"not before {column.not_before}")
        if column.not_in_future:
            limits.append("not in the future")
        if column.reference:
            limits.append(f"a code from {column.reference[0]}.csv")
        text = column.description
        if limits:
            text += " " + "; ".join(limits)[:1].upper() + "; ".join(limits)[1:] + "."
        if column.labels:
            text += " " + "; ".join(f"{value}: {name}" for value, name in column.labels) + "."
        return text

    def row_rule_texts(self) -> list[str]:
        """The rules between columns, one sentence each (column names in `backticks`)."""
        out = []
        for r in self.rules:
            if r.rule == "required_when":
                text = f"`{r.column}` is required when {r.when.describe()}"
                text += ", and must be blank otherwise." if r.blank_otherwise else "."
            elif r.rule == "values_when":
                text = f"When {r.when.describe()}, `{r.column}` must be one of: {', '.join(r.values)}."
            else:
                text = f"`{r.column}` must be blank unless {r.when.describe()}."
            out.append(text)
        return out

    @property
    def period_example(self) -> str:
        return "2025-03" if self.period_kind == "month" else "2024-25"

    def raw_table_ddl(self, schema: str = "raw") -> str:
        """The DDL of the raw table that holds this return's accepted rows."""
        cols = ",\n  ".join(f"{c.name} {c.sql_type}" for c in self.columns)
        return (
            f"CREATE TABLE IF NOT EXISTS {schema}.{self.return_type} (\n"
            f"  load_id VARCHAR NOT NULL,\n  source_row INTEGER NOT NULL,\n  {cols}\n)"
        )


def _column(spec: dict[str, Any], return_type: str) -> Column:
    kind = spec.get("type")
    if kind not in COLUMN_TYPES:
        raise ContractError(f"{return_type}.{spec.get('name')}: unknown type {kind!r}")
    if kind == "enum" and not spec.get("values"):
        raise ContractError(f"{return_type}.{spec['name']}: an enum needs values")
    if spec.get("format") is not None and (kind != "text" or spec["format"] not in TEXT_FORMATS):
        raise ContractError(f"{return_type}.{spec['name']}: format must be one of {TEXT_FORMATS}, on text")
    ref = spec.get("reference")
    labels = {str(k): str(v) for k, v in (spec.get("labels") or {}).items()}
    unknown = sorted(set(labels) - {str(v) for v in spec.get("values", ())})
    if unknown:
        raise ContractError(f"{return_type}.{spec['name']}: labels name values it does not allow ({', '.join(unknown)}); "
                            "label only values listed under values.")
    return Column(
        name=spec["name"],
        type=kind,
        required=bool(spec.get("required", False)),
        description=spec.get("description", ""),
        max_length=spec.get("max_length"),
        unique=bool(spec.get("unique", False)),
        values=tuple(str(v) for v in spec.get("values", ())),
        min=spec.get("min"),
        max=spec.get("max"),
        decimal_places=spec.get("decimal_places"),
        in_period=bool(spec.get("in_period", False)),
        not_before=spec.get("not_before"),
        not_in_future=bool(spec.get("not_in_future", False)),
        reference=(ref["table"], ref["column"]) if ref else None,
        format=spec.get("format"),
        labels=tuple(labels.items()),
    )


def _rule(spec: dict[str, Any], names: set[str], return_type: str) -> RowRule:
    if spec.get("rule") not in RULE_KINDS:
        raise ContractError(f"{return_type}: unknown rule {spec.get('rule')!r}")
    when = Condition(spec["when"]["column"], tuple(str(v) for v in spec["when"]["values"]))
    for col in (spec["column"], when.column):
        if col not in names:
            raise ContractError(f"{return_type}: rule names unknown column {col!r}")
    return RowRule(
        rule=spec["rule"],
        column=spec["column"],
        when=when,
        values=tuple(str(v) for v in spec.get("values", ())),
        blank_otherwise=bool(spec.get("blank_otherwise", False)),
    )


def parse_contract(doc: dict[str, Any]) -> Contract:
    """Build a Contract from a parsed YAML document, checking it is well formed."""
    rt = doc["return_type"]
    columns = tuple(_column(c, rt) for c in doc["columns"])
    names = {c.name for c in columns}
    if len(names) != len(columns):
        raise ContractError(f"{rt}: duplicate column names")
    for c in columns:
        if c.not_before and c.not_before not in names:
            raise ContractError(f"{rt}.{c.name}: not_before names unknown column {c.not_before!r}")
    if doc["period_kind"] not in ("month", "financial_year"):
        raise ContractError(f"{rt}: period_kind must be month or financial_year")
    return Contract(
        return_type=rt,
        title=doc["title"],
        frequency=doc["frequency"],
        period_kind=doc["period_kind"],
        period_column=doc.get("period_column"),
        submitted_by=doc.get("submitted_by", ""),
        grain=doc.get("grain", ""),
        columns=columns,
        rules=tuple(_rule(r, names, rt) for r in doc.get("rules") or ()),
    )


@lru_cache(maxsize=1)
def load_contracts() -> dict[str, Contract]:
    """Every contract shipped in ``pkpi/contracts``, keyed by return type."""
    out: dict[str, Contract] = {}
    folder = resources.files("pkpi") / "contracts"
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".yml"):
            contract = parse_contract(yaml.safe_load(entry.read_text(encoding="utf-8")))
            out[contract.return_type] = contract
    return out


def get_contract(return_type: str) -> Contract:
    contracts = load_contracts()
    if return_type not in contracts:
        raise KeyError(return_type)
    return contracts[return_type]


def return_types() -> tuple[str, ...]:
    return tuple(load_contracts())


def looks_like_identifier(header: str) -> bool:
    """True when a column header names a direct identifier (name, NHS number, DOB, ...).

    See :func:`pkpi.identifiers.header_looks_like_identifier`.
    """
    return header_looks_like_identifier(header)
