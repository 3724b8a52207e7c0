"""One monthly cycle end to end through Airflow: `airflow dags test partnership_monthly`.

Real parts throughout: an Airflow metadata database in a temporary AIRFLOW_HOME, the real DAG,
the gate with its GX suites, DuckDB, dbt, the scorecard renderers and the outbox. The sample
returns cover three months (January to March 2026) so the run stays short; the figures in the
scorecard are checked against the returns that were written.
"""

from __future__ import annotations

import csv
import email
import json
import sqlite3
import subprocess
import sys
from email import policy
from pathlib import Path

import pytest

from conftest import REPO, SEEDS
from support.airflow_stack import dags_test_environment, install_database, run_command

pytestmark = pytest.mark.e2e
AIRFLOW = str(Path(sys.executable).with_name("airflow"))


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
    run = _run([AIRFLOW, "dags", "test", "partnership_monthly", "2026-04-20"], env, timeout=900)
    return settings, summary, run


def test_the_dag_run_succeeds(monthly_run):
    _, _, run = monthly_run
    assert run.returncode == 0, run.stdout[-6000:]


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
    assert run.returncode == 0, run.stdout[-6000:]
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
