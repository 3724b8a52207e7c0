"""Exactly-once scorecard email (issue 11, items 3, 4 and the delivery part of 9).

Real `pkpi scorecard --send` processes, crashed at every delivery step by pkpi.faults
(PKPI_CRASH_AT), raced against each other, and a real SMTP server (aiosmtpd) on loopback that
counts what each recipient received. After recovery every recipient has the month exactly once,
or the engineers are told it "may have been sent" and nothing is resent behind their back.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from pkpi import mailer
from pkpi.cli import main
from pkpi.delivery import deliver_scorecard
from pkpi.faults import CRASH_EXIT_CODE
from pkpi.warehouse import connect
from support.delivery import produced_data, settings  # noqa: F401,F811 - fixtures
from support.mart_fixture import ACTIVE_RECIPIENTS, PERIOD
from support.smtp import HOST, Received, free_port, smtp_server, smtp_settings  # noqa: F401,F811 - fixture

PKPI = Path(sys.executable).with_name("pkpi")
LEAD_ONE, LEAD_TWO = ACTIVE_RECIPIENTS


def _env(settings, server=None, **extra) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PKPI_")}
    env.update(PKPI_DATA_DIR=str(settings.data_dir), PKPI_REFERENCE_DIR=str(settings.reference_dir),
               PKPI_PROJECT_DIR=str(settings.project_dir), PKPI_SMTP_RETRIES="0", PKPI_SMTP_TIMEOUT="10")
    if server is not None:
        env.update(PKPI_SMTP_HOST=HOST, PKPI_SMTP_PORT=str(server.port))
    env.update(extra)
    return env


def _pkpi(env, *args) -> subprocess.CompletedProcess:
    return subprocess.run([str(PKPI), "scorecard", "--period", PERIOD, *args], env=env,
                          capture_output=True, text=True, timeout=300)


def _per_recipient(server) -> Counter:
    return Counter(r for m in server.received for r in m.rcpt_tos)


def _ledger(settings):
    return [e.status for e in mailer.ledger_entries(settings, "scorecard", PERIOD)]


def _recipients(settings):
    return sorted((r.recipient, r.status) for r in mailer.recipient_entries(settings, "scorecard", PERIOD))


def _no_temporary_files(settings):
    return [p for p in settings.data_dir.rglob("*.tmp")]


# --- crashes at every step ---------------------------------------------------------------
# The crashing run is a real `pkpi scorecard --send` process; the recovery runs in this process
# (the same code path without producing the scorecard again, which keeps the suite quick).


def _crash(env, step):
    crashed = _pkpi(dict(env, PKPI_CRASH_AT=step), "--send")
    assert crashed.returncode == CRASH_EXIT_CODE, crashed.stderr
    assert f"crash injected at {step}" in crashed.stderr


@pytest.mark.parametrize("step", ["delivery.reserved", "delivery.recorded"])
def test_a_crash_before_the_server_is_contacted_or_after_the_ledger_is_done_sends_once(settings, smtp_server, step):
    _crash(_env(settings, smtp_server), step)
    smtp = smtp_settings(settings, smtp_server.port, retries=0)
    again = deliver_scorecard(smtp, PERIOD)
    assert _per_recipient(smtp_server) == Counter(ACTIVE_RECIPIENTS)  # exactly once each
    if step == "delivery.reserved":  # the abandoned reservation is settled, then the month sent
        assert again.status == "sent"
        assert _ledger(settings) == ["failed", "sent"]
        [abandoned] = mailer.ledger_entries(settings, "scorecard")[:1]
        assert "nothing was sent" in abandoned.detail
    else:
        assert again.skipped and "already sent" in str(again)
        assert _ledger(settings) == ["sent"]
    assert (LEAD_ONE, "accepted") in _recipients(settings)
    assert deliver_scorecard(smtp, PERIOD).skipped and len(smtp_server.received) == 1
    assert _no_temporary_files(settings) == []


@pytest.mark.parametrize("step", ["delivery.handing_over", "delivery.accepted"])
def test_a_crash_while_the_server_may_have_it_is_reported_never_resent(settings, smtp_server, step, monkeypatch, capsys):
    env = _env(settings, smtp_server)
    _crash(env, step)
    delivered = 1 if step == "delivery.accepted" else 0
    assert len(smtp_server.received) == delivered

    smtp = smtp_settings(settings, smtp_server.port, retries=0)
    for _ in range(2):  # every later run says so, and sends nothing
        with pytest.raises(mailer.DeliveryUncertain) as uncertain:
            deliver_scorecard(smtp, PERIOD)
        text = str(uncertain.value)
        assert "may have been sent" in text and "--mark-sent" in text and "--force" in text
        assert f"Message-ID {uncertain.value.entry.message_id}" in text
        assert uncertain.value.__cause__ is None  # not an outage: the retry policy must not retry it
        assert len(smtp_server.received) == delivered
    assert _ledger(settings) == ["uncertain"]
    assert _recipients(settings) == [(LEAD_ONE, "uncertain"), (LEAD_TWO, "uncertain")]
    message_id = uncertain.value.entry.message_id

    if step == "delivery.accepted":
        # The command tells the engineer; the Message-ID is the one the server's log shows.
        told = _pkpi(env, "--send")
        assert told.returncode == 1 and "may have been sent" in told.stderr and message_id in told.stderr
        assert smtp_server.received[0].message["Message-ID"] == message_id
        assert _main(monkeypatch, env, "--mark-sent") == 0
        assert "recorded as sent" in capsys.readouterr().out
        assert deliver_scorecard(smtp, PERIOD).skipped
        assert _ledger(settings) == ["sent"]
        assert _recipients(settings) == [(LEAD_ONE, "accepted"), (LEAD_TWO, "accepted")]
    else:
        # Nothing reached the server (the log has no such Message-ID): a deliberate resend.
        assert deliver_scorecard(smtp, PERIOD, force=True).status == "sent"
        assert _ledger(settings) == ["uncertain", "sent"]
        assert deliver_scorecard(smtp, PERIOD).skipped
    assert _per_recipient(smtp_server) == Counter(ACTIVE_RECIPIENTS)
    assert _main(monkeypatch, env, "--mark-sent") == 1  # nothing is uncertain any more
    assert "nothing to mark as sent" in capsys.readouterr().err


@pytest.mark.parametrize("step", ["delivery.reserved", "delivery.outbox_written", "delivery.recorded"])
def test_a_crash_while_writing_the_outbox_leaves_one_whole_eml(settings, step):
    _crash(_env(settings), step)  # no SMTP host: the outbox
    again = deliver_scorecard(settings, PERIOD)
    assert again.status == ("outbox" if step == "delivery.reserved" else "skipped")
    [eml] = settings.outbox_dir.glob("*.eml")
    assert eml.read_bytes().rstrip().endswith(b"--")  # whole: the MIME message is closed
    assert _ledger(settings)[-1] == "written_to_outbox"
    assert _ledger(settings).count("written_to_outbox") == 1
    assert _no_temporary_files(settings) == []


# --- concurrency -------------------------------------------------------------------------


class _Slow:
    """An SMTP server that takes a few seconds over each message: the two sends overlap."""

    def __init__(self):
        self.received: list[Received] = []

    async def handle_DATA(self, server, session, envelope):
        await asyncio.sleep(4)
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted for delivery"


def test_two_concurrent_send_processes_deliver_one_email(settings):
    smtp_server = _Slow()
    smtp_server.port = free_port()
    controller = Controller(smtp_server, hostname=HOST, port=smtp_server.port)
    controller.start()
    try:
        _two_concurrent_sends(settings, smtp_server)
    finally:
        controller.stop()


def _two_concurrent_sends(settings, smtp_server):
    env = _env(settings, smtp_server)
    runs = [subprocess.Popen([str(PKPI), "scorecard", "--period", PERIOD, "--send"], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [run.communicate(timeout=300) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    assert _per_recipient(smtp_server) == Counter(ACTIVE_RECIPIENTS)
    assert _ledger(settings) == ["sent"]
    assert sum("already sent" in out for out, _ in outputs) == 1


def test_two_threads_with_their_own_connections_deliver_one_email(settings, smtp_server):
    smtp = smtp_settings(settings, smtp_server.port, retries=0)
    results, errors = [], []

    def send():
        try:
            results.append(deliver_scorecard(smtp, PERIOD))
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=send) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    assert sorted(r.status for r in results) == ["sent", "skipped"]
    assert _per_recipient(smtp_server) == Counter(ACTIVE_RECIPIENTS)


# --- refused recipients ------------------------------------------------------------------


class _Refusing:
    """An SMTP server that refuses RCPT for the addresses in ``refuse`` (550, no such user)."""

    def __init__(self, refuse: set[str]):
        self.refuse = refuse
        self.received: list[Received] = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted for delivery"


@pytest.fixture
def refusing_server():
    handler = _Refusing({LEAD_TWO})
    handler.port = free_port()
    controller = Controller(handler, hostname=HOST, port=handler.port)
    controller.start()
    try:
        yield handler
    finally:
        controller.stop()


def _main(monkeypatch, env, *args) -> int:
    for key in [k for k in os.environ if k.startswith("PKPI_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        if key.startswith("PKPI_"):
            monkeypatch.setenv(key, value)
    return main(["scorecard", "--period", PERIOD, *args])


def test_refused_recipients_are_recorded_and_retried_alone(settings, refusing_server, monkeypatch, capsys):
    env = _env(settings, refusing_server)
    assert _main(monkeypatch, env, "--send") == 0
    out = capsys.readouterr().out
    assert "sent to 1 of 2 recipient(s); the mail server refused 1" in out
    assert f"pkpi scorecard --period {PERIOD} --send --only-failed" in out
    assert _ledger(settings) == ["partly_refused"]
    assert _recipients(settings) == [(LEAD_ONE, "accepted"), (LEAD_TWO, "refused")]
    [refused] = [r for r in mailer.recipient_entries(settings, "scorecard", PERIOD) if r.status == "refused"]
    assert refused.detail.startswith("550")

    # A plain rerun does not send it to lead one again; it points at --only-failed.
    assert _main(monkeypatch, env, "--send") == 0
    assert "--only-failed" in capsys.readouterr().out
    assert _per_recipient(refusing_server) == Counter({LEAD_ONE: 1})

    # The mailbox is fixed: only lead two gets it now, with a Message-ID of its own.
    refusing_server.refuse.clear()
    assert _main(monkeypatch, env, "--send", "--only-failed") == 0
    assert _per_recipient(refusing_server) == Counter(ACTIVE_RECIPIENTS)
    first, retry = (r.message for r in refusing_server.received)
    assert first["Message-ID"] != retry["Message-ID"] and retry["Subject"] == first["Subject"]
    assert _ledger(settings) == ["partly_refused", "sent"]
    assert _main(monkeypatch, env, "--send", "--only-failed") == 0
    assert "nothing to retry" in capsys.readouterr().out
    assert len(refusing_server.received) == 2


def test_every_recipient_refused_is_failed_and_sent_later(settings, refusing_server, monkeypatch, capsys):
    refusing_server.refuse.update(ACTIVE_RECIPIENTS)
    env = _env(settings, refusing_server)
    assert _main(monkeypatch, env, "--send") == 1
    assert "refused every recipient" in capsys.readouterr().err
    assert _recipients(settings) == [(LEAD_ONE, "refused"), (LEAD_TWO, "refused")]
    refusing_server.refuse.clear()
    assert _main(monkeypatch, env, "--send") == 0
    assert _per_recipient(refusing_server) == Counter(ACTIVE_RECIPIENTS)
    assert _ledger(settings) == ["failed", "sent"]


# --- the outbox is not the mail server ---------------------------------------------------


def test_a_month_written_to_the_outbox_is_sent_once_smtp_is_configured(settings, smtp_server):
    assert deliver_scorecard(settings, PERIOD).status == "outbox"
    assert deliver_scorecard(settings, PERIOD).skipped  # without SMTP: not written twice
    smtp = smtp_settings(settings, smtp_server.port, retries=0)
    assert deliver_scorecard(smtp, PERIOD).status == "sent"
    assert deliver_scorecard(smtp, PERIOD).skipped
    assert _per_recipient(smtp_server) == Counter(ACTIVE_RECIPIENTS)
    assert _ledger(settings) == ["written_to_outbox", "sent"]
    with connect(settings, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM audit.emails WHERE status = 'sent' AND smtp_started_at IS NULL"
                           ).fetchone() == (0,)


def test_a_notice_written_to_the_outbox_is_delivered_when_sent_again_with_smtp(settings, smtp_server):
    from email.message import EmailMessage

    def notice():
        m = EmailMessage()
        m["Subject"], m["To"] = "Your contacts return was rejected", "data@nct.example"
        m.set_content("Row 4: not a date.")
        return m

    key = "rejection:contacts:NCT:2026-03:abc"
    assert mailer.deliver(settings, notice(), "rejection", key).status == "outbox"
    smtp = smtp_settings(settings, smtp_server.port, retries=0)
    assert mailer.deliver(smtp, notice(), "rejection", key).status == "sent"
    assert mailer.deliver(smtp, notice(), "rejection", key).skipped
    assert len(smtp_server.received) == 1


def test_rejection_notices_written_to_the_outbox_go_out_once_smtp_is_configured(settings, smtp_server):
    from email.message import EmailMessage

    message = EmailMessage()
    message["Subject"], message["To"] = "Your contacts return was rejected", "data@nct.example"
    message.set_content("Row 4: not a date.")
    key = "rejection:contacts:NCT:2026-03:def"
    written = mailer.deliver(settings, message, "rejection", key, partner_code="NCT")
    assert mailer.deliver_outbox(settings) == []  # still no mail server: nothing to do
    smtp = smtp_settings(settings, smtp_server.port, retries=0)
    [sent] = mailer.deliver_outbox(smtp)
    assert sent.status == "sent" and sent.message_id == written.message_id
    [received] = smtp_server.received
    assert received.rcpt_tos == ["data@nct.example"] and received.message["Subject"] == message["Subject"]
    assert [o.status for o in mailer.deliver_outbox(smtp)] == []  # once
    assert len(smtp_server.received) == 1


def test_a_ledger_from_before_gains_the_new_columns_and_keeps_its_outbox_rows(settings, smtp_server):
    with connect(settings) as con:  # the ledger as the previous version made it
        con.execute("DROP TABLE audit.email_recipients")
        con.execute("DROP TABLE audit.emails")
        con.execute("""CREATE TABLE audit.emails (email_id VARCHAR PRIMARY KEY, kind VARCHAR NOT NULL,
            idempotency_key VARCHAR NOT NULL, period VARCHAR, partner_code VARCHAR, recipients VARCHAR NOT NULL,
            subject VARCHAR NOT NULL, message_id VARCHAR NOT NULL, status VARCHAR NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 1, detail VARCHAR, created_at TIMESTAMP NOT NULL)""")
        con.execute("INSERT INTO audit.emails VALUES ('old', 'scorecard', ?, ?, NULL, ?, 's', '<m@x>', 'outbox', 0,"
                    " 'outbox/old.eml', TIMESTAMP '2026-04-20 08:00:00')", [PERIOD, PERIOD, LEAD_ONE])
    # Without SMTP the old outbox row still counts: not written again.
    assert deliver_scorecard(settings, PERIOD).skipped
    assert not settings.outbox_dir.exists() or not list(settings.outbox_dir.glob("*.eml"))
    # With SMTP it is not "sent": the month goes out, once.
    smtp = smtp_settings(settings, smtp_server.port, retries=0)
    assert deliver_scorecard(smtp, PERIOD).status == "sent"
    assert deliver_scorecard(smtp, PERIOD).skipped
    assert _ledger(settings) == ["outbox", "sent"] and len(smtp_server.received) == 1


class _HangsUpAfterData:
    """An SMTP server that takes the whole message, then drops the connection before its reply."""

    def __init__(self):
        self.received: list[Received] = []

    async def handle_DATA(self, server, session, envelope):
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        server.transport.close()
        return "250 Message accepted for delivery"


def test_a_connection_lost_after_the_data_is_uncertain_not_retried(settings):
    handler = _HangsUpAfterData()
    port = free_port()
    controller = Controller(handler, hostname=HOST, port=port)
    controller.start()
    try:
        smtp = smtp_settings(settings, port, retries=3)  # an outage would be retried; this is not one
        with pytest.raises(mailer.DeliveryUncertain, match="may have been sent"):
            deliver_scorecard(smtp, PERIOD)
        assert len(handler.received) == 1
        with pytest.raises(mailer.DeliveryUncertain):
            deliver_scorecard(smtp, PERIOD)
        assert len(handler.received) == 1
    finally:
        controller.stop()
    [entry] = mailer.ledger_entries(settings, "scorecard")
    assert (entry.status, entry.attempts) == ("uncertain", 1)
    assert "connection was lost while the server had the message" in entry.detail
