"""The production stack, started for real: docker-compose up, a monthly cycle, one email, a backfill.

docker-compose.yml with docker/compose.offline.yml, on a dockerd of the test's own (see
``support/docker_stack.py``: images built from a locally made Debian base, cached between runs,
host networking on 127.0.0.1 only). It is also the suite's test of Airflow deployed: a real
scheduler, DAG processor, triggerer and API server, tasks on Celery workers. One story, played
once for the module:

1. ``docker-compose up`` (v1, the one Debian packages): every health check passes; the init
   service migrated the database, created the admin user and the ``duckdb_writer`` pool.
2. Three months of sample returns are dropped into the data volume, and ``partnership_monthly``
   is triggered for March over the REST API with ``send=true``; it runs on the Celery worker.
   The workers are scaled to two meanwhile (a worker takes minutes to start on a busy machine).
3. While that run's build holds the warehouse, a partner's February return is sent again and
   ``pkpi ingest`` is run in a container, as the runbook does: a writer outside Airflow's pool,
   which must wait for the warehouse rather than fail.
4. The scorecard files are in the volume and count March's returns, the published copy opens
   read-only from the host, and exactly one scorecard email reached the mail catcher.
5. With two workers, the ingest DAG loads a fourth month while ``airflow backfill create`` (the
   runbook's command) rebuilds January and February: the pool keeps one warehouse writer at a
   time, each backfilled month's scorecard counts its latest returns, and a backfill emails nobody.
6. ``docker-compose down -v`` leaves nothing running.

Set-up and run times are printed (``[stack]`` lines; ``pytest -s`` shows them as they happen).
"""

from __future__ import annotations

import csv
import email
import io
import os
import time
import uuid
from contextlib import ExitStack
from datetime import datetime
from email import policy
from pathlib import Path

import pytest

from conftest import SEEDS
from support.airflow_stack import AirflowApi
from support.docker_stack import (
    LOGGED, ComposeStack, StackError, _log, built_images, private_dockerd, require_docker, stack_environment,
)

# The story is one module fixture, images and all: up to half an hour on a cold, busy machine.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(2400)]
MONTHLY, INGEST = "partnership_monthly", "partner_returns_ingest"
FIRST_PERIOD, PERIOD, LATER_PERIOD = "2026-01", "2026-03", "2026-04"
RESUBMITTED_PERIOD = "2026-02"
# The schedule's ticks in this window are 20 February and 20 March: they report on January and
# February, the months before them (docs/runbook.md, "Backfilling").
BACKFILL_WINDOW, BACKFILL_PERIODS = ("2026-02-01", "2026-03-31"), ("2026-01", "2026-02")
SERVICES = ["postgres", "redis", "mailpit", "airflow-apiserver", "airflow-scheduler",
            "airflow-dag-processor", "airflow-triggerer", "airflow-worker"]
RUN_TIMEOUT = 1200
CONTAINER_USER = (50000, 0)  # AIRFLOW_UID and group 0, as the compose file runs every container


def _own(path: Path) -> None:
    os.chown(path, *CONTAINER_USER, follow_symlinks=False)


def _write_returns(data: Path, first: str, last: str):
    """Sample returns for these months into the volume's landing/, owned as the containers' user."""
    from pkpi.demo import write_sample_returns
    from pkpi.settings import Settings

    summary = write_sample_returns(Settings(data_dir=data, reference_dir=SEEDS), first_month=first, last_month=last)
    for path in [data, *data.rglob("*")]:
        _own(path)
    return summary


def _sample(summary, return_type: str, period: str):
    [written] = [r for r in summary.returns if r.return_type == return_type and r.period == period]
    return written


