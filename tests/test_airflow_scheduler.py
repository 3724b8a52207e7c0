"""The monthly cycle on a running Airflow: scheduler, DAG processor and API server.

``test_e2e_airflow.py`` runs the DAG in one process with ``airflow dags test``. This module runs
it the way a deployment does: the three Airflow components as separate processes on
127.0.0.1 (see ``support/airflow_stack.py``), the DAG unpaused and triggered through the REST
API with a token from the auth manager, task processes started by the LocalExecutor and
talking to the execution API, the ``duckdb_writer`` pool shared by every run.

One stack, started once for the module, plays one short story that the tests then check:

1. A data engineer triggers ``partnership_monthly`` for March 2026 through the REST API.
   It ingests three months of sample returns, builds the mart, writes the scorecard and
   emails it (to the outbox: no SMTP server is configured).
2. While that run's build holds the warehouse, a partner's resubmitted February return is
   dropped into landing and ``pkpi ingest`` is run from the command line: a second writer
   outside Airflow's pool, which has to wait for the warehouse lock rather than fail.
3. Then ``airflow backfill create`` rebuilds January and February. Backfill runs have their
   own concurrency (the DAG's ``max_active_runs=1`` applies to the other runs only), so
   both backfill runs start at once, alongside the end of the March run: their writer tasks
   queue in the pool while the scorecard tasks read the warehouse beside them. A backfill
   must not email the strategic leads.

Every run must finish, and every figure must match the returns that were loaded: the
February scorecard counts the resubmitted return, not the original.
"""

from __future__ import annotations

import csv
import email
import sys
from dataclasses import dataclass
from email import policy
from pathlib import Path

import pytest

from conftest import REPO, SEEDS
from support.airflow_stack import AirflowStack, airflow_stack, run_command

pytestmark = pytest.mark.e2e

DAG_ID = "partnership_monthly"
WRITER_POOL = ("duckdb_writer", 1, "DuckDB warehouse writers (ingest, build, delivery ledger): one at a time")
MANUAL_PERIOD = "2026-03"
MANUAL_LOGICAL_DATE = "2026-04-20T05:00:00Z"  # 06:00 in London, as the schedule would run it
# The schedule's ticks in this window are 20 February and 20 March: they report on January
# and February, the months before them.
BACKFILL_WINDOW = ("2026-02-01", "2026-03-31")
BACKFILL_PERIODS = ("2026-01", "2026-02")
RESUBMITTED_PERIOD = "2026-02"
RUN_TIMEOUT = 480  # seconds; a healthy story takes about two minutes on two cores
PKPI = str(Path(sys.executable).with_name("pkpi"))


@dataclass
class Story:
    """What happened, for the tests to check."""

    stack: AirflowStack
    settings: object
    summary: object
    manual_run: dict
    build_state_when_ingest_started: str
    resubmission: Path
    resubmitted_rows: list[dict]
    cli_ingest: object
    backfill_runs: dict[str, dict]


def _read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8-sig") as f:
        return list(csv.DictReader(f))


def _scorecard(settings, period: str) -> dict[str, dict]:
    return {row["kpi_code"]: row for row in _read_csv(settings.exports_dir / period / "scorecard.csv")}


def _sample(summary, return_type: str, period: str):
    matches = [r for r in summary.returns if r.return_type == return_type and r.period == period]
    assert len(matches) == 1, f"expected one sample {return_type} return for {period}"
    return matches[0]


def _archived(settings, written) -> Path:
    found = list((settings.archive_dir / written.return_type / written.partner_code / written.period).rglob(written.path.name))
    assert len(found) == 1, f"{written.path.name} should be archived once"
    return found[0]


def _write_resubmission(settings, summary) -> tuple[Path, list[dict]]:
    """The February contacts return sent again without its 'nfa' contacts (as if they were
    recorded in error); a later file for the same return supersedes the first."""
    original = _sample(summary, "contacts", RESUBMITTED_PERIOD)
    rows = _read_csv(_archived(settings, original))
    kept = [r for r in rows if r["outcome"] != "nfa"]
    assert 0 < len(kept) < len(rows)
    folder = settings.landing_dir / "contacts" / original.partner_code / RESUBMITTED_PERIOD
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "contacts-resubmitted.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(kept)
    return path, kept


