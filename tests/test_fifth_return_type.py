"""Adding a return type is one contract and its own models, and nothing else.

A copy of the project (the ``pkpi`` package with its contracts, the dbt project, the reference
seeds, the GX project and the partner pages) gets a toy fifth return type, ``strategy_meetings``,
exactly as a newcomer would add it:

- ``include/pkpi/contracts/strategy_meetings.yml``: the contract;
- ``dbt_project/models/staging/stg_strategy_meetings.sql``: its staging model;
- ``dbt_project/models/intermediate/int_strategy_meetings_current.sql`` and
  ``int_kpi_strategy_meetings.sql``: its current records and its KPIs;
- ``dbt_project/models/marts/fct_strategy_meetings.sql`` and its entry in ``_marts.yml``;
- its rows in ``dbt_project/catalogue/kpi_catalogue.csv`` and ``seeds/return_schedule.csv``.

Then, in a separate process that imports the copied package (so the copy's contracts are the
ones loaded), ``pkpi docs`` regenerates what derives from the contracts (partner page, the
guide's table of return types, GX suites, dbt raw sources, dbt docs site), ``pkpi ingest`` takes
partner files for the new return through the real gate and ``pkpi build`` builds and tests the
mart and publishes it. The new return type is in the partner docs, the GX suites, the dbt raw
sources and docs site, the facts, kpi_values (with its breakdown listing every contract value),
the return submissions and their KPIs, the scorecard and the published copy; and no file other
than the ones above and the generated ones changed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pytest
import yaml

from conftest import REPO
from support.numbers import close

RT = "strategy_meetings"

CONTRACT = """\
return_type: strategy_meetings
title: Strategy meetings
frequency: monthly
period_kind: month
period_column: meeting_date
submitted_by: each local authority
grain: One row per strategy meeting held in the month.
columns:
  - name: meeting_id
    type: text
    format: id
    required: true
    max_length: 64
    unique: true
    description: Your reference for the meeting. Unique within the file.
  - name: meeting_date
    type: date
    required: true
    in_period: true
    description: The date of the meeting; inside the return's month.
  - name: meeting_type
    type: enum
    required: true
    values: [initial, review]
    description: An initial strategy meeting or a review.
  - name: police_attended
    type: enum
    required: true
    values: ["yes", "no"]
    description: Did the police attend the meeting?
