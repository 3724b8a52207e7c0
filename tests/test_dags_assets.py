"""The partner returns DAGs: the hourly ingest that announces raw tables as Airflow Assets, the
mart build scheduled on those assets, and the daily reminders.

Unit tests cover the pieces the DAGs are wired from (what counts as waiting in landing/, the
deferrable sensor and its trigger, which raw tables a run changed, the DAG shapes); two
end-to-end tests run the DAGs with ``airflow dags test`` on two months of sample returns and
read the asset events Airflow recorded in its metadata database.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest

from conftest import REPO, SEEDS

LONDON = ZoneInfo("Europe/London")
NEW_DAGS = ("partner_returns_ingest", "partnership_mart_build", "partner_return_reminders")


# --- landing/: what counts as a waiting return ---------------------------------------------


def test_only_finished_uploads_count_as_waiting(tmp_path):
    from pkpi.landing import waiting_returns

    landing = tmp_path / "landing"
    assert waiting_returns(landing) == []  # no landing folder yet: nothing waits
    folder = landing / "contacts" / "NCT" / "2026-03"
    folder.mkdir(parents=True)
    for name in ("march.csv.part", "~$march.xlsx", ".hidden.csv", "upload.crdownload", "x.TMP"):
        (folder / name).write_text("in progress")
    assert waiting_returns(landing) == []
    (folder / "march.csv").write_text("contact_id\n")
    (landing / "stray.csv").write_text("x\n")  # in the wrong place: the gate rejects it, so it waits
    assert sorted(p.name for p in waiting_returns(landing)) == ["march.csv", "stray.csv"]
    assert len(waiting_returns(landing, limit=1)) == 1


def test_files_still_uploading_are_not_waiting_returns():
    """Ingest and the sensor share one rule: partial uploads and lock files are left alone."""
    from pkpi import landing

    for name in ("a.csv.part", "~$a.xlsx", ".a.csv", "a.PARTIAL", "a.filepart"):
        assert landing.is_in_progress(Path(name)), name
    for name in ("a.csv", "a.xlsx", "a.txt"):
        assert not landing.is_in_progress(Path(name)), name


# --- the deferrable sensor and its trigger ---------------------------------------------------


def _first_event(trigger, timeout: float = 10):
    async def first():
        return await asyncio.wait_for(anext(trigger.run()), timeout)

    return asyncio.run(first())


def test_the_trigger_fires_when_a_return_arrives(tmp_path):
    from pkpi.airflow.landing_sensor import ReturnsWaitingTrigger

    landing = tmp_path / "landing"
    deadline = (datetime.now(timezone.utc) + timedelta(minutes=5)).isoformat()
    trigger = ReturnsWaitingTrigger(str(landing), deadline, poke_interval=0.05)

    async def arrive_later():
        await asyncio.sleep(0.2)
        folder = landing / "training" / "ICB" / "2026-03"
        folder.mkdir(parents=True)
        (folder / "march.csv").write_text("record_id\n")

    async def scenario():
        arrival = asyncio.create_task(arrive_later())
        event = await asyncio.wait_for(anext(trigger.run()), 10)
        await arrival
        return event

    assert asyncio.run(scenario()).payload == {"waiting": 1}


def test_the_trigger_gives_up_at_its_deadline_and_survives_serialisation(tmp_path):
    from pkpi.airflow.landing_sensor import ReturnsWaitingTrigger

    deadline = (datetime.now(timezone.utc) + timedelta(seconds=0.3)).isoformat()
    trigger = ReturnsWaitingTrigger(str(tmp_path / "landing"), deadline, poke_interval=0.05)
    classpath, kwargs = trigger.serialize()
    assert classpath == "pkpi.airflow.landing_sensor.ReturnsWaitingTrigger"
    json.dumps(kwargs)  # stored in the metadata database
    assert _first_event(ReturnsWaitingTrigger(**kwargs)).payload == {"waiting": 0}


@pytest.fixture
def sensor(monkeypatch, tmp_path):
    from pkpi.airflow.landing_sensor import ReturnsWaitingSensor

    monkeypatch.setenv("PKPI_DATA_DIR", str(tmp_path / "data"))
    return ReturnsWaitingSensor(task_id="wait_for_returns")


def test_the_sensor_succeeds_at_once_when_a_return_is_waiting(sensor, tmp_path):
    folder = tmp_path / "data" / "landing" / "finance" / "WNC" / "2025-26"
    folder.mkdir(parents=True)
    (folder / "finance.csv").write_text("contribution_type,amount_gbp\n")
    assert sensor.execute({"params": {"wait_minutes": 55}}) == 1


def test_with_nothing_waiting_the_sensor_defers_to_the_trigger_for_the_runs_wait(sensor, tmp_path):
    from airflow.sdk.exceptions import TaskDeferred

    from pkpi.airflow.landing_sensor import DEFERRAL_GRACE, ReturnsWaitingTrigger

    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({"params": {"wait_minutes": 20}})
    trigger = deferred.value.trigger
    assert isinstance(trigger, ReturnsWaitingTrigger)
    assert trigger.landing_dir == str(tmp_path / "data" / "landing")
    remaining = datetime.fromisoformat(trigger.deadline) - datetime.now(timezone.utc)
    assert timedelta(minutes=19) < remaining <= timedelta(minutes=20)
    # Airflow's own timeout comes later: it only fires if the triggerer is not running.
    assert deferred.value.timeout == timedelta(minutes=20) + DEFERRAL_GRACE
    assert deferred.value.method_name == "execute_complete"


def test_no_return_means_a_skip_not_a_failure(sensor):
    from airflow.sdk.exceptions import AirflowSkipException

    with pytest.raises(AirflowSkipException, match="No return is waiting"):
        sensor.execute({"params": {"wait_minutes": 0}})
    with pytest.raises(AirflowSkipException, match="No return arrived in landing/ within 55 minutes"):
        sensor.execute_complete({"params": {}}, {"waiting": 0})
    assert sensor.execute_complete({"params": {}}, {"waiting": 3}) == 3


def test_the_wait_param_must_end_before_the_next_hourly_run():
    from pkpi.airflow.params import WaitParamError, wait_for_run

    assert wait_for_run({}) == timedelta(minutes=55)
    assert wait_for_run({"wait_minutes": None}) == timedelta(minutes=55)
    assert wait_for_run({"wait_minutes": 0}) == timedelta(0)
    assert wait_for_run({"wait_minutes": "10"}) == timedelta(minutes=10)
    for bad in (59, -1, "soon", True):
        with pytest.raises(WaitParamError, match="0 to 58"):
            wait_for_run({"wait_minutes": bad})


# --- assets and what a run changed ------------------------------------------------------------


def test_there_is_one_raw_asset_per_return_contract_and_airflow_keeps_their_uris():
    from airflow.sdk import Asset

    from pkpi.airflow.assets import MART_ASSET, PUBLISHED_ASSET, RAW_ASSETS, SCORECARD_ASSET
    from pkpi.contracts import return_types

    assert list(RAW_ASSETS) == list(return_types())
    for return_type, asset in RAW_ASSETS.items():
        assert asset.name == f"raw.{return_type}"
        assert asset.uri == f"duckdb://warehouse/raw/{return_type}"
        assert Asset(name=asset.name, uri=asset.uri).uri == asset.uri  # Airflow keeps the URI as written
    names = [a.name for a in (*RAW_ASSETS.values(), MART_ASSET, PUBLISHED_ASSET, SCORECARD_ASSET)]
    assert len(set(names)) == len(names)
    assert MART_ASSET.uri == "duckdb://warehouse/mart"
    assert Asset(name=SCORECARD_ASSET.name, uri=SCORECARD_ASSET.uri).uri == "pkpi://exports/scorecard"


def test_the_monthly_cycle_announces_the_mart_its_published_copy_and_the_scorecard(dags):
    from pkpi.airflow.assets import MART_ASSET, PUBLISHED_ASSET, SCORECARD_ASSET

    dag = dags["partnership_monthly"]
    assert dag.task_dict["build"].outlets == [MART_ASSET, PUBLISHED_ASSET]
    assert dag.task_dict["scorecard"].outlets == [SCORECARD_ASSET]


def _audit(settings, rows):
    from pkpi.warehouse import connect

    with connect(settings) as con:
        for return_type, partner, period, status, rows_in_file, validated in rows:
            con.execute(
                "INSERT INTO audit.loads (load_id, return_type, partner_code, period, file_name, landing_path, "
                "checksum_sha256, size_bytes, row_count, is_nil, received_at, validated_at, status) "
                "VALUES (?, ?, ?, ?, 'f.csv', 'landing/f.csv', ?, 10, ?, ?, ?, ?, ?)",
                [uuid.uuid4().hex, return_type, partner, period, uuid.uuid4().hex, rows_in_file,
                 rows_in_file == 0, validated, validated, status],
            )


def test_a_run_announces_the_return_types_whose_raw_tables_gained_accepted_returns(settings):
    from pkpi.airflow.assets import raw_table_changes

    assert raw_table_changes(settings, datetime(2026, 4, 1, tzinfo=timezone.utc)) == {}  # no warehouse yet
    start = datetime(2026, 4, 20, 10, 0)  # naive UTC, as the audit keeps it
    _audit(settings, [
        ("contacts", "NCT", "2026-03", "accepted", 120, start - timedelta(minutes=1)),  # an earlier run
        ("contacts", "NCT", "2026-03", "accepted", 130, start + timedelta(minutes=5)),  # a resubmission
        ("training", "ICB", "2026-03", "accepted", 40, start + timedelta(minutes=6)),
        ("training", "WNC", "2026-03", "accepted", 0, start + timedelta(minutes=7)),  # nil return
        ("training", "NPOL", "2026-03", "rejected", 90, start + timedelta(minutes=8)),
        ("child_deaths", "ICB", "2026-03", "rejected", 3, start + timedelta(minutes=8)),
        ("finance", "WNC", "2025-26", "duplicate", 4, start + timedelta(minutes=9)),
    ])
    since = start.replace(tzinfo=timezone.utc).astimezone(LONDON)  # Airflow hands over aware times
    changes = raw_table_changes(settings, since)
    assert set(changes) == {"contacts", "training"}
    assert changes["contacts"].as_event_extra() == {
        "table": "raw.contacts", "accepted_files": 1, "rows": 130, "nil_returns": 0,
        "partners": ["NCT"], "periods": ["2026-03"],
    }
    training = changes["training"]
    assert (training.files, training.rows, training.nil_returns, training.partners) == (2, 40, 1, ("ICB", "WNC"))
    assert "raw.training gained 2 accepted return(s)" in str(training)
    assert set(raw_table_changes(settings, since, until=since + timedelta(minutes=5))) == {"contacts"}


# --- the DAGs -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dags():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert bag.import_errors == {}
    return bag.dags


def test_the_new_dags_are_in_the_dag_folder(dags):
    assert set(NEW_DAGS) <= set(dags)


@pytest.mark.parametrize("dag_id", NEW_DAGS)
def test_every_task_backs_off_exponentially_and_retries_transient_failures_only(dags, dag_id):
    from pkpi.airflow.defaults import TransientFailuresOnly, notify_engineers_of_failure

    dag = dags[dag_id]
    assert dag.catchup is False and dag.max_active_runs == 1
    for t in dag.tasks:
        assert t.owner == "partnership-data-team"
        assert t.retries >= 1 and t.retry_exponential_backoff >= 2 and t.max_retry_delay is not None
        assert isinstance(t.retry_policy, TransientFailuresOnly)
        assert t.execution_timeout is not None and t.execution_timeout <= timedelta(minutes=30)
        assert notify_engineers_of_failure in t.on_failure_callback


def test_ingest_waits_then_ingests_in_the_writer_pool_then_announces_each_raw_table(dags):
    from airflow.sdk import TriggerRule

    from pkpi.airflow.assets import RAW_ASSETS
    from pkpi.airflow.landing_sensor import ReturnsWaitingSensor

    dag = dags["partner_returns_ingest"]
    assert isinstance(dag.task_dict["wait_for_returns"], ReturnsWaitingSensor)
    assert dag.task_dict["ingest"].upstream_task_ids == {"wait_for_returns"}
    assert {t.task_id for t in dag.tasks if t.pool == "duckdb_writer"} == {"ingest"}
    for return_type, asset in RAW_ASSETS.items():
        announce = dag.task_dict[f"announce_{return_type}"]
        assert announce.upstream_task_ids == {"ingest"}
        assert announce.outlets == [asset]
        # Announced even when ingest failed part-way (what it committed counts), never when skipped.
        assert announce.trigger_rule == TriggerRule.ONE_DONE
    assert dict(dag.params) == {"wait_minutes": 55}


def test_ingest_runs_every_hour_on_the_hour_through_the_clock_change(dags):
    import pendulum
    from airflow.serialization.encoders import coerce_to_core_timetable
    from airflow.timetables.base import DataInterval, TimeRestriction

    timetable = coerce_to_core_timetable(dags["partner_returns_ingest"].timetable)
    restriction = TimeRestriction(earliest=None, latest=None, catchup=True)
    # UK clocks go forward at 01:00 GMT on 29 March 2026: the runs stay an hour apart.
    moment = pendulum.datetime(2026, 3, 29, 0, 30, tz="Europe/London")
    runs = []
    for _ in range(3):
        info = timetable.next_dagrun_info(last_automated_data_interval=DataInterval.exact(moment),
                                          restriction=restriction)
        runs.append(info.logical_date)
        moment = info.logical_date
    assert [r.in_timezone("UTC").strftime("%H:%M") for r in runs] == ["01:00", "02:00", "03:00"]
    assert [r.in_timezone("Europe/London").strftime("%H:%M") for r in runs] == ["02:00", "03:00", "04:00"]


def test_the_mart_build_is_scheduled_on_any_raw_table_and_daily(dags):
    from airflow.sdk import AssetAny, AssetOrTimeSchedule

    from pkpi.airflow.assets import MART_ASSET, PUBLISHED_ASSET, RAW_ASSETS

    dag = dags["partnership_mart_build"]
    schedule = dag.timetable
    assert isinstance(schedule, AssetOrTimeSchedule)
    assert isinstance(schedule.asset_condition, AssetAny)
    assert list(schedule.asset_condition.objects) == list(RAW_ASSETS.values())
    assert dag.task_dict["publish"].upstream_task_ids == {"build"}
    assert dag.task_dict["build"].pool == "duckdb_writer"
    assert dag.task_dict["build"].outlets == [MART_ASSET]
    assert dag.task_dict["publish"].outlets == [PUBLISHED_ASSET]
    assert dict(dag.params) == {"full_refresh": False}


def test_reminders_run_each_morning_and_write_the_ledger_in_the_writer_pool(dags):
    from airflow.serialization.encoders import coerce_to_core_timetable
    from airflow.timetables.base import DataInterval, TimeRestriction

    dag = dags["partner_return_reminders"]
    assert [(t.task_id, t.pool) for t in dag.tasks] == [("send_reminders", "duckdb_writer")]
    timetable = coerce_to_core_timetable(dag.timetable)
    after = DataInterval.exact(datetime(2026, 4, 12, 8, 0, tzinfo=LONDON))
    info = timetable.next_dagrun_info(
        last_automated_data_interval=after, restriction=TimeRestriction(earliest=None, latest=None, catchup=True),
    )
    assert info.logical_date == datetime(2026, 4, 13, 8, 0, tzinfo=LONDON)
    assert dict(dag.params) == {"send": "auto"}


# --- orchestration helpers the new DAGs use --------------------------------------------------


def test_a_run_day_is_the_uk_calendar_day():
    from datetime import date

    from pkpi.airflow.params import run_day

    assert run_day({"logical_date": datetime(2026, 6, 30, 23, 30, tzinfo=timezone.utc)}) == date(2026, 7, 1)
    triggered = SimpleNamespace(run_after=datetime(2026, 1, 5, 7, 0, tzinfo=timezone.utc))
    assert run_day({"logical_date": None, "dag_run": triggered}) == date(2026, 1, 5)


def test_the_failure_alert_of_an_hourly_dag_names_no_reporting_period():
    from pkpi.airflow.defaults import failure_alert

    ti = SimpleNamespace(dag_id="partner_returns_ingest", task_id="ingest", run_id="scheduled__x", try_number=2)
    subject, body, key = failure_alert({"ti": ti, "exception": RuntimeError("disk full"), "params": {}})
    assert subject == "[pkpi] partner_returns_ingest: task ingest failed"
    assert "Reporting period" not in body and "RuntimeError: disk full" in body
    assert key == "alert:partner_returns_ingest:scheduled__x:ingest:2"


# --- end to end: airflow dags test ----------------------------------------------------------


@pytest.fixture(scope="module")
def airflow_env(tmp_path_factory, airflow_database):
    from support.airflow_stack import dags_test_environment, install_database, run_command

    from pkpi.demo import write_sample_returns
    from pkpi.settings import Settings

    root = tmp_path_factory.mktemp("assets-e2e")
    env = dags_test_environment(root, REPO / "dags", SEEDS, {
        # Unpaused, so Airflow queues a mart build for each raw asset event (no scheduler runs here).
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
    })
    settings = Settings.from_env({"PKPI_DATA_DIR": env["PKPI_DATA_DIR"], "PKPI_REFERENCE_DIR": str(SEEDS)})
    summary = write_sample_returns(settings, first_month="2026-02", last_month="2026-03")
    airflow = str(Path(sys.executable).with_name("airflow"))
    install_database(airflow_database, Path(env["AIRFLOW_HOME"]))  # as `airflow db migrate` leaves it

    def dags_test(dag_id: str, logical_date: str, conf: dict | None = None):
        args = [airflow, "dags", "test", dag_id, logical_date]
        if conf is not None:
            args += ["-c", json.dumps(conf)]
        return run_command(args, env, timeout=600, cwd=REPO, check=False)

    def query(sql: str, *params) -> list[tuple]:
        with sqlite3.connect(root / "airflow" / "airflow.db") as db:
            return db.execute(sql, params).fetchall()

    return SimpleNamespace(settings=settings, summary=summary, dags_test=dags_test, query=query)


def _asset_events(env, dag_id: str) -> dict[str, list[dict]]:
    events: dict[str, list[dict]] = {}
    for name, extra in env.query(
        "SELECT a.name, e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id "
        "WHERE e.source_dag_id = ? ORDER BY e.id", dag_id,
    ):
        events.setdefault(name, []).append(json.loads(extra) if extra else {})
    return events


def _task_states(env, dag_id: str, logical_date: str) -> dict[str, str]:
    rows = env.query(
        "SELECT ti.task_id, ti.state FROM task_instance ti JOIN dag_run r "
        "ON r.dag_id = ti.dag_id AND r.run_id = ti.run_id WHERE ti.dag_id = ? AND r.logical_date LIKE ?",
        dag_id, f"{logical_date}%",
    )
    return dict(rows)


@pytest.fixture(scope="module")
def ingested(airflow_env):
    """One hourly ingest run, with the two months of sample returns waiting in landing/."""
    return airflow_env.dags_test("partner_returns_ingest", "2026-04-01T09:00:00+00:00")


@pytest.mark.e2e
def test_ingest_announces_each_raw_table_it_changed_and_queues_the_mart_build(airflow_env, ingested):
    assert ingested.returncode == 0, ingested.stdout[-6000:]
    assert set(_task_states(airflow_env, "partner_returns_ingest", "2026-04-01 09:00").values()) == {"success"}

    events = _asset_events(airflow_env, "partner_returns_ingest")
    assert sorted(events) == ["raw.child_deaths", "raw.contacts", "raw.finance", "raw.training"]
    written = airflow_env.summary.returns
    for name, [extra] in events.items():
        return_type = name.split(".", 1)[1]
        mine = [r for r in written if r.return_type == return_type and not (
            airflow_env.summary.planted_rejection.return_type == return_type
            and airflow_env.summary.planted_rejection.partner_code == r.partner_code
            and airflow_env.summary.planted_rejection.period == r.period)]
        assert extra["accepted_files"] == len(mine), name
        assert extra["rows"] == sum(r.rows for r in mine), name
    assert events["raw.contacts"][0]["periods"] == ["2026-02", "2026-03"]

    queued = airflow_env.query(
        "SELECT a.name FROM asset_dag_run_queue q JOIN asset a ON a.id = q.asset_id WHERE q.target_dag_id = ?",
        "partnership_mart_build",
    )
    assert sorted(n for (n,) in queued) == sorted(events)  # the scheduler would start the mart build

    # The next hour, with nothing in landing: the sensor skips and nothing is announced.
    idle = airflow_env.dags_test("partner_returns_ingest", "2026-04-01T10:00:00+00:00", {"wait_minutes": 0})
    assert idle.returncode == 0, idle.stdout[-6000:]
    states = _task_states(airflow_env, "partner_returns_ingest", "2026-04-01 10:00")
    assert set(states.values()) == {"skipped"} and len(states) == 6
    assert _asset_events(airflow_env, "partner_returns_ingest") == events


@pytest.mark.e2e
def test_the_mart_build_builds_publishes_and_announces_the_mart(airflow_env, ingested):
    from pkpi.query import query_published

    assert ingested.returncode == 0, ingested.stdout[-6000:]
    run = airflow_env.dags_test("partnership_mart_build", "2026-04-01T09:30:00+00:00")
    assert run.returncode == 0, run.stdout[-6000:]
    assert _task_states(airflow_env, "partnership_mart_build", "2026-04-01 09:30") == {
        "build": "success", "publish": "success",
    }
    events = _asset_events(airflow_env, "partnership_mart_build")
    assert sorted(events) == ["mart", "published.kpi_mart"]
    assert events["mart"][0]["model"] >= 30 and events["mart"][0]["test"] >= 100
    rows = query_published(airflow_env.settings, "select count(*) from kpi_values where period = '2026-03'").rows
    assert rows[0][0] > 0