@pytest.fixture(scope="module")
def stack(tmp_path_factory, airflow_database):
    """A running Airflow with only partnership_monthly, three months of sample returns waiting."""
    from pkpi.demo import write_sample_returns
    from pkpi.settings import Settings

    root = tmp_path_factory.mktemp("airflow-stack")
    # No quiet period (pkpi.landing): the resubmission is ingested straight after it is written,
    # and the stack's environment leaves out the test session's PKPI_* variables.
    pkpi_env = {"PKPI_DATA_DIR": str(root / "data"), "PKPI_REFERENCE_DIR": str(SEEDS),
                "PKPI_LANDING_QUIET_SECONDS": "0"}
    settings = Settings.from_env(pkpi_env)
    summary = write_sample_returns(settings, first_month="2026-01", last_month="2026-03")
    name, slots, description = WRITER_POOL
    with airflow_stack(root, [REPO / "dags" / "partnership_monthly.py"], airflow_database,
                       extra_env=pkpi_env, pools={name: (slots, description)},
                       dag_ids=[DAG_ID]) as running:
        yield running, settings, summary


@pytest.fixture(scope="module")
def story(stack) -> Story:
    running, settings, summary = stack
    api = running.api
    assert api.set_paused(DAG_ID, False)["is_paused"] is False

    # 1. The March run, triggered as an engineer would from the UI or a script.
    manual = api.trigger(DAG_ID, MANUAL_LOGICAL_DATE, {"period": MANUAL_PERIOD})
    run_id = manual["dag_run_id"]

    # 2. A second writer outside Airflow while the build holds the warehouse.
    build_state = running.wait_for_task_state(DAG_ID, run_id, "build", {"running"}, timeout=RUN_TIMEOUT)
    resubmission, kept = _write_resubmission(settings, summary)
    cli_ingest = run_command([PKPI, "ingest"], running.env, timeout=RUN_TIMEOUT, cwd=running.root, check=False)

    # 3. Backfill two months while the March run finishes.
    running.cli("backfill", "create", "--dag-id", DAG_ID, "--from-date", BACKFILL_WINDOW[0],
                "--to-date", BACKFILL_WINDOW[1], "--max-active-runs", "2", timeout=120)
    backfill_ids = [r["dag_run_id"] for r in api.dag_runs(DAG_ID) if r["run_type"] == "backfill"]
    finished = running.wait_for_runs(DAG_ID, [run_id, *backfill_ids], timeout=RUN_TIMEOUT)
    return Story(
        stack=running, settings=settings, summary=summary, manual_run=finished[run_id],
        build_state_when_ingest_started=build_state, resubmission=resubmission, resubmitted_rows=kept,
        cli_ingest=cli_ingest, backfill_runs={i: finished[i] for i in backfill_ids},
    )


def _assert_all_tasks(story: Story, run: dict, expected: dict[str, str]) -> None:
    states = {t: ti["state"] for t, ti in story.stack.api.task_instances(DAG_ID, run["dag_run_id"]).items()}
    assert states == expected, story.stack.diagnostics(DAG_ID, run["dag_run_id"])


def test_a_run_triggered_through_the_rest_api_builds_and_emails_the_scorecard(story):
    run = story.manual_run
    assert run["run_type"] == "manual"
    assert run["state"] == "success", story.stack.diagnostics(DAG_ID, run["dag_run_id"])
    _assert_all_tasks(story, run, {"ingest": "success", "build": "success", "scorecard": "success", "deliver": "success"})

    settings, summary = story.settings, story.summary
    folder = settings.exports_dir / MANUAL_PERIOD
    for name in ("scorecard.html", "scorecard.csv", "scorecard.pdf", "scorecard.xlsx"):
        assert (folder / name).stat().st_size > 0, name
    assert "March 2026" in (folder / "scorecard.html").read_text(encoding="utf-8")

    march = _archived(settings, _sample(summary, "contacts", MANUAL_PERIOD))
    rows = _read_csv(march)
    referrals = sum(1 for r in rows if r["outcome"] == "referral")
    card = _scorecard(settings, MANUAL_PERIOD)
    assert float(card["CON_CONTACTS"]["value"]) == len(rows)
    assert float(card["CON_CONVERSION_PCT"]["value"]) == pytest.approx(100 * referrals / len(rows), abs=0.05)
    # One training return rejected, one missing: the training measures wait, the front door does not.
    assert card["TRN_ATTENDANCES"]["provisional"].lower() == "true"
    assert card["CON_CONTACTS"]["provisional"].lower() == "false"

    sent = sorted(settings.outbox_dir.glob(f"*-scorecard-{MANUAL_PERIOD}.eml"))
    assert len(sent) == 1
    message = email.message_from_bytes(sent[0].read_bytes(), policy=policy.default)
    assert "March 2026" in message["Subject"]
    attachments = sorted(part.get_filename() for part in message.iter_attachments())
    assert attachments == [f"scorecard-{MANUAL_PERIOD}.pdf", f"scorecard-{MANUAL_PERIOD}.xlsx"]

    from pkpi.mailer import ledger_entries

    ledger = ledger_entries(settings, kind="scorecard", idempotency_key=MANUAL_PERIOD)
    assert [entry.status for entry in ledger] == ["written_to_outbox"]  # issue 11: the outbox is not the mail server


