"""What a partner is sent about its file (issue 14, item 4): the rejection notice and report
read on a phone, say when the return is due, what to do next and where its contract is; a
receipt for an accepted return, when PKPI_SEND_RECEIPTS turns it on, arrives once per file.

Real ingests into tmp warehouses, the notices read back from the outbox or from a real SMTP
server on loopback (aiosmtpd), the pages opened in a real headless Chromium at 390 px.
tests/test_crash_ingest.py crashes ingest at every step with receipts on.
"""

from __future__ import annotations

import email
import email.policy
import re
from datetime import datetime
from pathlib import Path

import pytest

from pkpi.ingest import ingest_landing
from pkpi.settings import Settings, SettingsError
from support.returns import CONTACT_PARTNERS, MONTH, TODAY, csv_bytes, drop_file, make_reference, table
from support.smtp import smtp_server, smtp_settings  # noqa: F401 - fixture

CONTACTS = f"contacts/NCT/{MONTH}"
CONTACT = CONTACT_PARTNERS["NCT"]
GUIDE = "https://guide.partnership.example/returns/"
BEFORE_DUE = datetime(2025, 4, 5, 10, 30).timestamp()
AFTER_DUE = datetime(2025, 4, 12, 9, 0).timestamp()  # NCT's contacts are due 10 days after the month
DUE_WORDS = "Thursday 10 April 2025"
PHONE = 390
HOSTILE_NAME = "<img src=x onerror=alert(1)>.csv"
HOSTILE_COLUMN = "<script>alert(1)</script>"


def make_settings(tmp_path: Path, **env: str) -> Settings:
    return Settings.from_env({"PKPI_DATA_DIR": str(tmp_path / "data"),
                              "PKPI_REFERENCE_DIR": str(make_reference(tmp_path / "reference")),
                              "PKPI_PARTNER_GUIDE_URL": GUIDE, **env})


def outbox_messages(settings: Settings) -> list[email.message.EmailMessage]:
    return [email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
            for p in sorted(settings.outbox_dir.glob("*.eml"))]


def rejected(tmp_path: Path, relative: str, content: bytes) -> tuple[Path, Path]:
    """Ingest one bad file; the notice's HTML body and the report, as files a browser opens."""
    settings = make_settings(tmp_path)
    drop_file(settings.landing_dir, relative, content, BEFORE_DUE)
    assert len(ingest_landing(settings, today=TODAY).rejected) == 1
    [notice] = outbox_messages(settings)
    page = tmp_path / "notice.html"
    page.write_text(notice.get_body(("html",)).get_content(), encoding="utf-8")
    [report] = settings.quarantine_dir.rglob("report.html")
    return page, report


def long_values_file() -> bytes:
    """Problems whose values, and a file name, have no space to break at."""
    return csv_bytes(table("contacts", {(2, "contact_source"): "x" * 300, (3, "sex"): "y" * 120,
                                        (4, "child_age_years"): "18"}))


def open_at_phone_width(page_at, path: Path) -> dict:
    page = page_at(PHONE)
    page.goto(path.as_uri())
    return page.evaluate("""() => ({
        scroll: document.documentElement.scrollWidth,
        tables: [...document.querySelectorAll('table')].map(t => Math.ceil(t.getBoundingClientRect().right)),
        steps: [...document.querySelectorAll('#next li')].map(li => li.textContent),
        contract: document.querySelector('a#contract')?.href,
        text: document.body.innerText,
        made: document.querySelectorAll('script, img, iframe, [onerror]').length,
    })""")


def test_the_notice_and_report_fit_a_phone_and_say_when_it_is_due_and_what_to_do(tmp_path, page_at):
    notice, report = rejected(tmp_path, f"{CONTACTS}/{'m' * 120}.csv", long_values_file())
    for path in (notice, report):
        seen = open_at_phone_width(page_at, path)
        assert seen["scroll"] <= PHONE, (path.name, seen["scroll"])
        assert seen["tables"] and max(seen["tables"]) <= PHONE, (path.name, seen["tables"])
        assert any(DUE_WORDS in step for step in seen["steps"]), seen["steps"]
        assert any(f"landing/{CONTACTS}/" in step for step in seen["steps"]), seen["steps"]
        assert any("checked every hour" in step for step in seen["steps"]), seen["steps"]
        assert seen["contract"] == GUIDE + "contacts.md"
    rules = re.findall(r"contact_source|sex|child_age_years", open_at_phone_width(page_at, notice)["text"])
    assert {"contact_source", "sex", "child_age_years"} <= set(rules)


def test_the_notice_says_when_the_return_is_already_late(tmp_path):
    settings = make_settings(tmp_path)
    drop_file(settings.landing_dir, f"{CONTACTS}/late.csv", long_values_file(), AFTER_DUE)
    ingest_landing(settings, today=TODAY)
    [notice] = outbox_messages(settings)
    text = notice.get_body(("plain",)).get_content()
    assert f"was due on {DUE_WORDS}, so it is late" in text
    assert f"{GUIDE}contacts.md" in text


