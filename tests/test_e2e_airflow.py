"""One monthly cycle end to end through Airflow, as `make demo` runs it:
`python -m pkpi.airflow.dags_test partnership_monthly` (`airflow dags test`, saying as each task
starts and ends), then `pkpi demo --summary`.

Real parts throughout: an Airflow metadata database in a temporary AIRFLOW_HOME, the real DAG,
the gate with its GX suites, DuckDB, dbt, the scorecard renderers and the outbox. The sample
returns cover three months (January to March 2026) so the run stays short; the figures in the
scorecard are checked against the returns that were written, and the run's log is read as an
engineer reads it.
"""

from __future__ import annotations

import csv
import email
import json
import re
import sqlite3
import subprocess
import sys
from email import policy
from pathlib import Path

import pytest

from conftest import REPO, SEEDS
from support.airflow_stack import dags_test_environment, install_database, run_command

pytestmark = pytest.mark.e2e


def _run(args: list[str], env: dict, timeout: int) -> subprocess.CompletedProcess:
    # Its own process group, killed on timeout: `airflow dags test` does not always stop on SIGTERM.
    return run_command(args, env, timeout=timeout, cwd=REPO, check=False)


@pytest.fixture(scope="module")
def monthly_run(tmp_path_factory, airflow_database):
    from pkpi.demo import write_sample_returns
    from pkpi.settings import Settings

    root = tmp_path_factory.mktemp("e2e")
    env = dags_test_environment(root, REPO / "dags", SEEDS)
    settings = Settings.from_env({"PKPI_DATA_DIR": env["PKPI_DATA_DIR"], "PKPI_REFERENCE_DIR": str(SEEDS)})
    summary = write_sample_returns(settings, first_month="2026-01", last_month="2026-03")
    install_database(airflow_database, Path(env["AIRFLOW_HOME"]))  # as `airflow db migrate` leaves it
    log = root / "dags-test.log"
    run = _run([sys.executable, "-m", "pkpi.airflow.dags_test", "partnership_monthly", "2026-04-20", "--log", str(log)],
               env, timeout=900)
    run.log = log.read_text(encoding="utf-8")
    run.env = env
    return settings, summary, run


def test_the_dag_run_succeeds(monthly_run):
    _, _, run = monthly_run
    assert run.returncode == 0, run.stdout[-3000:] + run.log[-6000:]


def test_the_run_says_as_each_task_starts_and_ends(monthly_run):
    _, _, run = monthly_run
    said = run.stdout.splitlines()
    assert said[0].startswith("Running partnership_monthly for 2026-04-20 with `airflow dags test`"), run.stdout
    tasks = [line.strip() for line in said[1:-1]]
    for task in ("ingest", "build", "scorecard", "deliver"):
        assert f"{task}: started" in tasks, run.stdout
        assert any(line.startswith(f"{task}: success after ") for line in tasks), run.stdout
    assert tasks.index("ingest: started") < tasks.index("build: started") < tasks.index("scorecard: started")
    assert said[-1].startswith("partnership_monthly: success in "), run.stdout
    assert "[DAG TEST]" not in run.stdout and "[DAG TEST]" in run.log  # Airflow's own lines: in the log


def test_the_run_is_recorded_as_started_when_dags_test_began_it_not_at_its_logical_date(monthly_run):
    settings, _, _ = monthly_run
    with sqlite3.connect(settings.data_dir.parent / "airflow" / "airflow.db") as db:
        [(logical, started, run_after, ended)] = db.execute(
            "SELECT logical_date, start_date, run_after, end_date FROM dag_run WHERE dag_id = 'partnership_monthly'")
    assert logical.startswith("2026-04-20")
    assert started == run_after <= ended


def test_the_ingest_tasks_log_ends_with_one_line_per_file_and_holds_no_gx_chatter(monthly_run):
    _, summary, run = monthly_run
    lines = run.log.splitlines()
    start = next(i for i, line in enumerate(lines) if "[DAG TEST] starting task_id=ingest " in line)
    end = next(i for i, line in enumerate(lines) if "[DAG TEST] end task task_id=ingest " in line)
    task = lines[start:end]
    assert not [line for line in task if "Skipping registering function" in line or "great_expectations" in line]
    ours = [line for line in task if line.rstrip().endswith("[pkpi.ingest]") or "[pkpi.ingest] loc=" in line]
    files = summary.files_written
    assert f"ingest: {files} file(s): {files - 1} accepted, 1 rejected, 0 duplicate(s)" in ours[-files - 1]
    per_file = [re.sub(r"^\S+ \[info\s*\] ", "", line) for line in ours[-files:]]
    assert sorted(line.split(" ", 1)[0] for line in per_file) == ["accepted"] * (files - 1) + ["rejected"]
    [rejected] = [line for line in per_file if line.startswith("rejected ")]
    assert rejected.startswith("rejected training/NPOL/2026-03/training_NPOL_2026-03.csv: 2 problem(s), "
                               "rules enum, in_period (see quarantine/training/NPOL/2026-03/"), rejected
    contacts = next(r for r in summary.returns if r.return_type == "contacts" and r.period == "2026-03")
    assert any(line.startswith(f"accepted contacts/NCT/2026-03/{contacts.path.name}: {contacts.rows:,} row(s)")
               for line in per_file)
    after = [line for line in task[task.index(ours[-1]) + 1:] if "[pkpi" in line]
    assert after == []  # nothing of pkpi's after the per-file lines