def test_an_ingest_from_the_command_line_during_the_build_loads_its_return_once(story):
    # The command line started while the DAG's build task held the warehouse's exclusive lock.
    # DuckDB refuses a second process that opens the file for writing ('could not set lock'),
    # so both finishing means the ingest queued on the lock instead of failing.
    assert story.build_state_when_ingest_started == "running"
    assert story.manual_run["state"] == "success", story.stack.diagnostics(DAG_ID, story.manual_run["dag_run_id"])
    assert story.cli_ingest.returncode == 0, story.cli_ingest.stdout[-3000:]
    assert not story.resubmission.exists()  # it left landing only once its outcome was committed

    from pkpi.warehouse import connect

    with connect(story.settings, read_only=True) as con:
        loads = con.execute(
            "SELECT status, row_count FROM audit.loads WHERE file_name = ?", [story.resubmission.name]
        ).fetchall()
        # No partial loads anywhere: every accepted file has exactly its rows in raw.
        mismatched = con.execute(
            """
            SELECT l.file_name, l.row_count, count(c.load_id)
            FROM audit.loads l LEFT JOIN raw.contacts c ON c.load_id = l.load_id
            WHERE l.status = 'accepted' AND l.return_type = 'contacts'
            GROUP BY l.file_name, l.row_count HAVING l.row_count <> count(c.load_id)
            """
        ).fetchall()
    assert loads == [("accepted", len(story.resubmitted_rows))]
    assert mismatched == []


def test_a_backfill_builds_each_months_scorecard_from_the_latest_returns(story):
    runs = sorted(story.backfill_runs.values(), key=lambda r: r["logical_date"])
    assert [r["logical_date"][:10] for r in runs] == ["2026-02-20", "2026-03-20"]
    for run in runs:
        assert run["state"] == "success", story.stack.diagnostics(DAG_ID, run["dag_run_id"])
        # deliver is skipped: a backfill rebuilds history and must not re-mail it.
        _assert_all_tasks(story, run, {"ingest": "success", "build": "success", "scorecard": "success", "deliver": "skipped"})

    settings = story.settings
    january = _scorecard(settings, "2026-01")
    assert float(january["CON_CONTACTS"]["value"]) == _sample(story.summary, "contacts", "2026-01").rows
    assert {row["period"] for row in january.values()} == {"2026-01"}

    # February counts the resubmitted return only (it has no 'nfa' contacts left).
    february = _scorecard(settings, RESUBMITTED_PERIOD)
    kept = story.resubmitted_rows
    referrals = sum(1 for r in kept if r["outcome"] == "referral")
    assert float(february["CON_CONTACTS"]["value"]) == len(kept)
    assert float(february["CON_CONVERSION_PCT"]["value"]) == pytest.approx(100 * referrals / len(kept), abs=0.05)


def test_a_backfill_does_not_email_the_scorecard(story):
    settings = story.settings
    for period in BACKFILL_PERIODS:
        assert (settings.exports_dir / period / "scorecard.html").is_file()
        assert list(settings.outbox_dir.glob(f"*-scorecard-{period}.eml")) == []

    from pkpi.warehouse import connect

    with connect(settings, read_only=True) as con:
        emailed = con.execute(
            "SELECT kind, period FROM audit.emails WHERE period IN (?, ?)", list(BACKFILL_PERIODS)
        ).fetchall()
    assert emailed == []
