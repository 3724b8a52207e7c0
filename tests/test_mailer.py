"""Email delivery: a real SMTP server on 127.0.0.1, the outbox, and the ledger in audit.emails."""

from __future__ import annotations

import io
import re
import shutil
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

import openpyxl
import pytest
from pypdf import PdfReader

from pkpi import mailer
from pkpi.airflow import smtp as airflow_smtp
from pkpi.delivery import deliver_scorecard
from pkpi.settings import SmtpSettings
from support.delivery import produced_data, settings  # noqa: F401,F811 - fixtures
from support.mart_fixture import ACTIVE_RECIPIENTS, INACTIVE_RECIPIENT, PERIOD, make_settings
from support.smtp import free_port, running_smtp_server, smtp_server, smtp_settings  # noqa: F401,F811 - fixture


def _smtp(settings, port, **changes):
    return smtp_settings(settings, port, retries=1, **changes)


def _ledger(settings, kind="scorecard"):
    return [(e.idempotency_key, e.status) for e in mailer.ledger_entries(settings, kind)]


def test_scorecard_email_reaches_the_active_distribution_list(settings, smtp_server):
    result = deliver_scorecard(_smtp(settings, smtp_server.port), PERIOD)
    assert result.status == "sent"
    [received] = smtp_server.received
    assert sorted(received.rcpt_tos) == sorted(ACTIVE_RECIPIENTS)
    assert INACTIVE_RECIPIENT not in received.content.decode(errors="replace")
    message = received.message
    assert message["Subject"] == (
        "Northamptonshire Safeguarding Children Partnership scorecard: March 2026 (provisional)"
    )
    assert message["Message-ID"] == result.outcome.message_id

    # The HTML body shows the charts inline: every cid: it refers to is a related image part.
    html_part = message.get_body(("html",))
    html = html_part.get_content()
    cids = {src[4:] for src in re.findall(r'src="(cid:[^"]+)"', html)}
    images = {
        part["Content-ID"].strip("<>"): part for part in message.walk()
        if part.get_content_type() == "image/png"
    }
    assert cids and cids == set(images)
    assert all(p.get_content().startswith(b"\x89PNG") for p in images.values())
    assert "✔ Green" in html and "Contacts received" in html
    text = message.get_body(("plain",)).get_content()
    assert "Contacts received" in text and "West Northamptonshire Council: missing" in text

    # The PDF and the workbook are attached and open.
    attachments = {part.get_filename(): part for part in message.iter_attachments()}
    assert set(attachments) == {"scorecard-2026-03.pdf", "scorecard-2026-03.xlsx"}
    pdf = PdfReader(io.BytesIO(attachments["scorecard-2026-03.pdf"].get_content()))
    assert "Partnership scorecard: March 2026" in pdf.pages[0].extract_text()
    workbook = openpyxl.load_workbook(io.BytesIO(attachments["scorecard-2026-03.xlsx"].get_content()))
    assert "Summary" in workbook.sheetnames

    assert _ledger(settings) == [(PERIOD, "sent")]
    [entry] = mailer.ledger_entries(settings, "scorecard")
    assert entry.period == PERIOD and entry.attempts == 1
    assert sorted(entry.recipients.split(", ")) == sorted(ACTIVE_RECIPIENTS)


def test_a_month_already_sent_is_not_sent_again_without_force(settings, smtp_server):
    smtp_settings = _smtp(settings, smtp_server.port)
    assert deliver_scorecard(smtp_settings, PERIOD).status == "sent"
    again = deliver_scorecard(smtp_settings, PERIOD)
    assert again.skipped and "already sent" in str(again)
    assert len(smtp_server.received) == 1
    forced = deliver_scorecard(smtp_settings, PERIOD, force=True)
    assert forced.status == "sent"
    assert len(smtp_server.received) == 2
    assert _ledger(settings) == [(PERIOD, "sent"), (PERIOD, "sent")]


def test_the_scorecard_is_produced_first_when_its_files_are_missing(settings, smtp_server):
    shutil.rmtree(settings.exports_dir)
    result = deliver_scorecard(_smtp(settings, smtp_server.port), PERIOD)
    assert result.status == "sent"
    assert (settings.exports_dir / PERIOD / "scorecard.pdf").is_file()


def test_an_unreachable_server_is_recorded_as_failed_never_sent(settings):
    closed = _smtp(settings, free_port())
    with pytest.raises(mailer.MailDeliveryError, match="recorded in audit.emails as failed") as err:
        deliver_scorecard(closed, PERIOD)
    assert isinstance(err.value.__cause__, ConnectionRefusedError)  # the retry policy can see it
    [entry] = mailer.ledger_entries(settings, "scorecard")
    assert entry.status == "failed" and entry.attempts == 2  # the first try and one retry
    assert "ConnectionRefusedError" in entry.detail
    # A failure does not count as delivered: the next run tries again.
    with running_smtp_server() as server:
        assert deliver_scorecard(_smtp(settings, server.port), PERIOD).status == "sent"
    assert _ledger(settings) == [(PERIOD, "failed"), (PERIOD, "sent")]


