"""Reminders to partners: who is reminded of what on a given day, and that each reminder is
emailed once, to the partner's data contact, through a real SMTP server (aiosmtpd).

The warehouse is real (DuckDB, created by pkpi.warehouse); the load audit rows that say which
returns arrived are written straight into audit.loads, as the ingest would write them, so each
test can set up exactly the returns it is about. The reference data is the shipped seeds/
(the schedule: monthly returns due 10 or 15 days after the month, finance 60 days after
1 April; EDU has no data contact).
"""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta

import pytest

from pkpi import mailer
from pkpi.airflow.defaults import is_transient_failure
from pkpi.periods import financial_year_label, months_between
from pkpi.reference import expected_returns, expected_returns_for_financial_year, load_reference
from pkpi.reminders import (
    DUE_SOON_DAYS,
    OVERDUE_LOOKBACK_DAYS,
    RemindersIncomplete,
    due_reminders,
    reminder_message,
    send_reminders,
    summarise,
)
from pkpi.warehouse import connect
from support.smtp import free_port, smtp_server, smtp_settings  # noqa: F401 - fixture

# On 12 April 2026 the March returns are due on 10 April (contacts) and 15 April (the rest).
TODAY = date(2026, 4, 12)


def _audit_row(return_type, partner, period, status="accepted", received=None, file_name=None) -> list:
    received = received or datetime(2026, 1, 1, 9, 0)
    return [uuid.uuid4().hex, return_type, partner, period, file_name or f"{return_type}_{partner}_{period}.csv",
            f"landing/{return_type}/{partner}/{period}/x.csv", uuid.uuid4().hex, received, received, status,
            2 if status == "rejected" else 0, "2 problem(s): enum x1, in_period x1" if status == "rejected" else None]


def _insert(settings, rows: list[list]) -> None:
    with connect(settings) as con:
        con.executemany(
            "INSERT INTO audit.loads (load_id, return_type, partner_code, period, file_name, landing_path, "
            "checksum_sha256, size_bytes, row_count, is_nil, received_at, validated_at, status, error_count, message) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, 100, 3, false, ?, ?, ?, ?, ?)",
            rows,
        )


def record_load(settings, return_type, partner, period, status="accepted", received=None, file_name=None):
    """One row of audit.loads, as the ingest writes it for an accepted or rejected file."""
    _insert(settings, [_audit_row(return_type, partner, period, status, received, file_name)])


def receive_everything(settings, first="2025-12", last="2026-05", but=()):
    """Accept, on time, every return expected for these months (and their years' finance),
    except the (return_type, partner, period) triples in ``but``."""
    reference = load_reference(settings)
    expected = []
    for month in months_between(first, last):
        expected += expected_returns(reference, month)
    for year in {financial_year_label(date.fromisoformat(m + "-01")) for m in months_between(first, last)}:
        expected += expected_returns_for_financial_year(reference, year)
    _insert(settings, [
        _audit_row(e.return_type, e.partner_code, e.period, received=datetime.combine(e.due_date, datetime.min.time()))
        for e in expected if (e.return_type, e.partner_code, e.period) not in but
    ])


def keys(reminders):
    return [(r.kind, r.return_type, r.partner_code, r.period) for r in reminders]


# --- who is reminded of what ----------------------------------------------------------------


def test_a_return_not_yet_received_is_reminded_of_in_the_days_before_it_is_due(settings):
    receive_everything(settings, but={("training", "PROB", "2026-03")})
    assert keys(due_reminders(settings, date(2026, 4, 11))) == []  # due in 4 days: too early
    for day in (date(2026, 4, 12), date(2026, 4, 14), date(2026, 4, 15)):  # 3 days before .. the day
        assert keys(due_reminders(settings, day)) == [("due_soon", "training", "PROB", "2026-03")], day
    [reminder] = due_reminders(settings, TODAY)
    assert reminder.due_date == date(2026, 4, 15)
    assert reminder.recipient == "returns@probation.example"
    assert reminder.idempotency_key == "reminder:due_soon:training:PROB:2026-03"