def _read_csv(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def _resubmit(data: Path, original, original_text: str) -> tuple[Path, list[dict]]:
    """The return sent again without its 'nfa' contacts (as if recorded in error), written as a
    partner's upload would be: under a temporary name, then renamed, sent ten minutes ago."""
    rows = _read_csv(original_text)
    kept = [r for r in rows if r["outcome"] != "nfa"]
    assert 0 < len(kept) < len(rows)
    folder = original.path.parent
    path, partial = folder / "contacts-resubmitted.csv", folder / "contacts-resubmitted.csv.tmp"
    with open(partial, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(kept)
    sent = time.time() - 600
    os.utime(partial, (sent, sent))
    _own(partial)
    partial.chmod(0o660)
    partial.rename(path)
    return path, kept


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


def _wait_for_task(api: AirflowApi, dag_id: str, run_id: str, task_id: str, timeout: float) -> str:
    """Until the task is running or finished; returns its state then."""
    deadline = time.monotonic() + timeout
    while True:
        state = api.task_instances(dag_id, run_id).get(task_id, {}).get("state")
        if state in ("running", "success", "failed", "upstream_failed", "skipped") or time.monotonic() > deadline:
            return state
        time.sleep(1)


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


def _scorecard(data: Path, period: str) -> dict[str, dict]:
    path = data / "exports" / period / "scorecard.csv"
    return {row["kpi_code"]: row for row in _read_csv(path.read_text(encoding="utf-8-sig"))} if path.is_file() else {}


def _up(stack: ComposeStack, facts: dict) -> AirflowApi:
    """1. Every service healthy; what init did."""
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
    api = AirflowApi(f"http://127.0.0.1:{stack.ports['API']}", "admin", "admin")
    facts["pool"] = api.request("GET", "/pools/duckdb_writer")
    return api


def _monthly_cycle(stack: ComposeStack, api: AirflowApi, data: Path, facts: dict) -> None:
    """2-4. March's cycle on the Celery worker, a second writer outside Airflow during its build."""
    summary = _write_returns(data, FIRST_PERIOD, PERIOD)
    facts["summary"] = summary
    original = _sample(summary, "contacts", RESUBMITTED_PERIOD)
    original_text = original.path.read_text(encoding="utf-8")  # read now: ingest archives it
    facts["march_rows"] = _read_csv(_sample(summary, "contacts", PERIOD).path.read_text(encoding="utf-8"))
    _wait_for_dag(api, MONTHLY)
    api.set_paused(MONTHLY, False)
    cycle = time.monotonic()
    run = api.trigger(MONTHLY, None, {"period": PERIOD, "send": "true"})
    run_id = facts["monthly_run_id"] = run["dag_run_id"]
    # The second worker starts while the cycle runs (on whichever worker is free).
    stack.compose("up", "-d", "--no-build", "--no-recreate", "--no-deps", "--scale", "airflow-worker=2",
                  "airflow-worker")  # the worker alone: init is not run again

    facts["build_state_at_cli_ingest"] = _wait_for_task(api, MONTHLY, run_id, "build", RUN_TIMEOUT)
    facts["resubmission"], facts["resubmitted_rows"] = _resubmit(data, original, original_text)
    try:
        facts["cli_ingest"] = stack.compose("exec", "-T", "airflow-scheduler", "pkpi", "ingest", timeout=RUN_TIMEOUT)
        facts["cli_ingest_ok"] = True
    except StackError as failed:
        facts["cli_ingest"], facts["cli_ingest_ok"] = str(failed), False

    facts["monthly"] = _wait_for_runs(api, MONTHLY, [run_id], RUN_TIMEOUT)[run_id]
    facts["monthly_tasks"] = api.task_instances(MONTHLY, run_id)
    facts["cycle_seconds"] = time.monotonic() - cycle
    facts["resubmission_left_landing"] = not facts["resubmission"].exists()
    _log(f"monthly cycle {facts['monthly']['state']} in {facts['cycle_seconds']:.0f}s")
    exports = data / "exports" / PERIOD
    facts["scorecard_files"] = {p.name: p.stat().st_size for p in exports.iterdir()} if exports.is_dir() else {}
    facts["march_scorecard"] = _scorecard(data, PERIOD)
    facts["published_rows"] = _published_rows(data, PERIOD)
    facts["mail"] = stack.mail()
    facts["worker_log"] = stack.compose("logs", "--no-color", "airflow-worker", check=False)


def _backfill_beside_the_ingest_dag(stack: ComposeStack, api: AirflowApi, data: Path, facts: dict) -> None:
    """5. Two workers: the ingest DAG on a fourth month while a backfill rebuilds two months."""
    started = time.monotonic()
    stack.wait_healthy(["airflow-worker"])
    facts["workers"] = len(stack.containers("airflow-worker"))
    _write_returns(data, LATER_PERIOD, LATER_PERIOD)
    _wait_for_dag(api, INGEST)
    api.set_paused(INGEST, False)
    ingest = api.trigger(INGEST, None, {"wait_minutes": 0})["dag_run_id"]
    stack.compose("exec", "-T", "airflow-scheduler", "airflow", "backfill", "create", "--dag-id", MONTHLY,
                  "--from-date", BACKFILL_WINDOW[0], "--to-date", BACKFILL_WINDOW[1], "--max-active-runs", "2")
    backfill = [r["dag_run_id"] for r in api.dag_runs(MONTHLY) if r["run_type"] == "backfill"]
    facts["ingest"] = _wait_for_runs(api, INGEST, [ingest], RUN_TIMEOUT)[ingest]
    facts["backfill"] = _wait_for_runs(api, MONTHLY, backfill, RUN_TIMEOUT)
    facts["backfill_tasks"] = {r: api.task_instances(MONTHLY, r) for r in backfill}
    facts["other_monthly_runs"] = [r for r in api.dag_runs(MONTHLY)
                                   if r["dag_run_id"] != facts["monthly_run_id"] and r["run_type"] != "backfill"]
    facts["writers"] = [ti for dag_id, run_id in [(INGEST, ingest), (MONTHLY, facts["monthly_run_id"]),
                                                  *((MONTHLY, r) for r in backfill)]
                        for ti in api.task_instances(dag_id, run_id).values()
                        # A skipped task (a backfill's deliver) never ran, so it wrote nothing.
                        if ti["pool"] == "duckdb_writer" and ti["state"] == "success"]
    facts["backfill_scorecards"] = {p: _scorecard(data, p) for p in BACKFILL_PERIODS}
    facts["mail_after"] = stack.mail()
    facts["warehouse"] = _warehouse_facts(data, facts["resubmission"].name)
    _log(f"ingest DAG {facts['ingest']['state']} beside a backfill of {len(backfill)} month(s) "
         f"in {time.monotonic() - started:.0f}s")


def _warehouse_facts(data: Path, resubmission: str) -> dict:
    """Read from the host with the stack idle: how the resubmission and the backfill were recorded."""
    from pkpi.settings import Settings
    from pkpi.warehouse import connect

    with connect(Settings(data_dir=data, reference_dir=SEEDS), read_only=True) as con:
        return {
            "resubmission_loads": con.execute(
                "SELECT status, row_count FROM audit.loads WHERE file_name = ?", [resubmission]).fetchall(),
            # No partial loads anywhere: every accepted file has exactly its rows in raw.
            "mismatched_loads": con.execute("""
                SELECT l.file_name, l.row_count, count(c.load_id)
                FROM audit.loads l LEFT JOIN raw.contacts c ON c.load_id = l.load_id
                WHERE l.status = 'accepted' AND l.return_type = 'contacts'
                GROUP BY l.file_name, l.row_count HAVING l.row_count <> count(c.load_id)""").fetchall(),
            "later_accepted": con.execute(
                "SELECT count(*) FROM audit.loads WHERE period = ? AND status = 'accepted'", [LATER_PERIOD]).fetchone()[0],
            "backfill_emails": con.execute(
                "SELECT kind, period FROM audit.emails WHERE period IN (?, ?)", list(BACKFILL_PERIODS)).fetchall(),
        }


@pytest.fixture(scope="module")
def story(tmp_path_factory):
    require_docker()
    root = Path(tmp_path_factory.mktemp("stack"))
    started = time.monotonic()
    facts: dict = {"log": LOGGED}
    with ExitStack() as cleanup:
        # A short path: unix sockets are limited to about 100 characters.
        docker = cleanup.enter_context(private_dockerd(Path("/tmp") / f"pkpi-dockerd-{uuid.uuid4().hex[:8]}"))
        facts["timings"] = timings = cleanup.enter_context(built_images(docker, root))
        _log(f"images ready in {time.monotonic() - started:.0f}s (" + ", ".join(f"{k} {v:.0f}s" for k, v in timings.items()) + ")")
        project = f"pkpistack{uuid.uuid4().hex[:6]}"
        stack = ComposeStack(docker, project, *stack_environment(root, project))
        cleanup.callback(_down, stack, facts, started)
        api = _up(stack, facts)
        cleanup.callback(api.close)
        data = stack.volume_path("pkpi-data")  # what the host sees in the volume; down -v deletes it
        _monthly_cycle(stack, api, data, facts)
        _backfill_beside_the_ingest_dag(stack, api, data, facts)
    return facts


def _down(stack: ComposeStack, facts: dict, started: float) -> None:
    """6. Always, even after a failure: nothing of the stack is left."""
    down = time.monotonic()
    stack.compose("down", "-v", "--remove-orphans", timeout=600, check=False)
    facts["left_running"] = stack.containers()
    facts["volumes_left"] = [v for v in stack.docker.run("volume", "ls", "-q").split() if v.startswith(stack.project)]
    _log(f"down in {time.monotonic() - down:.0f}s; whole test {time.monotonic() - started:.0f}s")


def _published_rows(data: Path, period: str) -> int:
    """The published copy, opened read-only from the host as an analyst's tool would."""
    import duckdb

    con = duckdb.connect(str(data / "published" / "kpi_mart.duckdb"), read_only=True)
    try:
        return con.execute("select count(*) from kpi_values where period = ?", [period]).fetchone()[0]
    finally:
        con.close()


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


def test_the_scorecard_files_are_in_the_volume_and_count_the_months_returns(story):
    for name in ("scorecard.html", "scorecard.pdf", "scorecard.xlsx", "scorecard.csv"):
        assert story["scorecard_files"].get(name, 0) > 0, (name, story["scorecard_files"])
    rows, card = story["march_rows"], story["march_scorecard"]
    referrals = sum(1 for r in rows if r["outcome"] == "referral")
    assert float(card["CON_CONTACTS"]["value"]) == len(rows)
    assert float(card["CON_CONVERSION_PCT"]["value"]) == pytest.approx(100 * referrals / len(rows), abs=0.05)
    # One training return rejected, one missing: the training measures wait, the front door does not.
    assert card["TRN_ATTENDANCES"]["provisional"].lower() == "true"
    assert card["CON_CONTACTS"]["provisional"].lower() == "false"


def test_the_published_copy_opens_read_only_from_the_host(story):
    assert story["published_rows"] > 0


def test_exactly_one_scorecard_email_reached_the_mail_catcher(story):
    scorecards = [m for m in map(lambda raw: email.message_from_bytes(raw, policy=policy.default), story["mail_after"])
                  if "scorecard" in m["Subject"].lower()]
    # The backfill sent nothing; schedules are off, so no other run ran.
    assert [m["Subject"] for m in scorecards] == [m["Subject"] for m in scorecards if "March 2026" in m["Subject"]]
    assert len(scorecards) == 1, [m["Subject"] for m in scorecards]
    assert story["other_monthly_runs"] == []


def test_an_ingest_in_a_container_during_the_build_waits_and_loads_its_return_once(story):
    # Started while the run's build task held the warehouse: both finishing means the second
    # writer queued on the warehouse's lock instead of failing.
    assert story["build_state_at_cli_ingest"] == "running"
    assert story["cli_ingest_ok"], story["cli_ingest"][-3000:]
    assert story["monthly"]["state"] == "success"
    assert story["resubmission_left_landing"]  # it leaves landing only once its outcome is committed
    assert story["warehouse"]["resubmission_loads"] == [("accepted", len(story["resubmitted_rows"]))]
    assert story["warehouse"]["mismatched_loads"] == []


def test_with_two_workers_the_pool_keeps_one_writer_at_a_time(story):
    assert story["workers"] == 2
    assert story["ingest"]["state"] == "success"
    assert story["warehouse"]["later_accepted"] > 0  # the ingest DAG loaded the fourth month
    spans = sorted((datetime.fromisoformat(ti["start_date"]), datetime.fromisoformat(ti["end_date"]), ti["task_id"])
                   for ti in story["writers"] if ti["start_date"] and ti["end_date"])
    assert len(spans) >= 8  # ingest; each backfill run's ingest and build; the first run's three
    for (_, end, first), (start, _, second) in zip(spans, spans[1:]):
        assert start >= end, f"{first} and {second} wrote to the warehouse at the same time"


def test_a_backfill_builds_each_months_scorecard_from_the_latest_returns_and_emails_nobody(story):
    runs = sorted(story["backfill"].values(), key=lambda r: r["logical_date"])
    assert [r["logical_date"][:10] for r in runs] == ["2026-02-20", "2026-03-20"]
    for run in runs:
        states = {t: ti["state"] for t, ti in story["backfill_tasks"][run["dag_run_id"]].items()}
        # deliver is skipped: a backfill rebuilds history and must not re-mail it.
        assert states == {"ingest": "success", "build": "success", "scorecard": "success", "deliver": "skipped"}, run

    january, february = (story["backfill_scorecards"][p] for p in BACKFILL_PERIODS)
    assert float(january["CON_CONTACTS"]["value"]) == _sample(story["summary"], "contacts", FIRST_PERIOD).rows
    assert {row["period"] for row in january.values()} == {FIRST_PERIOD}
    # February counts the resubmitted return only (it has no 'nfa' contacts left).
    kept = story["resubmitted_rows"]
    referrals = sum(1 for r in kept if r["outcome"] == "referral")
    assert float(february["CON_CONTACTS"]["value"]) == len(kept)
    assert float(february["CON_CONVERSION_PCT"]["value"]) == pytest.approx(100 * referrals / len(kept), abs=0.05)
    assert story["warehouse"]["backfill_emails"] == []


def test_down_leaves_nothing_running(story):
    assert story["left_running"] == []
    assert story["volumes_left"] == []


def test_set_up_and_run_times_are_in_the_test_runs_summary(story, record_property):
    # tests/conftest.py prints a test's "summary" properties at the end of the run.
    said = "\n".join(story["log"])
    for step in ("images ready in", "stack healthy in", "monthly cycle success in", "beside a backfill", "down in"):
        assert step in said, said
    record_property("summary", said)
