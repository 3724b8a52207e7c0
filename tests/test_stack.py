"""The production stack, started for real: docker-compose up, one monthly cycle, one email.

docker-compose.yml with docker/compose.offline.yml, on a dockerd of the test's own (see
``support/docker_stack.py``: images built from a locally made Debian base, cached between runs,
host networking on 127.0.0.1 only). One story, played once for the module:

1. ``docker-compose up`` (v1, the one Debian packages): every health check passes; the init
   service migrated the database, created the admin user and the ``duckdb_writer`` pool.
2. One month of sample returns is dropped into the data volume, and ``partnership_monthly`` is
   triggered over the REST API with ``send=true``; it runs on the Celery worker. The workers are
   scaled to two meanwhile (a worker takes minutes to start on a busy machine).
3. The scorecard files are in the volume, the published copy opens read-only from the host, and
   exactly one scorecard email reached the mail catcher.
4. With two workers, the ingest DAG runs again, on a second month, beside a rebuild: the pool
   keeps one warehouse writer at a time.
5. ``docker-compose down -v`` leaves nothing running.

Set-up and run times are printed (``[stack]`` lines; ``pytest -s`` shows them as they happen).
"""

from __future__ import annotations

import email
import time
import uuid
from datetime import datetime
from email import policy
from pathlib import Path

import pytest

from conftest import SEEDS
from support.airflow_stack import AirflowApi
from support.docker_stack import (
    LOGGED, ComposeStack, _log, built_images, private_dockerd, require_docker, stack_environment,
)

# The story is one module fixture, images and all: up to half an hour on a cold, busy machine.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(2400)]
MONTHLY, INGEST = "partnership_monthly", "partner_returns_ingest"
PERIOD, SECOND_PERIOD = "2026-03", "2026-02"
SERVICES = ["postgres", "redis", "mailpit", "airflow-apiserver", "airflow-scheduler",
            "airflow-dag-processor", "airflow-triggerer", "airflow-worker"]
RUN_TIMEOUT = 1200


def _write_returns(data: Path, month: str) -> int:
    """One month of sample returns into the volume's landing/, owned as the containers' user."""
    import os

    from pkpi.demo import write_sample_returns
    from pkpi.settings import Settings

    summary = write_sample_returns(Settings(data_dir=data, reference_dir=SEEDS), first_month=month, last_month=month)
    for path in [data, *data.rglob("*")]:
        os.chown(path, 50000, 0, follow_symlinks=False)
    return summary.files_written


def _wait_for_runs(api: AirflowApi, dag_id: str, run_ids: list[str], timeout: float) -> dict[str, dict]:
    deadline = time.monotonic() + timeout
    while True:
        runs = {r: api.dag_run(dag_id, r) for r in run_ids}
        if all(run["state"] in ("success", "failed") for run in runs.values()):
            return runs
        if time.monotonic() > deadline:
            tasks = {r: {t: ti["state"] for t, ti in api.task_instances(dag_id, r).items()} for r in run_ids}
            raise AssertionError(f"{dag_id} runs not finished after {timeout:.0f}s: "
                                 f"{ {r: v['state'] for r, v in runs.items()} }; their tasks: {tasks}")
        time.sleep(5)


