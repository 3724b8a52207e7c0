"""What the dbt project takes from the contracts: the ``contracts`` var and the raw sources.

The dbt project (``dbt_project/``) holds no copy of a contract. Two things carry them over:

- :func:`contract_vars`: the dbt var ``contracts`` (per return type: its period kind, the date
  column that places a record in its month, the raw table's columns with their SQL types, and
  the enumerations), which ``pkpi build`` passes on every dbt run (:func:`pkpi.build.dbt_args`).
  The macros in ``dbt_project/macros/contracts.sql`` read it; every model that loops over the
  return types or types a raw column takes it from there.
- :func:`raw_sources_yaml`: ``dbt_project/models/staging/_raw_sources.yml``, the dbt source
  ``raw`` (one table per return type, its columns, descriptions, freshness and enumeration
  tests), written by ``pkpi docs`` like the partner pages and the GX suites, and checked for
  drift by ``tests/test_dbt_mart.py``. A file rather than a var because dbt reads sources only
  from YAML.

To run dbt by hand, pass the vars ``pkpi build`` passes (docs/dbt.md, "By hand").
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import yaml

from .contracts import Contract, load_contracts

RAW_SOURCES_FILE = Path("models") / "staging" / "_raw_sources.yml"
"""Where :func:`write_raw_sources` puts the raw source, relative to the dbt project folder."""

# How long a return type may go without an accepted file before dbt source freshness warns and
# errors, by period kind: a month plus grace, or a year plus a month's grace.
FRESHNESS_DAYS = {"month": (35, 70), "financial_year": (400, 500)}

_HEADER = """\
# GENERATED from include/pkpi/contracts/*.yml by `pkpi docs` (pkpi.dbt_contracts): do not edit.
# Change the contract and run `pkpi docs`; tests/test_dbt_mart.py fails when this file is stale.
#
# What the gate (pkpi.ingest) writes: raw.<return_type> holds the rows of accepted files with
# their load id and row number, typed by the contract. The load audit is in _sources.yml.
"""


def contract_vars(contracts: Mapping[str, Contract] | None = None) -> dict:
    """The dbt var ``contracts``: what the dbt project needs to know about each return type.

    ``{"contracts": {return_type: {"period_kind", "period_column", "columns", "enums"}}}``, in
    the order :func:`pkpi.contracts.load_contracts` gives. ``columns`` maps each raw column
    (after load_id and source_row) to its SQL type; ``period_column`` is the date that places a
    record in its month and financial year (none for a return without one, such as finance).
    """
    contracts = load_contracts() if contracts is None else contracts
    return {
        "contracts": {
            rt: {
                "period_kind": c.period_kind,
                "period_column": c.period_column,
                "columns": {col.name: col.sql_type.lower() for col in c.columns},
                "enums": {col.name: list(col.values) for col in c.columns if col.type == "enum"},
            }
            for rt, c in contracts.items()
        }
    }


def _load_id_column() -> dict:
    return {
        "name": "load_id",
        "data_type": "varchar",
        "description": "The accepted file this row came from (audit.loads.load_id).",
        "data_tests": [
            "not_null",
            {"relationships": {"arguments": {"to": "source('audit', 'loads')", "field": "load_id"}}},
        ],
    }


def _source_table(contract: Contract) -> dict:
    rt = contract.return_type
    config: dict = {}
    if contract.period_kind != "month":
        warn, error = FRESHNESS_DAYS[contract.period_kind]
        config["freshness"] = {
            "warn_after": {"count": warn, "period": "day"},
            "error_after": {"count": error, "period": "day"},
        }
    # Nil returns load no rows, so freshness is measured on the load audit, not the rows.
    config["loaded_at_query"] = (
        f"select max(validated_at) from audit.loads where return_type = '{rt}' and status = 'accepted'"
    )
    columns = [
        _load_id_column(),
        {"name": "source_row", "data_type": "integer",
         "description": "Row number in the partner's file (the header is row 1)."},
    ]
    for col in contract.columns:
        entry: dict = {"name": col.name, "data_type": col.sql_type.lower(), "description": contract.column_rule(col)}
        if col.type == "enum":
            entry["data_tests"] = [{"in_contract_enum": {"arguments": {"return_type": rt}}}]
        columns.append(entry)
    return {
        "name": rt,
        "description": f"{contract.title} ({contract.frequency}, from {contract.submitted_by}). {contract.grain}",
        "config": config,
        "columns": columns,
    }


def raw_sources_document(contracts: Mapping[str, Contract] | None = None) -> dict:
    """The dbt source ``raw`` as a YAML document: one table per contract."""
    contracts = load_contracts() if contracts is None else contracts
    warn, error = FRESHNESS_DAYS["month"]
    return {
        "version": 2,
        "sources": [
            {
                "name": "raw",
                "description": "Rows of accepted partner returns, typed by the contract, one table per return type.",
                "schema": "raw",
                "config": {
                    # A return type counts as fresh while its latest accepted return was validated recently.
                    "freshness": {
                        "warn_after": {"count": warn, "period": "day"},
                        "error_after": {"count": error, "period": "day"},
                    },
                },
                "tables": [_source_table(c) for c in contracts.values()],
            }
        ],
    }


def raw_sources_yaml(contracts: Mapping[str, Contract] | None = None) -> str:
    """The text of ``models/staging/_raw_sources.yml`` for these contracts (default: all)."""
    body = yaml.safe_dump(raw_sources_document(contracts), sort_keys=False, width=120, allow_unicode=True)
    return _HEADER + body


def write_raw_sources(dbt_project_dir: Path) -> Path:
    """Write ``models/staging/_raw_sources.yml`` into the dbt project; returns its path."""
    path = dbt_project_dir / RAW_SOURCES_FILE
    path.write_text(raw_sources_yaml(), encoding="utf-8")
    return path