def test_the_summary_says_where_every_output_is(monthly_run):
    settings, _, run = monthly_run
    done = subprocess.run([str(Path(sys.executable).with_name("pkpi")), "demo", "--summary"], env=run.env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    said = {line.split(":", 1)[0].strip(): line.split(":", 1)[1].strip()
            for line in done.stdout.split("\nReturns for")[0].splitlines() if line.startswith("  ")}
    folder = settings.exports_dir / "2026-03"
    assert said["scorecard"] == f"{folder}/ (scorecard.html, scorecard.pdf, scorecard.xlsx, scorecard.csv)"
    charts = len(list((folder / "charts").glob("*.png")))
    assert charts > 0 and said["charts"] == f"{folder / 'charts'}/ ({charts} charts)"
    for label in ("scorecard email", "notice to NPOL"):
        eml = Path(said[label].split(" ", 1)[0])
        assert eml.parent == settings.outbox_dir and eml.is_file(), said[label]
        assert "written to the outbox, not sent" in said[label]
    quarantine = Path(said["quarantine"].split("/ (", 1)[0])
    assert (quarantine / "errors.csv").is_file() and (quarantine / "report.html").is_file()
    assert said["warehouse"] == str(settings.warehouse_path)
    assert said["published copy"].startswith(f"{settings.published_dir / 'kpi_mart.duckdb'} and ")
    assert "training      PROB     2026-03" in done.stdout and "missing" in done.stdout


def test_the_scorecard_files_are_written_for_the_month_before_the_logical_date(monthly_run):
    settings, _, _ = monthly_run
    folder = settings.exports_dir / "2026-03"
    for name in ("scorecard.html", "scorecard.csv", "scorecard.pdf", "scorecard.xlsx"):
        assert (folder / name).stat().st_size > 0, name
    assert "2026-03" in (folder / "scorecard.html").read_text(encoding="utf-8") or "March 2026" in (
        folder / "scorecard.html").read_text(encoding="utf-8")


def test_scorecard_figures_match_the_sample_returns(monthly_run):
    settings, summary, _ = monthly_run
    march = [r for r in summary.returns if r.return_type == "contacts" and r.period == "2026-03"]
    assert len(march) == 1
    archived = list((settings.archive_dir / "contacts" / "NCT" / "2026-03").rglob(march[0].path.name))
    assert len(archived) == 1 and not march[0].path.exists()  # moved from landing, byte for byte
    with open(archived[0], newline="", encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == march[0].rows
    referrals = sum(1 for r in rows if r["outcome"] == "referral")
    with open(settings.exports_dir / "2026-03" / "scorecard.csv", newline="", encoding="utf-8-sig") as f:
        card = {r["kpi_code"]: r for r in csv.DictReader(f)}
    assert float(card["CON_CONTACTS"]["value"]) == len(rows)
    assert float(card["CON_CONVERSION_PCT"]["value"]) == pytest.approx(100 * referrals / len(rows), abs=0.05)
    assert card["TRN_ATTENDANCES"]["provisional"].lower() == "true"  # PROB's training is missing
    assert card["CON_CONTACTS"]["provisional"].lower() == "false"


def test_the_email_is_in_the_outbox_and_the_planted_return_in_quarantine(monthly_run):
    settings, summary, _ = monthly_run
    scorecards = [p for p in settings.outbox_dir.glob("*.eml") if "scorecard" in p.name]
    assert len(scorecards) == 1
    message = email.message_from_bytes(scorecards[0].read_bytes(), policy=policy.default)
    assert "March 2026" in message["Subject"] or "2026-03" in message["Subject"]
    assert "provisional" in message["Subject"].lower()
    planted = summary.planted_rejection
    quarantined = list((settings.quarantine_dir / "training").rglob("errors.csv"))
    assert len(quarantined) == 1 and planted.partner_code in str(quarantined[0])


def test_the_run_announces_the_mart_the_published_copy_and_the_months_scorecard(monthly_run):
    settings, _, run = monthly_run
    assert run.returncode == 0, run.log[-6000:]
    database = settings.data_dir.parent / "airflow" / "airflow.db"
    with sqlite3.connect(database) as db:
        events = {name: json.loads(extra or "{}") for name, extra in db.execute(
            "SELECT a.name, e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id "
            "WHERE e.source_dag_id = 'partnership_monthly'")}
    assert sorted(events) == ["mart", "published.kpi_mart", "scorecard"]
    assert events["mart"]["model"] >= 30 and events["mart"]["test"] >= 100
    assert events["published.kpi_mart"]["row_counts"]["kpi_values"] > 0
    scorecard = events["scorecard"]
    assert scorecard["period"] == "2026-03" and scorecard["folder"] == "exports/2026-03"
    assert scorecard["files"] == ["scorecard.csv", "scorecard.html", "scorecard.pdf", "scorecard.xlsx"]
    assert all((settings.data_dir / scorecard["folder"] / name).is_file() for name in scorecard["files"])