def test_partner_values_are_escaped_in_the_notice_and_report(tmp_path, page_at):
    rows = table("contacts")
    rows = [rows[0] + [HOSTILE_COLUMN]] + [r + ['"><b onmouseover=alert(2)>'] for r in rows[1:]]
    notice, report = rejected(tmp_path, f"{CONTACTS}/{HOSTILE_NAME}", csv_bytes(rows))
    for path in (notice, report):
        html = path.read_text(encoding="utf-8")
        assert "<script" not in html and "<img" not in html and "<b onmouseover" not in html
        seen = open_at_phone_width(page_at, path)
        assert seen["made"] == 0  # nothing the partner wrote became an element
        assert HOSTILE_NAME in seen["text"] and HOSTILE_COLUMN in seen["text"]  # shown as text
        assert seen["scroll"] <= PHONE


def test_a_partner_guide_address_that_is_not_a_web_address_is_refused():
    with pytest.raises(SettingsError, match="PKPI_PARTNER_GUIDE_URL must be the web address"):
        Settings.from_env({"PKPI_PARTNER_GUIDE_URL": "javascript:alert(1)"})


# --- receipts ----------------------------------------------------------------------------


def receipts(server) -> list[email.message.EmailMessage]:
    return [r.message for r in server.received if r.message["Subject"].endswith(" was accepted")]


def test_no_receipt_unless_the_setting_turns_it_on(tmp_path, smtp_server):
    settings = smtp_settings(make_settings(tmp_path), smtp_server.port, retries=0)
    assert settings.send_receipts is False
    drop_file(settings.landing_dir, f"{CONTACTS}/march.csv", csv_bytes(table("contacts")), BEFORE_DUE)
    assert len(ingest_landing(settings, today=TODAY).accepted) == 1
    assert smtp_server.received == []


def test_a_receipt_is_sent_once_per_accepted_file(tmp_path, smtp_server):
    settings = smtp_settings(make_settings(tmp_path, PKPI_SEND_RECEIPTS="true"), smtp_server.port, retries=0)
    rows = table("contacts")
    drop_file(settings.landing_dir, f"{CONTACTS}/march.csv", csv_bytes(rows), BEFORE_DUE)
    ingest_landing(settings, today=TODAY)
    ingest_landing(settings, today=TODAY)  # nothing new: nothing sent again
    [receipt] = receipts(smtp_server)
    [envelope] = smtp_server.received
    assert envelope.rcpt_tos == [CONTACT]
    text = receipt.get_body(("plain",)).get_content()
    assert "Return: Front-door contacts and referrals (contacts)" in text
    assert "Partner: " in text and "(NCT)" in text
    assert "Period: March 2025" in text
    assert f"Rows counted: {len(rows) - 1}" in text
    assert f"On time: Yes (due {DUE_WORDS})" in text
    # Counts and dates only: no value of any row reaches the email, in either body.
    html = receipt.get_body(("html",)).get_content()
    header = rows[0]
    for row in rows[1:]:
        for column in ("contact_id", "child_id"):
            value = row[header.index(column)]
            assert value not in text and value not in html, value

    # The same bytes again are a duplicate: no receipt. A corrected file is accepted: one more.
    drop_file(settings.landing_dir, f"{CONTACTS}/march-again.csv", csv_bytes(rows), BEFORE_DUE + 60)
    ingest_landing(settings, today=TODAY)
    assert len(receipts(smtp_server)) == 1
    drop_file(settings.landing_dir, f"{CONTACTS}/march-corrected.csv", csv_bytes(rows[:-1]), AFTER_DUE)
    ingest_landing(settings, today=TODAY)
    first, second = receipts(smtp_server)
    later = second.get_body(("plain",)).get_content()
    assert "(march-corrected.csv)" in second["Subject"]
    assert f"Rows counted: {len(rows) - 2}" in later
    assert f"On time: No, late (due {DUE_WORDS})" in later


def test_a_nil_return_gets_a_receipt_that_says_so(tmp_path):
    settings = make_settings(tmp_path, PKPI_SEND_RECEIPTS="1")
    drop_file(settings.landing_dir, f"{CONTACTS}/nil.csv", csv_bytes(table("contacts")[:1]), BEFORE_DUE)
    ingest_landing(settings, today=TODAY)
    [receipt] = outbox_messages(settings)  # no mail server: written to the outbox, once
    assert "Rows counted: none: a nil return" in receipt.get_body(("plain",)).get_content()
    ingest_landing(settings, today=TODAY)
    assert len(outbox_messages(settings)) == 1


def test_the_receipt_fits_a_phone(tmp_path, page_at):
    settings = make_settings(tmp_path, PKPI_SEND_RECEIPTS="1")
    drop_file(settings.landing_dir, f"{CONTACTS}/{'m' * 120}.csv", csv_bytes(table("contacts")),
              BEFORE_DUE)
    ingest_landing(settings, today=TODAY)
    [receipt] = outbox_messages(settings)
    page = tmp_path / "receipt.html"
    page.write_text(receipt.get_body(("html",)).get_content(), encoding="utf-8")
    seen = open_at_phone_width(page_at, page)
    assert seen["scroll"] <= PHONE and max(seen["tables"]) <= PHONE
    assert seen["contract"] == GUIDE + "contacts.md"
