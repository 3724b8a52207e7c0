"""What the monthly Airflow run decides: its reporting month, whether it emails, what it retries,
and the alert the data engineers get when a task fails for good."""

from __future__ import annotations

import smtplib
from pathlib import Path
from datetime import date, datetime, timezone
from types import SimpleNamespace

import pytest

from pkpi import mailer
from pkpi.airflow.defaults import (
    TransientFailuresOnly,
    failure_alert,
    is_transient_failure,
    notify_engineers_of_failure,
)
from pkpi.airflow.params import (
    OrchestrationError,
    period_for_run,
    resolve_period,
    send_for_run,
    should_force,
    should_send,
)
from pkpi.settings import Settings
from pkpi.warehouse import WarehouseBusy
from support.smtp import free_port, smtp_server  # noqa: F401,F811 - pytest fixture

UTC = timezone.utc
SEEDS = Path(__file__).resolve().parents[1] / "seeds"


# --- reporting period ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("logical_date", "expected"),
    [
        (datetime(2026, 4, 20, 5, 0, tzinfo=UTC), "2026-03"),  # the scheduled run on the 20th
        (datetime(2026, 4, 6, tzinfo=UTC), "2026-03"),  # make demo's logical date
        (datetime(2026, 1, 20, 6, 0, tzinfo=UTC), "2025-12"),  # across the year end
        (date(2025, 4, 1), "2025-03"),  # the first day of a month still reports the month before
        # 00:30 on 1 April in London (BST) is 23:30 on 31 March in UTC: London's month counts.
        (datetime(2026, 3, 31, 23, 30, tzinfo=UTC), "2026-03"),
        (datetime(2026, 1, 31, 23, 30, tzinfo=UTC), "2025-12"),  # GMT: London and UTC agree
    ],
)
def test_the_reporting_month_is_the_month_before_the_logical_date(logical_date, expected):
    assert resolve_period(logical_date, {}) == expected
    assert resolve_period(logical_date, {"period": None}) == expected
    assert resolve_period(logical_date, {"period": ""}) == expected  # a cleared form field


def test_the_period_param_overrides_the_logical_date():
    assert resolve_period(datetime(2026, 4, 20, tzinfo=UTC), {"period": "2025-11"}) == "2025-11"
    assert resolve_period(None, {"period": " 2025-11 "}) == "2025-11"


def test_a_bad_period_param_says_how_to_write_it():
    with pytest.raises(OrchestrationError, match="YYYY-MM"):
        resolve_period(datetime(2026, 4, 20, tzinfo=UTC), {"period": "2026-13"})


def test_a_run_without_a_logical_date_uses_when_it_was_triggered():
    # Airflow 3 lets a manual run have no logical date; "now" is what the user meant.
    context = {
        "logical_date": None,
        "params": {"period": None},
        "dag_run": SimpleNamespace(run_after=datetime(2026, 5, 3, 9, 30, tzinfo=UTC), run_type="manual"),
    }
    assert period_for_run(context) == "2026-04"
    with pytest.raises(OrchestrationError, match="period param"):
        resolve_period(None, {})


# --- sending ------------------------------------------------------------------------------


@pytest.mark.parametrize("run_type", ["scheduled", "manual", "asset_triggered"])
def test_auto_sends_for_scheduled_and_manual_runs(run_type):
    assert should_send({"send": "auto"}, run_type) is True
    assert should_send({}, run_type) is True  # auto is the default


def test_auto_does_not_send_for_a_backfill_unless_asked():
    # A task sees the Task SDK's enum; the scheduler's own enum has the same value.
    from airflow.sdk.api.datamodels._generated import DagRunType
    from airflow.utils.types import DagRunType as CoreDagRunType

    assert should_send({"send": "auto"}, "backfill") is False
    assert should_send({"send": "auto"}, DagRunType.BACKFILL) is False
    assert should_send({"send": "auto"}, CoreDagRunType.BACKFILL_JOB) is False
    assert should_send({"send": "auto"}, DagRunType.MANUAL) is True
    assert should_send({"send": "true"}, DagRunType.BACKFILL) is True
    assert should_send({"send": True}, "backfill") is True


def test_send_false_never_sends():
    for run_type in ("scheduled", "manual", "backfill"):
        assert should_send({"send": "false"}, run_type) is False
        assert should_send({"send": False}, run_type) is False
        assert should_send({"send": "No"}, run_type) is False


def test_an_unknown_send_value_is_an_error_not_a_guess():
    with pytest.raises(OrchestrationError, match="auto, true, false"):
        should_send({"send": "sometimes"}, "manual")


def test_send_for_run_reads_the_task_context():
    backfill = {"params": {"send": "auto"}, "dag_run": SimpleNamespace(run_type="backfill")}
    assert send_for_run(backfill) is False
    assert send_for_run({**backfill, "dag_run": SimpleNamespace(run_type="scheduled")}) is True


def test_force_param():
    assert should_force({}) is False
    assert should_force({"force": True}) is True
    assert should_force({"force": "true"}) is True
    assert should_force({"force": False}) is False


# --- retries ------------------------------------------------------------------------------


def _raised_from(cause: BaseException, wrapper: type[Exception] = RuntimeError) -> Exception:
    try:
        try:
            raise cause
        except BaseException as exc:
            raise wrapper("the stage failed") from exc
    except Exception as outer:
        return outer