def _wait_for_dag(api: AirflowApi, dag_id: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            api.dag(dag_id)
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(3)


@pytest.fixture(scope="module")
def story(tmp_path_factory):
    require_docker()
    root = Path(tmp_path_factory.mktemp("stack"))
    started = time.monotonic()
    # A short path: unix sockets are limited to about 100 characters.
    with private_dockerd(Path("/tmp") / f"pkpi-dockerd-{uuid.uuid4().hex[:8]}") as docker:
        with built_images(docker, root) as timings:
            _log(f"images ready in {time.monotonic() - started:.0f}s (" + ", ".join(f"{k} {v:.0f}s" for k, v in timings.items()) + ")")
            project = f"pkpistack{uuid.uuid4().hex[:6]}"
            env, ports, mail_dir = stack_environment(root, project)
            stack = ComposeStack(docker, project, env, ports, mail_dir)
            facts: dict = {"timings": timings, "log": LOGGED}
            try:
                up = time.monotonic()
                stack.compose("up", "-d", "--no-build")
                stack.wait_healthy(SERVICES)
                facts["up_seconds"] = time.monotonic() - up
                _log(f"stack healthy in {facts['up_seconds']:.0f}s")
                [init] = stack.containers("airflow-init")
                facts["init_exit"] = init["State"]["ExitCode"]
                facts["migrations"] = stack.compose("exec", "-T", "airflow-scheduler", "airflow", "db",
                                                    "check-migrations", "-t", "0", check=False)
                facts["migrations_ok"] = "exited with status" not in facts["migrations"]
                api = AirflowApi(f"http://127.0.0.1:{ports['API']}", "admin", "admin")
                facts["pool"] = api.request("GET", "/pools/duckdb_writer")

                data = stack.volume_path("pkpi-data")
                facts["files_dropped"] = _write_returns(data, PERIOD)
                _wait_for_dag(api, MONTHLY)
                api.set_paused(MONTHLY, False)
                cycle = time.monotonic()
                run = api.trigger(MONTHLY, None, {"period": PERIOD, "send": "true"})
                # The second worker starts while the cycle runs (on whichever worker is free).
                stack.compose("up", "-d", "--no-build", "--no-recreate", "--no-deps", "--scale", "airflow-worker=2",
                              "airflow-worker")  # the worker alone: init is not run again
                facts["monthly"] = _wait_for_runs(api, MONTHLY, [run["dag_run_id"]], RUN_TIMEOUT)[run["dag_run_id"]]
                facts["monthly_tasks"] = api.task_instances(MONTHLY, run["dag_run_id"])
                facts["cycle_seconds"] = time.monotonic() - cycle
                _log(f"monthly cycle {facts['monthly']['state']} in {facts['cycle_seconds']:.0f}s")
                # What the host sees in the volume, read now: down -v deletes it.
                exports = data / "exports" / PERIOD
                facts["scorecard_files"] = {p.name: p.stat().st_size for p in exports.iterdir()} if exports.is_dir() else {}
                facts["published_rows"] = _published_rows(data, PERIOD)
                facts["mail"] = stack.mail()
                facts["other_monthly_runs"] = [r for r in api.dag_runs(MONTHLY) if r["dag_run_id"] != run["dag_run_id"]]
                facts["worker_log"] = stack.compose("logs", "--no-color", "airflow-worker", check=False)

                # Two workers, the ingest DAG on a second month beside a rebuild without email.
                stack.wait_healthy(["airflow-worker"])
                facts["workers"] = len(stack.containers("airflow-worker"))
                _write_returns(data, SECOND_PERIOD)
                _wait_for_dag(api, INGEST)
                api.set_paused(INGEST, False)
                ingest = api.trigger(INGEST, None, {"wait_minutes": 0})
                rebuild = api.trigger(MONTHLY, None, {"period": SECOND_PERIOD, "send": "false"})
                facts["ingest"] = _wait_for_runs(api, INGEST, [ingest["dag_run_id"]], RUN_TIMEOUT)[ingest["dag_run_id"]]
                facts["rebuild"] = _wait_for_runs(api, MONTHLY, [rebuild["dag_run_id"]], RUN_TIMEOUT)[rebuild["dag_run_id"]]
                facts["writers"] = [
                    ti for dag_id, run_id in ((INGEST, ingest["dag_run_id"]), (MONTHLY, rebuild["dag_run_id"]),
                                              (MONTHLY, run["dag_run_id"]))
                    for ti in api.task_instances(dag_id, run_id).values() if ti["pool"] == "duckdb_writer"]
                facts["mail_after"] = stack.mail()
                api.close()
            finally:
                down = time.monotonic()
                stack.compose("down", "-v", "--remove-orphans", timeout=600, check=False)
                facts["left_running"] = stack.containers()
                facts["volumes_left"] = [v for v in docker.run("volume", "ls", "-q").split() if v.startswith(project)]
                _log(f"down in {time.monotonic() - down:.0f}s; whole test {time.monotonic() - started:.0f}s")
    return facts


def test_every_service_comes_up_healthy_and_init_prepared_airflow(story):
    assert story["init_exit"] == 0
    assert story["migrations_ok"], story["migrations"]
    assert story["pool"]["slots"] == 1


def test_the_monthly_cycle_runs_on_the_celery_worker(story):
    assert story["monthly"]["state"] == "success", story["monthly_tasks"]
    tasks = story["monthly_tasks"]
    assert {t: ti["state"] for t, ti in tasks.items()} == {
        "ingest": "success", "build": "success", "scorecard": "success", "deliver": "success"}
    # The Celery worker received each task of the run.
    run_id = story["monthly"]["dag_run_id"]
    received = [line for line in story["worker_log"].splitlines() if run_id in line]
    for task_id in tasks:
        assert any(task_id in line for line in received), f"the worker's log never names {task_id} of {run_id}"


def test_the_scorecard_files_are_in_the_volume(story):
    for name in ("scorecard.html", "scorecard.pdf", "scorecard.xlsx", "scorecard.csv"):
        assert story["scorecard_files"].get(name, 0) > 0, (name, story["scorecard_files"])


def _published_rows(data: Path, period: str) -> int:
    """The published copy, opened read-only from the host as an analyst's tool would."""
    import duckdb

    con = duckdb.connect(str(data / "published" / "kpi_mart.duckdb"), read_only=True)
    try:
        return con.execute("select count(*) from kpi_values where period = ?", [period]).fetchone()[0]
    finally:
        con.close()


def test_the_published_copy_opens_read_only_from_the_host(story):
    assert story["published_rows"] > 0


def test_exactly_one_scorecard_email_reached_the_mail_catcher(story):
    scorecards = [m for m in map(lambda raw: email.message_from_bytes(raw, policy=policy.default), story["mail_after"])
                  if "scorecard" in m["Subject"].lower()]
    # The second month's rebuild ran with send=false; schedules are off, so no other run ran.
    assert [m["Subject"] for m in scorecards] == [m["Subject"] for m in scorecards if "March 2026" in m["Subject"]]
    assert len(scorecards) == 1, [m["Subject"] for m in scorecards]
    assert story["other_monthly_runs"] == []


def test_with_two_workers_the_pool_keeps_one_writer_at_a_time(story):
    assert story["workers"] == 2
    assert story["ingest"]["state"] == "success" and story["rebuild"]["state"] == "success"
    spans = sorted((datetime.fromisoformat(ti["start_date"]), datetime.fromisoformat(ti["end_date"]), ti["task_id"])
                   for ti in story["writers"] if ti["start_date"] and ti["end_date"])
    assert len(spans) >= 5  # ingest and build of the rebuild, ingest, and the first run's three
    for (_, end, first), (start, _, second) in zip(spans, spans[1:]):
        assert start >= end, f"{first} and {second} wrote to the warehouse at the same time"


def test_down_leaves_nothing_running(story):
    assert story["left_running"] == []
    assert story["volumes_left"] == []


def test_set_up_and_run_times_are_in_the_test_runs_summary(story, record_property):
    # tests/conftest.py prints a test's "summary" properties at the end of the run.
    said = "\n".join(story["log"])
    for step in ("images ready in", "stack healthy in", "monthly cycle success in", "down in"):
        assert step in said, said
    record_property("summary", said)