def test_a_missing_return_is_overdue_from_the_day_after_its_due_date_for_four_weeks(settings):
    receive_everything(settings, but={("contacts", "NCT", "2026-03")})  # due 10 April
    assert keys(due_reminders(settings, date(2026, 4, 10))) == [("due_soon", "contacts", "NCT", "2026-03")]
    for day in (date(2026, 4, 11), date(2026, 4, 10) + timedelta(days=OVERDUE_LOOKBACK_DAYS)):
        assert keys(due_reminders(settings, day)) == [("overdue", "contacts", "NCT", "2026-03")], day
    late = date(2026, 4, 10) + timedelta(days=OVERDUE_LOOKBACK_DAYS + 1)
    assert keys(due_reminders(settings, late)) == []


def test_a_rejected_return_is_still_owed_and_the_reminder_names_the_rejected_file(settings):
    receive_everything(settings, but={("training", "NPOL", "2026-03")})
    record_load(settings, "training", "NPOL", "2026-03", status="rejected",
                received=datetime(2026, 4, 2, 10, 0), file_name="npol_march.csv")
    [soon] = due_reminders(settings, TODAY)
    assert (soon.kind, soon.state) == ("due_soon", "rejected")
    assert "npol_march.csv" in soon.detail
    [overdue] = due_reminders(settings, date(2026, 4, 16))
    assert (overdue.kind, overdue.state) == ("overdue", "rejected")
    text = reminder_message(settings, overdue, date(2026, 4, 16)).get_content()
    assert "was not accepted" in text and "npol_march.csv" in text


def test_received_returns_are_not_reminded_of_even_when_late_or_after_a_rejection(settings):
    receive_everything(settings, but={("training", "NPOL", "2026-03"), ("training", "WNC", "2026-03")})
    record_load(settings, "training", "NPOL", "2026-03", status="rejected", received=datetime(2026, 4, 2))
    record_load(settings, "training", "NPOL", "2026-03", received=datetime(2026, 4, 3))  # corrected
    record_load(settings, "training", "WNC", "2026-03", received=datetime(2026, 4, 17))  # late
    assert due_reminders(settings, TODAY) == []
    assert due_reminders(settings, date(2026, 4, 18)) == []


def test_annual_finance_returns_are_reminded_of_before_and_after_their_due_date(settings):
    receive_everything(settings, last="2026-05", but={("finance", "WNC", "2026-27")})  # due 31 May 2026
    assert keys(due_reminders(settings, date(2026, 5, 28))) == [("due_soon", "finance", "WNC", "2026-27")]
    [overdue] = due_reminders(settings, date(2026, 6, 1))
    assert keys([overdue]) == [("overdue", "finance", "WNC", "2026-27")]
    text = reminder_message(settings, overdue, date(2026, 6, 1)).get_content()
    assert "financial year 2026-27 (April 2026 to March 2027)" in text
    assert "landing/finance/WNC/2026-27/" in text


def test_a_new_installation_only_reminds_of_recent_returns(settings):
    """Nothing loaded at all: the reminders cover the last four weeks and the next three days,
    not every return since the schedule began."""
    reminders = due_reminders(settings, TODAY)
    assert all(TODAY - timedelta(days=OVERDUE_LOOKBACK_DAYS) <= r.due_date <= TODAY + timedelta(days=DUE_SOON_DAYS)
               for r in reminders)
    assert {r.period for r in reminders} == {"2026-02", "2026-03"}
    found = keys(reminders)
    assert ("overdue", "training", "NNC", "2026-02") in found  # due 15 March: 28 days ago
    assert ("overdue", "contacts", "NCT", "2026-02") not in found  # due 10 March: too long ago
    assert ("overdue", "contacts", "NCT", "2026-03") in found
    assert ("due_soon", "child_deaths", "ICB", "2026-03") in found


# --- sending --------------------------------------------------------------------------------


def _smtp(settings, port):
    return smtp_settings(settings, port, retries=0)