def test_starttls_is_never_skipped_silently(settings, smtp_server):
    # The test server offers no STARTTLS: sending in clear instead would leak the scorecard.
    with pytest.raises(mailer.MailDeliveryError):
        deliver_scorecard(_smtp(settings, smtp_server.port, security="starttls"), PERIOD)
    assert smtp_server.received == []
    [entry] = mailer.ledger_entries(settings, "scorecard")
    assert entry.status == "failed" and entry.attempts == 1  # a refusal is not retried


def _notice(to="data@nct.example") -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = "Your contacts return for 2026-03 was rejected"
    message["To"] = to
    message.set_content("Row 4, contact_date: 2026-02-30 is not a date.")
    return message


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_smtp_login_with_the_configured_user(settings):
    with running_smtp_server(credentials=("pkpi", "correct horse")) as server:
        good = _smtp(settings, server.port, user="pkpi", password="correct horse")
        outcome = mailer.deliver(good, _notice(), kind="rejection", idempotency_key="k1", partner_code="NCT")
        assert outcome.status == "sent" and server.logins == ["pkpi"]
        bad = _smtp(settings, server.port, user="pkpi", password="wrong")
        with pytest.raises(mailer.MailDeliveryError, match="SMTPAuthenticationError"):
            mailer.deliver(bad, _notice(), kind="rejection", idempotency_key="k2")
        assert len(server.received) == 1
    statuses = {(e.idempotency_key, e.status, e.attempts) for e in mailer.ledger_entries(settings, "rejection")}
    assert statuses == {("k1", "sent", 1), ("k2", "failed", 1)}


def test_without_smtp_the_email_is_written_to_the_outbox(settings):
    result = deliver_scorecard(settings, PERIOD)
    assert result.status == "outbox"
    [eml] = settings.outbox_dir.glob("*.eml")
    assert eml == result.outcome.path
    assert eml.name.endswith(f"-scorecard-{PERIOD}.eml")
    message = BytesParser(policy=policy.default).parsebytes(eml.read_bytes())
    assert "March 2026" in message["Subject"]
    assert {a.strip() for a in message["To"].split(",")} >= {f"Lead One <{ACTIVE_RECIPIENTS[0]}>"}
    assert {p.get_filename() for p in message.iter_attachments()} == {"scorecard-2026-03.pdf", "scorecard-2026-03.xlsx"}
    assert _ledger(settings) == [(PERIOD, "written_to_outbox")]
    # Written once: a rerun without force leaves the outbox alone.
    assert deliver_scorecard(settings, PERIOD).skipped
    assert len(list(settings.outbox_dir.glob("*.eml"))) == 1
    assert deliver_scorecard(settings, PERIOD, force=True).status == "outbox"
    assert len(list(settings.outbox_dir.glob("*.eml"))) == 2


def test_generic_delivery_is_idempotent_per_kind_and_key(settings, smtp_server):
    smtp_settings = _smtp(settings, smtp_server.port)
    first = mailer.deliver(smtp_settings, _notice(), kind="rejection", idempotency_key="rejection:abc")
    assert first.status == "sent" and first.recipients == ("data@nct.example",)
    assert mailer.deliver(smtp_settings, _notice(), kind="rejection", idempotency_key="rejection:abc").skipped
    assert mailer.deliver(smtp_settings, _notice(), kind="reminder", idempotency_key="rejection:abc").status == "sent"
    assert len(smtp_server.received) == 2
    with pytest.raises(mailer.MailerError, match="no recipients"):
        mailer.deliver(smtp_settings, _notice(to=""), kind="rejection", idempotency_key="x")
    with pytest.raises(mailer.MailerError, match="Unknown email kind"):
        mailer.deliver(smtp_settings, _notice(), kind="newsletter", idempotency_key="x")


def test_smtp_settings_from_the_airflow_connection(monkeypatch, tmp_path):
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "airflow"))
    monkeypatch.setenv(
        "AIRFLOW_CONN_SMTP_DEFAULT",
        "smtp://mailer:s3cret-pass@mail.partnership.example:2525?disable_ssl=true&from_email=data%40partnership.example",
    )
    smtp = airflow_smtp.smtp_settings_from_airflow()
    assert smtp == SmtpSettings(
        host="mail.partnership.example", port=2525, security="starttls", user="mailer",
        password="s3cret-pass", sender="data@partnership.example",
    )
    settings = make_settings(tmp_path)
    assert airflow_smtp.with_airflow_smtp(settings).smtp == smtp
    # PKPI_SMTP_HOST wins over Airflow's connection.
    env_settings = make_settings(tmp_path, PKPI_SMTP_HOST="smtp.env.example")
    assert airflow_smtp.with_airflow_smtp(env_settings).smtp.host == "smtp.env.example"
    assert airflow_smtp.smtp_settings_from_airflow("no_such_connection") is None