rules: []
"""

STAGING = """\
-- One row per strategy meeting, as the gate loaded it: typing only (the contract's types).
{{ staged_return('strategy_meetings') }}
"""

CURRENT = """\
{{ config(materialized='view') }}
-- Strategy meetings from the latest accepted version of each return, placed by meeting_date.
{{ current_records('strategy_meetings') }}
"""

KPIS = """\
-- Strategy meeting KPIs, both grains, ALL and each submitting partner.
with meetings as (
    {{ place_events(ref('int_strategy_meetings_current'), 'e.record_key') }}
)

{{ kpi('SMT_MEETINGS', 'strategy_meetings', 'meetings') }}
union all
{{ kpi('SMT_MEETINGS', 'strategy_meetings', 'meetings', dimension='meeting_type') }}
union all
{{ kpi('SMT_POLICE_PCT', 'strategy_meetings', 'meetings', numerator_where="e.police_attended = 'yes'", denominator_where='true') }}
"""

FACT = """\
-- One row per strategy meeting in the latest accepted version of each return.
{{ incremental_fact('strategy_meetings') }}
"""


def _fact_entry() -> dict:
    def col(name, data_type, description):
        return {"name": name, "data_type": data_type, "description": description}

    return {
        "name": "fct_strategy_meetings",
        "description": "One row per strategy meeting in the latest accepted version of each return.",
        "config": {"tags": ["record_level"]},
        "data_tests": [{"holds_exactly_the_latest_versions": {"arguments": {"return_type": RT}}}],
        "columns": [
            col("record_key", "varchar", "load_id:source_row."),
            col("load_id", "varchar", "The accepted file."),
            col("source_row", "integer", "Row number in the partner's file."),
            col("partner_code", "varchar", "The submitting partner."),
            col("return_period", "varchar", "The period of the return."),
            col("meeting_id", "varchar", "The partner's reference."),
            col("meeting_date", "date", "The date of the meeting."),
            col("month", "varchar", "Month of meeting_date."),
            col("financial_year", "varchar", "Financial year of meeting_date."),
            col("meeting_type", "varchar", "initial or review."),
            col("police_attended", "varchar", "yes or no."),
        ],
    }


CATALOGUE_ROWS = (
    'SMT_MEETINGS,Strategy meetings,Child protection,count,neutral,true,false,strategy_meetings,'
    'month|financial_year,meeting_type,,500,"Strategy meetings held, counted in the month of the meeting."\n'
    'SMT_POLICE_PCT,Strategy meetings attended by police,Child protection,percent,higher_is_better,false,false,'
    'strategy_meetings,month|financial_year,,100,510,"Strategy meetings the police attended, as a percentage of all."\n'
)

SCHEDULE_ROWS = "strategy_meetings,NNC,15,2025-02-01,\nstrategy_meetings,WNC,15,2025-02-01,\n"

HEADER = "meeting_id,meeting_date,meeting_type,police_attended\n"
# (landing path, received at, rows). WNC sends nothing for February: missing. NNC's March
# return arrives after its due date (15 April): late.
FILES = [
    (f"{RT}/NNC/2025-02/meetings.csv", "2025-03-05 10:00",
     "M-001,2025-02-03,initial,yes\nM-002,2025-02-10,review,no\nM-003,2025-02-20,initial,yes\n"),
    (f"{RT}/NNC/2025-03/meetings.csv", "2025-04-20 10:00",
     "M-004,2025-03-04,initial,yes\nM-005,2025-03-18,review,yes\n"),
    (f"{RT}/WNC/2025-03/meetings.csv", "2025-04-02 10:00", "W-001,2025-03-07,initial,no\n"),
]

# What the newcomer writes, relative to the project root; everything else that changes is
# generated from the contract by `pkpi docs`.
HAND_WRITTEN = {
    f"include/pkpi/contracts/{RT}.yml",
    f"dbt_project/models/staging/stg_{RT}.sql",
    f"dbt_project/models/intermediate/int_{RT}_current.sql",
    f"dbt_project/models/intermediate/int_kpi_{RT}.sql",
    f"dbt_project/models/marts/fct_{RT}.sql",
    "dbt_project/models/marts/_marts.yml",
    "dbt_project/catalogue/kpi_catalogue.csv",
    "seeds/return_schedule.csv",
}
GENERATED = {
    f"docs/returns/{RT}.md",
    "docs/returns/README.md",  # its table of return types
    f"expectations/gx/expectations/{RT}/values.json",
    f"expectations/gx/expectations/{RT}/ranges.json",
    "dbt_project/models/staging/_raw_sources.yml",
}

COPIED = ("include", "dbt_project", "seeds", "expectations", "docs/returns")
_IGNORE = shutil.ignore_patterns("__pycache__", "*.egg-info", "target", "logs", ".user.yml", "uncommitted")


def _copy_project(root: Path) -> None:
    for part in COPIED:
        shutil.copytree(REPO / part, root / part, ignore=_IGNORE)


def _digests(root: Path) -> dict[str, str]:
    out = {}
    for part in COPIED:
        for path in (root / part).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts:
                out[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def _append(path: Path, text: str) -> None:
    body = path.read_text(encoding="utf-8")
    path.write_text(body + ("" if body.endswith("\n") else "\n") + text, encoding="utf-8")


def _add_return_type(root: Path) -> None:
    """What a newcomer writes to add the fifth return type, and nothing more."""
    (root / f"include/pkpi/contracts/{RT}.yml").write_text(CONTRACT, encoding="utf-8")
    dbt = root / "dbt_project"
    (dbt / f"models/staging/stg_{RT}.sql").write_text(STAGING, encoding="utf-8")
    (dbt / f"models/intermediate/int_{RT}_current.sql").write_text(CURRENT, encoding="utf-8")
    (dbt / f"models/intermediate/int_kpi_{RT}.sql").write_text(KPIS, encoding="utf-8")
    (dbt / f"models/marts/fct_{RT}.sql").write_text(FACT, encoding="utf-8")
    marts = dbt / "models/marts/_marts.yml"
    doc = yaml.safe_load(marts.read_text(encoding="utf-8"))
    doc["models"].append(_fact_entry())
    marts.write_text(yaml.safe_dump(doc, sort_keys=False, width=120), encoding="utf-8")
    _append(dbt / "catalogue/kpi_catalogue.csv", CATALOGUE_ROWS)
    _append(root / "seeds/return_schedule.csv", SCHEDULE_ROWS)


def _drop_files(landing: Path) -> None:
    for relative, received, rows in FILES:
        path = landing / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(HEADER + rows, encoding="utf-8")
        stamp = datetime.strptime(received, "%Y-%m-%d %H:%M").replace(tzinfo=timezone.utc).timestamp()
        os.utime(path, (stamp, stamp))


def _pkpi(root: Path, data: Path, *args: str) -> str:
    """Run the copied project's `pkpi` in its own process; returns what it printed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PKPI_")}
    env.update({
        "PYTHONPATH": str(root / "include"),  # ahead of the installed package: the copy's contracts
        "PKPI_PROJECT_DIR": str(root),
        "PKPI_DATA_DIR": str(data),
        "PKPI_REFERENCE_DIR": str(root / "seeds"),
        "PKPI_LANDING_QUIET_SECONDS": "0",
        "GX_ANALYTICS_ENABLED": "false",
    })
    code = (
        "import sys, pkpi; from pkpi.cli import main; "
        f"assert pkpi.__file__.startswith({str(root)!r}), pkpi.__file__; sys.exit(main(sys.argv[1:]))"
    )
    done = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"pkpi {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def fifth(tmp_path_factory):
    root = tmp_path_factory.mktemp("project")
    data = tmp_path_factory.mktemp("data")
    _copy_project(root)
    before = _digests(root)
    _add_return_type(root)
    docs_output = _pkpi(root, data, "docs")
    _drop_files(data / "landing")
    ingest_output = _pkpi(root, data, "ingest")
    build_output = _pkpi(root, data, "build")
    return {"root": root, "data": data, "before": before, "after": _digests(root),
            "docs": docs_output, "ingest": ingest_output, "build": build_output}


def _query(path: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_only_the_new_files_and_the_generated_ones_change(fifth):
    before, after = fifth["before"], fifth["after"]
    changed = {p for p in after if before.get(p) != after[p]}
    assert not set(before) - set(after), "a file of the project disappeared"
    assert changed == HAND_WRITTEN | GENERATED, sorted(changed ^ (HAND_WRITTEN | GENERATED))


def test_the_docs_suites_and_dbt_sources_pick_it_up(fifth):
    root, data = fifth["root"], fifth["data"]
    page = (root / f"docs/returns/{RT}.md").read_text(encoding="utf-8")
    assert "Strategy meetings" in page and "police_attended" in page
    guide = (root / "docs/returns/README.md").read_text(encoding="utf-8")
    assert f"| `{RT}` | each local authority | month `YYYY-MM` | [{RT}]({RT}.md) |" in guide
    suite = json.loads((root / f"expectations/gx/expectations/{RT}/values.json").read_text(encoding="utf-8"))
    assert suite["meta"]["return_type"] == RT
    sources = yaml.safe_load((root / "dbt_project/models/staging/_raw_sources.yml").read_text(encoding="utf-8"))
    (raw,) = [s for s in sources["sources"] if s["name"] == "raw"]
    (table,) = [t for t in raw["tables"] if t["name"] == RT]
    assert [c["name"] for c in table["columns"]] == [
        "load_id", "source_row", "meeting_id", "meeting_date", "meeting_type", "police_attended"]
    # The dbt docs site documents the new source and models.
    manifest = json.loads((data / "dbt/docs/manifest.json").read_text(encoding="utf-8"))
    assert f"source.pkpi.raw.{RT}" in manifest["sources"]
    for model in (f"stg_{RT}", f"int_{RT}_current", f"int_kpi_{RT}", f"fct_{RT}"):
        assert f"model.pkpi.{model}" in manifest["nodes"], model


def test_the_build_tests_and_builds_it(fifth):
    data = fifth["data"]
    assert "all passed" in fifth["build"], fifth["build"]
    results = json.loads((data / "dbt/target/run_results.json").read_text(encoding="utf-8"))
    ran = {r["unique_id"]: r["status"] for r in results["results"]}
    assert ran[f"model.pkpi.fct_{RT}"] == "success"
    # Its own checks come with it: the facts equal a full rebuild, the enumerations hold.
    assert any(uid.startswith(f"test.pkpi.holds_exactly_the_latest_versions_fct_{RT}") and s == "pass" for uid, s in ran.items())
    assert any(uid.startswith(f"test.pkpi.source_in_contract_enum_raw_{RT}_meeting_type") and s == "pass" for uid, s in ran.items())
    warehouse = data / "warehouse.duckdb"
    assert _query(warehouse, f"select count(*) from mart.fct_{RT}") == [(6,)]
    assert _query(warehouse, f"select count(*) from raw.{RT}") == [(6,)]


def test_the_mart_counts_it(fifth):
    warehouse = fifth["data"] / "warehouse.duckdb"

    def kv(kpi, grain, period, partner="ALL", dimension="total", value="total"):
        rows = _query(warehouse, f"""select numerator, denominator, value from mart.kpi_values
            where kpi_code = '{kpi}' and period_grain = '{grain}' and period = '{period}'
              and partner_code = '{partner}' and dimension = '{dimension}' and dimension_value = '{value}'""")
        assert len(rows) == 1, (kpi, grain, period, partner, dimension, value, rows)
        return rows[0]

    assert kv("SMT_MEETINGS", "month", "2025-03")[2] == 3
    assert kv("SMT_MEETINGS", "month", "2025-03", "NNC")[2] == 2
    assert kv("SMT_MEETINGS", "month", "2025-03", "WNC")[2] == 1
    assert kv("SMT_MEETINGS", "financial_year", "2024-25")[2] == 6
    # The breakdown lists every value of the contract's enumeration, zeros included.
    assert kv("SMT_MEETINGS", "month", "2025-03", dimension="meeting_type", value="initial")[2] == 2
    assert kv("SMT_MEETINGS", "month", "2025-03", dimension="meeting_type", value="review")[2] == 1
    assert kv("SMT_MEETINGS", "month", "2025-03", "WNC", "meeting_type", "review")[2] == 0
    numerator, denominator, value = kv("SMT_POLICE_PCT", "month", "2025-03")
    assert (numerator, denominator) == (2, 3) and close(value, 200 / 3)
    # Its returns are expected by the schedule and their compliance is counted.
    statuses = dict(((p, r), s) for p, r, s in _query(warehouse, f"""
        select partner_code, period, status from mart.fct_return_submissions where return_type = '{RT}'"""))
    assert statuses == {
        ("NNC", "2025-02"): "received_on_time", ("NNC", "2025-03"): "received_late",
        ("WNC", "2025-02"): "missing", ("WNC", "2025-03"): "received_on_time",
    }
    on_time = kv("RET_ON_TIME_PCT", "month", "2025-03", dimension="return_type", value=RT)
    assert on_time[:2] == (1, 2)
    # The scorecard shows it, with the year to date.
    assert _query(warehouse, f"""select period, value, fytd_value from mart.scorecard
        where kpi_code = 'SMT_MEETINGS' order by period""") == [("2025-02", 3.0, 3.0), ("2025-03", 3.0, 6.0)]


def test_the_published_copy_has_it(fifth):
    published = fifth["data"] / "published" / "kpi_mart.duckdb"
    rows = _query(published, "select count(*) from kpi_values where kpi_code like 'SMT_%'")
    assert rows[0][0] > 0
    assert _query(published, "select name from dim_kpi where kpi_code = 'SMT_MEETINGS'") == [("Strategy meetings",)]
    assert _query(published, f"select count(*) from fct_return_submissions where return_type = '{RT}'") == [(4,)]
