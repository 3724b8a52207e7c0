"""The body of every DAG task: each reads what it needs from the Airflow context, calls one stage
function of pkpi (the same one the command line calls), logs what happened, and returns a small
summary for XCom. Counts, partner codes, periods and file names only: never a row's values.

Stage modules are imported inside the functions, so parsing a DAG file never loads DuckDB, dbt
or pandas. Each DAG's tasks log under ``pkpi.dags.<dag_id>``.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping

from airflow.sdk.exceptions import AirflowSkipException

from ..settings import Settings
from .assets import MART_ASSET, PUBLISHED_ASSET, RAW_ASSETS, SCORECARD_ASSET, raw_table_changes
from .names import INGEST_DAG_ID, MART_DAG_ID, MONTHLY_DAG_ID, REMINDERS_DAG_ID, RETENTION_DAG_ID
from .params import period_for_run, resolve_period, retention_moment, run_date, run_day, send_for_run, should_force
from .smtp import with_airflow_smtp


def _log(dag_id: str) -> logging.Logger:
    return logging.getLogger(f"pkpi.dags.{dag_id}")


def task_settings() -> Settings:
    """The settings a task runs with: the environment, plus Airflow's ``smtp_default``
    connection for mail when no ``PKPI_SMTP_HOST`` is set (see :mod:`pkpi.airflow.smtp`).

    Every task calls it first, so it is also the tasks' entry point for file modes (it sets the
    task process's umask and tightens the data folder: pkpi.files.secure_entry_point) and for
    logs (other projects' INFO lines are kept out of the task log: pkpi.quiet_logs).
    """
    from ..files import secure_entry_point
    from ..quiet_logs import quiet_third_party

    quiet_third_party()
    settings = with_airflow_smtp(Settings.from_env())
    secure_entry_point(settings)
    return settings


def rejected_files(report: Any) -> list[dict[str, Any]]:
    """Each file an ingest rejected: its return, partner, period and name, never its contents.
    ``report`` is a :class:`pkpi.ingest.IngestReport`, whose run has already logged one line per
    file (the rules a rejected one broke, and its quarantine folder)."""
    fields = ("return_type", "partner_code", "period", "file_name", "status")
    return [{name: getattr(o, name) for name in fields} for o in report.rejected]


# --- partnership_monthly ------------------------------------------------------------------------


def monthly_ingest() -> dict[str, Any]:
    """Validate and load every return waiting in landing/; rejections are reported, not raised."""
    from ..ingest import ingest_landing

    # The run's log ends with its summary and one line per file (pkpi.ingest).
    report = ingest_landing(task_settings())
    return {"accepted": len(report.accepted), "rejected": rejected_files(report)}


def monthly_build(context: Mapping[str, Any]) -> str:
    """Build and test the KPI mart with dbt, including the run's reporting month; returns it."""
    from ..build import build_mart

    period = period_for_run(context)
    # Passing the period puts the month in the mart even before its returns arrive,
    # so the scorecard can show them as missing.
    result = build_mart(task_settings(), period=period)
    _log(MONTHLY_DAG_ID).info("%s", result)
    context["outlet_events"][MART_ASSET].extra = _mart_event_extra(result)
    if result.published is not None:
        context["outlet_events"][PUBLISHED_ASSET].extra = _published_event_extra(result.published)
    return period


def monthly_scorecard(context: Mapping[str, Any], period: str) -> str:
    """Render the reporting month's scorecard files into exports/<period>/; returns the month."""
    from ..scorecard import produce_scorecard

    settings = task_settings()
    output = produce_scorecard(settings, period)
    _log(MONTHLY_DAG_ID).info(
        "Scorecard for %s %s %s%s.",
        period,
        "already up to date in" if output.up_to_date else "written to",
        output.directory,
        " (provisional: a return is missing or rejected)" if output.provisional else "",
    )
    context["outlet_events"][SCORECARD_ASSET].extra = {
        "period": period,
        "provisional": output.provisional,
        # Relative to the data folder, so the event reads the same in every deployment.
        "folder": str(output.directory.relative_to(settings.data_dir)),
        "files": sorted(p.name for p in (output.html, output.pdf, output.xlsx, output.csv)),
    }
    return period


def monthly_deliver(context: Mapping[str, Any], period: str) -> str:
    """Email the scorecard (or write it to outbox/) unless this run should not send (skipped)."""
    if not send_for_run(context):
        run_type = context["dag_run"].run_type
        raise AirflowSkipException(
            f"Not sending the {period} scorecard: the send param is "
            f"{context['params'].get('send')!r} for a {getattr(run_type, 'value', run_type)} run."
        )
    from ..delivery import deliver_scorecard

    result = deliver_scorecard(task_settings(), period, force=should_force(context["params"]))
    _log(MONTHLY_DAG_ID).info("%s", result)
    if result.skipped:
        # The ledger knows nothing of Airflow: the DAG's own param is named here, where it lives.
        _log(MONTHLY_DAG_ID).info("%s", already_sent_message(period))
    return result.status


def already_sent_message(period: str) -> str:
    """What the delivery task says when the month's scorecard was already sent."""
    return (f"The {period} scorecard was already sent; trigger {MONTHLY_DAG_ID} with the param "
            f"force=true to send it again.")


# --- partner_returns_ingest ---------------------------------------------------------------------


def ingest_returns() -> dict[str, Any]:
    """The hourly ingest: like :func:`monthly_ingest`, and also returns the duplicates and the
    return types whose raw tables changed."""
    from ..ingest import ingest_landing

    report = ingest_landing(task_settings())  # logs its summary and one line per file
    return {
        "accepted": len(report.accepted),
        "rejected": rejected_files(report),
        "duplicates": len(report.duplicates),
        "changed_return_types": sorted(report.changed_return_types),
    }


def announce_raw_table(context: Mapping[str, Any], return_type: str) -> dict[str, Any]:
    """Emit ``raw.<return_type>``'s asset event if this run accepted a return of that type, with
    what changed as its extra; otherwise skip, which withholds the event."""
    # Runs after ingest succeeded *or failed* (ONE_DONE): what was committed counts either way.
    change = raw_table_changes(task_settings(), since=context["dag_run"].start_date).get(return_type)
    if change is None:
        raise AirflowSkipException(
            f"No {return_type} return was accepted in this run: raw.{return_type} is unchanged."
        )
    context["outlet_events"][RAW_ASSETS[return_type]].extra = change.as_event_extra()
    _log(INGEST_DAG_ID).info("%s.", change)
    return change.as_event_extra()


# --- partnership_mart_build ---------------------------------------------------------------------


def build_mart(context: Mapping[str, Any]) -> dict[str, int]:
    """Build and test the KPI mart (without publishing) and put the node counts on the ``mart``
    asset event; returns the counts."""
    from ..build import build_mart as build

    # The monthly cycle's reporting month for a run on this date: present even before
    # any of its returns arrive, so they show as missing once due.
    period = resolve_period(run_date(context), {})
    full_refresh = bool(context["params"].get("full_refresh"))
    result = build(task_settings(), period=period, full_refresh=full_refresh, publish_after=False)
    _log(MART_DAG_ID).info("%s", result)
    extra = _mart_event_extra(result)
    context["outlet_events"][MART_ASSET].extra = extra
    return {kind: count for kind, count in extra.items() if kind != "seconds"}


def _mart_event_extra(result) -> dict[str, Any]:
    """The ``mart`` asset event's extra: how many nodes of each kind dbt built and tested, and
    whether the mart was already up to date (then dbt did not run, pkpi.build_inputs)."""
    summary: dict[str, Any] = {kind: result.count(kind) for kind in ("seed", "model", "test", "unit_test")}
    return {**summary, "up_to_date": result.up_to_date_since is not None, "seconds": round(result.seconds, 1)}


def _published_event_extra(published) -> dict[str, Any]:
    """The ``published.kpi_mart`` event's extra: rows per table and how many figures are hidden."""
    return {"row_counts": published.row_counts, "suppressed_figures": published.suppressed_figures}


def publish_mart() -> dict[str, Any]:
    """Rewrite the disclosure-controlled published copy of the mart."""
    from ..publish import publish

    published = publish(task_settings())
    _log(MART_DAG_ID).info("%s", published)
    return _published_event_extra(published)


# --- partner_return_reminders -------------------------------------------------------------------


def send_reminders(context: Mapping[str, Any]) -> dict[str, Any]:
    """Email today's due-soon and overdue reminders (each once); with ``send`` off, list them and
    skip."""
    from .. import reminders

    log = _log(REMINDERS_DAG_ID)
    today = run_day(context)
    settings = task_settings()
    if not send_for_run(context):
        due = reminders.due_reminders(settings, today)
        for reminder in due:
            log.info("Would remind: %s", reminder)
        raise AirflowSkipException(
            f"Not sending reminders for {today}: the send param is {context['params'].get('send')!r} "
            f"for this run. {len(due)} reminder(s) would have been due (listed above)."
        )
    outcomes = reminders.send_reminders(settings, today)
    log.info("Reminders for %s: %s.", today, reminders.summarise(outcomes))
    return {"day": today.isoformat(), "outcomes": [str(o) for o in outcomes]}


# --- partner_returns_retention ------------------------------------------------------------------


def apply_retention(context: Mapping[str, Any]) -> dict[str, Any]:
    """Delete (and record) every original file whose retention period has ended by the run's
    date (never later than now)."""
    from .. import retention

    log = _log(RETENTION_DAG_ID)
    report = retention.apply_retention(task_settings(), now=retention_moment(context))
    for deletion in report.refused:
        log.warning("Refused: %s", deletion)
    log.info("%s", report.summary())
    return {
        "deleted": len(report.deleted),
        "bytes": sum(d.bytes or 0 for d in report.deleted),
        "refused": [str(d) for d in report.refused],
        "loads": len(report.loads),
    }