@pytest.mark.parametrize(
    "exc",
    [
        WarehouseBusy("the warehouse stayed locked"),
        ConnectionRefusedError("connection refused"),
        TimeoutError("timed out"),
        smtplib.SMTPServerDisconnected("gone"),
        smtplib.SMTPResponseException(451, b"try again later"),
        _raised_from(ConnectionRefusedError("refused"), mailer.MailDeliveryError),  # the mailer's wrapper
    ],
    ids=lambda e: type(e).__name__,
)
def test_failures_that_can_clear_on_their_own_are_retried(exc):
    assert is_transient_failure(exc)
    decision = TransientFailuresOnly().evaluate(exc, try_number=1, max_tries=3)
    assert decision.action.value == "retry"
    assert decision.retry_delay is None  # the task's exponential backoff applies


def test_a_duckdb_lock_conflict_is_retried_but_other_duckdb_errors_are_not():
    import duckdb

    assert is_transient_failure(duckdb.IOException('Could not set lock on file "warehouse.duckdb"'))
    assert not is_transient_failure(duckdb.IOException("Cannot open file: permission denied"))


@pytest.mark.parametrize(
    "exc",
    [
        RuntimeError("dbt test failed"),
        ValueError("bad contract"),
        OrchestrationError("bad period"),
        FileNotFoundError("no warehouse yet"),
        smtplib.SMTPAuthenticationError(535, b"bad credentials"),
        ModuleNotFoundError("No module named 'pkpi.ingest'"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_permanent_failures_fail_at_once(exc):
    assert not is_transient_failure(exc)
    assert TransientFailuresOnly().evaluate(exc, try_number=1, max_tries=3).action.value == "fail"


def test_the_task_timeout_is_retried():
    from airflow.sdk.exceptions import AirflowTaskTimeout

    assert is_transient_failure(AirflowTaskTimeout("Timeout, PID: 1"))


# --- failure alert ------------------------------------------------------------------------


def _failure_context(exc: BaseException | None = None) -> dict:
    ti = SimpleNamespace(
        dag_id="partnership_monthly", task_id="build", run_id="scheduled__2026-04-20T05:00:00+00:00",
        try_number=4, log_url="http://localhost:8080/dags/partnership_monthly/runs/x/tasks/build",
    )
    return {
        "ti": ti,
        "exception": exc or RuntimeError("The KPI mart build failed: 1 node(s) failed."),
        "params": {"period": None, "send": "auto", "force": False},
        "logical_date": datetime(2026, 4, 20, 5, 0, tzinfo=UTC),
        "dag_run": SimpleNamespace(run_type="scheduled", run_id=ti.run_id, run_after=None),
    }


def test_the_alert_names_the_task_period_error_and_next_step():
    subject, body, key = failure_alert(_failure_context())
    assert subject == "[pkpi] partnership_monthly: task build failed (period 2026-03)"
    assert "RuntimeError: The KPI mart build failed" in body
    assert "Attempt: 4" in body
    assert "http://localhost:8080/dags/partnership_monthly" in body
    assert "clear the failed task" in body
    assert key == "alert:partnership_monthly:scheduled__2026-04-20T05:00:00+00:00:build:4"


def test_the_alert_still_goes_when_the_params_were_the_problem():
    context = {**_failure_context(), "params": {"period": "not-a-month"}}
    subject, _, _ = failure_alert(context)
    assert "period unknown" in subject


def _env(monkeypatch, tmp_path, **values):
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "airflow"))
    monkeypatch.setenv("PKPI_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("PKPI_REFERENCE_DIR", str(SEEDS))
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return Settings.from_env()


def test_no_engineers_configured_means_no_alert_and_no_warehouse_touched(monkeypatch, tmp_path, smtp_server):
    settings = _env(monkeypatch, tmp_path, **smtp_server.env())
    notify_engineers_of_failure(_failure_context())
    assert smtp_server.received == []
    assert not settings.warehouse_path.exists()


def test_engineers_get_the_alert_by_smtp_and_it_is_in_the_ledger(monkeypatch, tmp_path, smtp_server):
    settings = _env(
        monkeypatch, tmp_path, PKPI_ENGINEER_EMAILS="eng1@partnership.example, eng2@partnership.example",
        **smtp_server.env(),
    )
    notify_engineers_of_failure(_failure_context())

    [received] = smtp_server.received
    assert sorted(received.rcpt_tos) == ["eng1@partnership.example", "eng2@partnership.example"]
    assert received.message["Subject"] == "[pkpi] partnership_monthly: task build failed (period 2026-03)"
    assert "The KPI mart build failed" in received.message.get_content()
    [entry] = mailer.ledger_entries(settings, kind="alert")
    assert entry.status == "sent"


def test_without_smtp_the_alert_is_written_to_the_outbox(monkeypatch, tmp_path):
    settings = _env(monkeypatch, tmp_path, PKPI_ENGINEER_EMAILS="eng@partnership.example")
    notify_engineers_of_failure(_failure_context())
    [eml] = list(settings.outbox_dir.glob("*.eml"))
    assert "task build failed" in eml.read_text()


def test_a_mail_server_outage_does_not_raise_from_the_callback(monkeypatch, tmp_path):
    settings = _env(
        monkeypatch, tmp_path, PKPI_ENGINEER_EMAILS="eng@partnership.example",
        PKPI_SMTP_HOST="127.0.0.1", PKPI_SMTP_PORT=str(free_port()), PKPI_SMTP_RETRIES="0",
    )
    notify_engineers_of_failure(_failure_context())  # logs what to check instead of raising
    [entry] = mailer.ledger_entries(settings, kind="alert")
    assert entry.status == "failed"


def test_a_month_already_sent_names_the_dags_force_param():
    from pkpi.airflow.tasks import already_sent_message

    message = already_sent_message("2026-03")
    assert message == ("The 2026-03 scorecard was already sent; trigger partnership_monthly with "
                       "the param force=true to send it again.")
    dag_source = (Path(__file__).resolve().parents[1] / "dags" / "partnership_monthly.py").read_text()
    assert '"force": force_param()' in dag_source  # the param the sentence names is the DAG's own
