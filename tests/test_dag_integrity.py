"""DAG integrity, in the Astronomer style: every DAG in dags/ imports cleanly and carries the
metadata an on-call engineer relies on; the monthly DAG is wired the way the runbook says."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

REPO = Path(__file__).resolve().parents[1]
DAGS_DIR = REPO / "dags"
# Parsing DAGs needs no metadata database, but importing Airflow creates AIRFLOW_HOME/logs:
# keep that out of the developer's ~/airflow unless they chose an AIRFLOW_HOME themselves.
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="pkpi-test-airflow-home-"))

# Modules that make parsing slow or fragile: stage code, dbt, GX, DuckDB, pandas, plotting.
# The scheduler's DAG processor re-parses every file every few minutes, so DAG files import
# none of these at the top level; tasks import their stage inside the task.
HEAVY_MODULES = (
    "duckdb", "dbt", "great_expectations", "pandas", "matplotlib", "fpdf", "openpyxl", "cosmos",
    "pkpi.ingest", "pkpi.gate", "pkpi.build", "pkpi.scorecard", "pkpi.delivery", "pkpi.mailer",
    "pkpi.warehouse",
)


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS_DIR))


def dag_files() -> list[Path]:
    return sorted(p for p in DAGS_DIR.glob("*.py") if not p.name.startswith("_"))


def test_every_dag_file_imports_without_errors(dagbag):
    assert dag_files(), "dags/ holds no DAG files"
    assert dagbag.import_errors == {}, "\n".join(f"{f}: {e}" for f, e in dagbag.import_errors.items())
    assert "partnership_monthly" in dagbag.dags


def _all_dags():
    from airflow.dag_processing.dagbag import DagBag

    return sorted(DagBag(dag_folder=str(DAGS_DIR)).dags.items())


@pytest.mark.parametrize(("dag_id", "dag"), _all_dags(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_dag_has_an_owner_retries_tags_and_docs(dag_id, dag):
    assert dag.tags, f"{dag_id} has no tags"
    assert dag.doc_md and len(dag.doc_md.strip()) > 100, f"{dag_id} has no doc_md for the UI"
    for task in dag.tasks:
        assert task.owner and task.owner != "airflow", f"{dag_id}.{task.task_id} has the default owner"
        assert task.retries >= 1, f"{dag_id}.{task.task_id} is not retried"
        assert task.execution_timeout is not None, f"{dag_id}.{task.task_id} could hang forever"
        assert task.on_failure_callback, f"{dag_id}.{task.task_id} fails without telling anyone"
    # An aware start date on the partnership's clock: the UI shows the zone the schedule runs on.
    assert dag.start_date.tzinfo is not None, f"{dag_id} has a naive start date"
    assert dag.start_date.utcoffset() is not None
    assert str(dag.timezone.name) == "Europe/London", f"{dag_id} runs on {dag.timezone.name}"


@pytest.mark.parametrize("dag_file", dag_files(), ids=lambda p: p.name)
def test_dag_files_parse_without_importing_heavy_modules(dag_file, tmp_path):
    # A fresh interpreter: this test process has long since imported the stage modules. An
    # empty DagBag first, so that what Airflow loads for itself (plugins such as cosmos's) is
    # not blamed on the DAG file.
    empty = tmp_path / "empty"
    empty.mkdir()
    probe = (
        "import json, sys\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        f"DagBag(dag_folder={str(empty)!r})\n"
        "before = set(sys.modules)\n"
        f"bag = DagBag(dag_folder={str(dag_file)!r})\n"
        "new = set(sys.modules) - before\n"
        f"heavy = sorted({{m if m in {HEAVY_MODULES!r} else m.split('.')[0] for m in new}} & set({HEAVY_MODULES!r}))\n"
        "print(json.dumps({'errors': list(bag.import_errors.values()), 'dags': list(bag.dags), 'heavy': heavy}))\n"
    )
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["errors"] == []
    assert result["dags"], f"{dag_file.name} defines no DAG"
    assert result["heavy"] == [], f"{dag_file.name} imports {result['heavy']} at parse time"


# --- the monthly DAG ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def monthly(dagbag):
    return dagbag.dags["partnership_monthly"]


def test_the_cycle_runs_ingest_build_scorecard_deliver_in_order(monthly):
    assert set(monthly.task_dict) == {"ingest", "build", "scorecard", "deliver"}
    assert monthly.task_dict["ingest"].upstream_task_ids == set()
    assert monthly.task_dict["build"].upstream_task_ids == {"ingest"}
    assert monthly.task_dict["scorecard"].upstream_task_ids == {"build"}
    assert monthly.task_dict["deliver"].upstream_task_ids == {"scorecard"}


def test_warehouse_writers_share_the_one_slot_pool(monthly):
    from pkpi.airflow.names import WRITER_POOL

    assert WRITER_POOL == "duckdb_writer"
    writers = {t.task_id for t in monthly.tasks if t.pool == WRITER_POOL}
    assert writers == {"ingest", "build", "deliver"}
    assert all(t.pool_slots == 1 for t in monthly.tasks)


def test_retries_back_off_exponentially_and_only_for_transient_failures(monthly):
    from pkpi.airflow.defaults import TransientFailuresOnly

    for task in monthly.tasks:
        assert task.retry_exponential_backoff >= 2
        assert task.max_retry_delay is not None
        assert isinstance(task.retry_policy, TransientFailuresOnly)


def test_the_schedule_runs_after_returns_are_due_and_reports_the_month_just_ended(monthly):
    from airflow.serialization.encoders import coerce_to_core_timetable
    from airflow.timetables.base import DataInterval, TimeRestriction

    from pkpi.airflow.params import resolve_period

    assert monthly.catchup is False
    assert monthly.max_active_runs == 1
    timetable = coerce_to_core_timetable(monthly.timetable)
    london = ZoneInfo("Europe/London")
    after = DataInterval.exact(datetime(2026, 4, 1, tzinfo=london))
    info = timetable.next_dagrun_info(
        last_automated_data_interval=after,
        restriction=TimeRestriction(earliest=None, latest=None, catchup=True),
    )
    assert info.logical_date == datetime(2026, 4, 20, 6, 0, tzinfo=london)
    assert resolve_period(info.logical_date, dict(monthly.params)) == "2026-03"


def test_params_default_to_the_scheduled_behaviour_and_reject_bad_values(monthly):
    from airflow.sdk.definitions.param import ParamValidationError

    params = monthly.params
    assert dict(params) == {"period": None, "send": "auto", "force": False}
    period, send, force = (params.get_param(name) for name in ("period", "send", "force"))
    assert period.resolve("2026-03") == "2026-03"
    assert period.resolve(None) is None
    for bad in ("2026-13", "March 2026", "2026-3"):
        with pytest.raises(ParamValidationError):
            period.resolve(bad)
    for value in ("auto", "true", "false"):
        assert send.resolve(value) == value
    with pytest.raises(ParamValidationError):
        send.resolve("sometimes")
    with pytest.raises(ParamValidationError):
        force.resolve("yes")
