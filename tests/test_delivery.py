"""The scorecard email as a strategic lead receives it, through a real SMTP server (aiosmtpd).

tests/test_mailer.py covers the ledger, the outbox, refusals and logins; these tests cover what
is particular to the scorecard: the message reads well on its own and names its attachments
truly, a server that says "try again later" gets another attempt, and Airflow's SMTP connection
is enough to send.
"""

from __future__ import annotations

import re

from aiosmtpd.controller import Controller

from pkpi import mailer
from pkpi.airflow.smtp import with_airflow_smtp
from pkpi.delivery import deliver_scorecard
from support.delivery import produced_data, settings  # noqa: F401,F811 - fixtures
from support.mart_fixture import ACTIVE_RECIPIENTS, PERIOD
from support.smtp import HOST, Received, free_port, smtp_server, smtp_settings  # noqa: F401 - fixture


def _smtp(settings, port, **changes):
    return smtp_settings(settings, port, retries=2, **changes)


def test_the_email_reads_well_without_its_attachments(settings, smtp_server):
    result = deliver_scorecard(_smtp(settings, smtp_server.port), PERIOD)
    [received] = smtp_server.received
    message = received.message
    assert message.get_content_type() == "multipart/mixed"
    alternative = next(p for p in message.iter_parts() if p.get_content_type() == "multipart/alternative")
    assert [p.get_content_type() for p in alternative.iter_parts()] == ["text/plain", "multipart/related"]
    related = list(alternative.iter_parts())[1]
    parts = list(related.iter_parts())
    assert parts[0].get_content_type() == "text/html"
    assert {p.get_content_type() for p in parts[1:]} == {"image/png"}

    html = parts[0].get_content()
    # Every chart is inline, referred to by its Content-ID; none is fetched from anywhere.
    cids = re.findall(r'src="cid:([^"]+)"', html)
    assert sorted(cids) == sorted(p["Content-ID"].strip("<>") for p in parts[1:])
    assert not re.search(r'src="(?!cid:)', html)
    # Headline figures, with RAG as a word and a symbol, and the provisional note.
    for text in ("Contacts received", "391", "✖ Red", "▲ Amber", "○ Grey", "Provisional figures"):
        assert text in html
    # The attachments it mentions are the attachments it has.
    attached = sorted(p.get_filename() for p in message.iter_attachments())
    assert attached == [f"scorecard-{PERIOD}.pdf", f"scorecard-{PERIOD}.xlsx"]
    text = message.get_body(("plain",)).get_content()
    for name in attached:
        assert name in html and name in text
    assert result.subject == message["Subject"]
    assert "March 2026" in message["Subject"] and "(provisional)" in message["Subject"]


class _BusyThenAccepting:
    """An SMTP handler that answers 451 (try again later) to the first message only."""

    def __init__(self):
        self.received: list[Received] = []
        self.refused = 0

    async def handle_DATA(self, server, session, envelope):
        if self.refused == 0:
            self.refused += 1
            return "451 4.3.0 Mail system busy, try again later"
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted for delivery"


def test_a_server_that_says_try_later_gets_another_attempt(settings):
    handler = _BusyThenAccepting()
    port = free_port()
    controller = Controller(handler, hostname=HOST, port=port)
    controller.start()
    try:
        result = deliver_scorecard(_smtp(settings, port), PERIOD)
    finally:
        controller.stop()
    assert result.status == "sent" and handler.refused == 1
    [received] = handler.received
    assert sorted(received.rcpt_tos) == sorted(ACTIVE_RECIPIENTS)
    [entry] = mailer.ledger_entries(settings, "scorecard")
    assert (entry.status, entry.attempts) == ("sent", 2)


def test_airflows_smtp_connection_is_enough_to_send(settings, smtp_server, monkeypatch, tmp_path):
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "airflow"))
    monkeypatch.setenv(
        "AIRFLOW_CONN_SMTP_DEFAULT",
        f"smtp://{HOST}:{smtp_server.port}?disable_ssl=true&disable_tls=true"
        "&from_email=scorecard%40partnership.example",
    )
    assert not settings.smtp.configured  # no PKPI_SMTP_HOST: the outbox, unless Airflow says otherwise
    result = deliver_scorecard(with_airflow_smtp(settings), PERIOD)
    assert result.status == "sent"
    [received] = smtp_server.received
    assert received.mail_from == "scorecard@partnership.example"
    assert not settings.outbox_dir.exists() or not list(settings.outbox_dir.glob("*.eml"))