def test_each_partner_gets_its_reminder_by_email_once(settings, smtp_server):
    receive_everything(settings, but={("training", "PROB", "2026-03"), ("training", "ICB", "2026-03")})
    settings = _smtp(settings, smtp_server.port)

    outcomes = send_reminders(settings, TODAY)
    assert [o.status for o in outcomes] == ["sent", "sent"]
    assert summarise(outcomes) == "2 reminder(s): 2 sent"
    by_recipient = {tuple(m.rcpt_tos): m.message for m in smtp_server.received}
    assert set(by_recipient) == {("returns@probation.example",), ("cdop.data@icb.example",)}
    message = by_recipient[("returns@probation.example",)]
    assert message["Subject"] == (
        "Northamptonshire Safeguarding Children Partnership: your training return for 2026-03 is due in 3 days"
    )
    body = message.get_content()
    assert "Probation Service (Northamptonshire)" in body and "Wednesday 15 April 2026" in body
    assert "landing/training/PROB/2026-03/" in body and "nil return" in body
    ledger = mailer.ledger_entries(settings, kind="reminder")
    assert sorted((e.idempotency_key, e.status, e.partner_code, e.period) for e in ledger) == [
        ("reminder:due_soon:training:ICB:2026-03", "sent", "ICB", "2026-03"),
        ("reminder:due_soon:training:PROB:2026-03", "sent", "PROB", "2026-03"),
    ]

    # Later the same day, and the next morning: already reminded, nothing more is sent.
    assert [o.status for o in send_reminders(settings, TODAY)] == ["skipped", "skipped"]
    assert [o.status for o in send_reminders(settings, TODAY + timedelta(days=1))] == ["skipped", "skipped"]
    assert len(smtp_server.received) == 2

    # ICB sends its return; PROB does not, and after the due date hears once more.
    record_load(settings, "training", "ICB", "2026-03", received=datetime(2026, 4, 14, 16, 0))
    outcomes = send_reminders(settings, date(2026, 4, 16))
    assert [(o.reminder.kind, o.reminder.partner_code, o.status) for o in outcomes] == [("overdue", "PROB", "sent")]
    assert smtp_server.received[-1].message["Subject"].endswith("your training return for 2026-03 is overdue")
    assert [o.status for o in send_reminders(settings, date(2026, 4, 17))] == ["skipped"]
    assert len(smtp_server.received) == 3


def test_a_partner_without_a_data_contact_is_listed_not_emailed(settings, smtp_server):
    receive_everything(settings, but={("training", "EDU", "2026-03")})  # EDU has no data contact
    outcomes = send_reminders(_smtp(settings, smtp_server.port), TODAY)
    assert [(o.reminder.partner_code, o.status) for o in outcomes] == [("EDU", "no_contact")]
    assert smtp_server.received == []
    assert mailer.ledger_entries(settings, kind="reminder") == []


def test_without_smtp_the_reminders_are_written_to_the_outbox(settings):
    receive_everything(settings, but={("training", "PROB", "2026-03")})
    [outcome] = send_reminders(settings, TODAY)
    assert outcome.status == "outbox"
    [eml] = list(settings.outbox_dir.glob("*reminder*.eml"))
    assert "To: returns@probation.example" in eml.read_text()
    assert [o.status for o in send_reminders(settings, TODAY)] == ["skipped"]


def test_a_mail_server_outage_is_retryable_and_the_retry_sends_only_what_is_missing(settings, smtp_server):
    receive_everything(settings, but={("training", "PROB", "2026-03"), ("training", "ICB", "2026-03")})
    with pytest.raises(RemindersIncomplete) as failed:
        send_reminders(_smtp(settings, free_port()), TODAY)  # nothing listens there
    assert len(failed.value.failures) == 2
    assert "run the reminders again" in str(failed.value)
    assert is_transient_failure(failed.value)  # the DAG's retry policy retries it
    assert {e.status for e in mailer.ledger_entries(settings, kind="reminder")} == {"failed"}

    outcomes = send_reminders(_smtp(settings, smtp_server.port), TODAY)
    assert [o.status for o in outcomes] == ["sent", "sent"]
    assert len(smtp_server.received) == 2
