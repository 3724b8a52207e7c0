"""A build with nothing new does not run dbt; any change to what the mart is built from does.

The session's small partnership (support.catalogue) is built once; each test changes a private
copy. What the mart is built from (pkpi.build_inputs): the source tables, the reference files,
the dbt project, the command line (vars, reporting month), the threshold and the code.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from pkpi import build_inputs
from pkpi.build import build_mart, dbt_dirs, dbt_vars
from pkpi.faults import CRASH_EXIT_CODE
from pkpi.ingest import ingest_landing
from pkpi.settings import Settings
from support.catalogue import CONTACTS, TODAY, ReturnFile, built_catalogue, copy_of, drop_returns
from support.crash import current_release, release_rows


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return built_catalogue(tmp_path_factory)


def digest(settings: Settings, period: str | None = None, con: duckdb.DuckDBPyConnection | None = None) -> str:
    """What a build of ``period`` would be made from now, read through ``con`` or a read-only one."""
    own = con is None
    con = duckdb.connect(str(settings.warehouse_path), read_only=True) if own else con
    try:
        return build_inputs.inputs_digest(con, settings, dbt_vars(period, settings.dbt_project_dir))
    finally:
        if own:
            con.close()


def test_a_build_with_nothing_new_skips_dbt_publishes_and_says_so(built, tmp_path):
    settings = copy_of(built, tmp_path)
    before = current_release(settings)

    again = build_mart(settings)

    assert again.up_to_date_since is not None and again.nodes == ()
    assert str(again).startswith("The KPI mart is up to date: nothing it is built from has changed")
    assert "pkpi build --full-refresh" in str(again)
    # Published all the same (a copy lost or half-written is made whole), with the same figures.
    assert again.published is not None and current_release(settings) != before
    assert release_rows(current_release(settings)) == release_rows(before)


def _new_return(settings: Settings) -> None:
    drop_returns(settings.landing_dir, [ReturnFile("contacts/PFF/2025-05/pff_contacts_2025-05.csv", "2025-06-01 09:00",
                                                   CONTACTS + "n1,K77,2025-05-02,police,9,male,white,advice,\n")])
    report = ingest_landing(settings, today=TODAY)
    assert len(report.accepted) == 1, report


def _raw_row_edited(settings: Settings) -> None:
    con = duckdb.connect(str(settings.warehouse_path))
    try:
        con.execute("update raw.contacts set sex = case when sex = 'male' then 'female' else 'male' end "
                    "where contact_id = (select min(contact_id) from raw.contacts)")
    finally:
        con.close()


def _reference_edited(settings: Settings) -> None:
    targets = settings.reference_dir / "kpi_targets.csv"
    targets.write_text(targets.read_text().replace("70,5", "75,5"))


CHANGES = {"a new return": _new_return, "a raw row edited by hand": _raw_row_edited,
           "a reference file edited": _reference_edited}


@pytest.mark.parametrize("change", CHANGES)
def test_a_change_to_the_data_or_the_reference_files_changes_the_digest(built, tmp_path, change):
    settings = copy_of(built, tmp_path)
    before = digest(settings)
    CHANGES[change](settings)
    assert digest(settings) != before


def test_the_project_the_month_and_the_threshold_are_inputs(built, tmp_path):
    settings = copy_of(built, tmp_path)
    before = digest(settings)
    assert digest(settings) == before  # the same inputs, the same digest
    assert digest(settings, period="2025-05") != before  # another reporting month: other vars
    assert digest(settings.with_overrides(disclosure_threshold=settings.disclosure_threshold + 1)) != before

    project = tmp_path / "project"
    shutil.copytree(settings.dbt_project_dir, project / "dbt_project", ignore=shutil.ignore_patterns("target", "logs"))
    copied = settings.with_overrides(project_dir=project)
    model = project / "dbt_project" / "models" / "marts" / "kpi_values.sql"
    model.write_text(model.read_text() + "\n-- a comment\n")
    assert digest(copied) != before


def test_a_mart_table_emptied_by_hand_means_the_next_build_has_work(built, tmp_path):
    settings = copy_of(built, tmp_path)
    con = duckdb.connect(str(settings.warehouse_path))
    try:
        unchanged = build_inputs.unchanged_since_last_build(con, digest(settings, con=con))
        assert unchanged is not None
        con.execute("delete from mart.fct_contacts")
        assert build_inputs.unchanged_since_last_build(con, digest(settings, con=con)) is None
    finally:
        con.close()


def test_a_build_killed_before_it_is_recorded_is_run_again_then_recorded(built, tmp_path):
    settings = copy_of(built, tmp_path)
    _reference_edited(settings)  # work to do
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PKPI_")},
           "PKPI_DATA_DIR": str(settings.data_dir), "PKPI_REFERENCE_DIR": str(settings.reference_dir),
           "PKPI_CRASH_AT": "build.decided"}
    run = subprocess.run([str(Path(sys.executable).with_name("pkpi")), "build"], env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == CRASH_EXIT_CODE, run.stdout[-2000:] + run.stderr[-2000:]

    # dbt built and the decisions were stored, but the build was never recorded as good: run again.
    rebuilt = build_mart(settings)
    assert rebuilt.up_to_date_since is None and rebuilt.count("model") > 0
    assert build_mart(settings).up_to_date_since is not None


def test_every_warehouse_table_the_project_reads_is_in_the_digest(built):
    manifest = json.loads((dbt_dirs(built.settings)[0] / "manifest.json").read_text())
    read = {parent for node in manifest["nodes"].values() for parent in node["depends_on"].get("nodes", ())
            if parent.startswith("source.")}
    con = duckdb.connect(str(built.settings.warehouse_path), read_only=True)
    try:
        digested = set(con.execute(
            f"select schema_name || '.' || table_name from duckdb_tables() where {build_inputs.SOURCE_TABLES}").fetchall())
    finally:
        con.close()
    digested = {name for (name,) in digested}
    tables = set()
    for source_id in read:
        source = manifest["sources"][source_id]
        if source["source_name"] == "reference_files":
            continue  # CSV files in the reference folder, digested file by file
        tables.add(f"{source['schema']}.{source['identifier']}")
    assert tables and tables <= digested
