"""Email the month's scorecard to the distribution list (or write it to the outbox).

:func:`deliver_scorecard` builds the message from the files :func:`pkpi.scorecard.produce_scorecard`
wrote for the month (producing them first if they are missing), so what is emailed is exactly
what was exported, already through disclosure control:

    multipart/mixed
      multipart/alternative
        text/plain                      the headline figures as text
        multipart/related
          text/html                     the headline figures, RAG by word and symbol
          image/png (Content-ID) ...    the trend charts, shown inline
      application/pdf                   scorecard-<YYYY-MM>.pdf
      application/vnd...sheet           scorecard-<YYYY-MM>.xlsx

It goes to the active rows of distribution_list.csv through :func:`pkpi.mailer.deliver` with
kind ``scorecard`` and the month as idempotency key: exactly once (see pkpi.mailer for the
ledger states, crashes and refused recipients); a month already sent is not sent again unless
``force`` is true.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formataddr
from pathlib import Path

from . import mailer
from .errors import PermanentError
from .periods import parse_month
from .reference import load_reference
from .scorecard import export_dir, listed_files, produce_scorecard
from .settings import Settings

KIND = "scorecard"
ATTACHMENT_TYPES = {
    ".pdf": ("application", "pdf"),
    ".xlsx": ("application", "vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
}


class DeliveryError(PermanentError, RuntimeError):
    """The scorecard email cannot be put together; the message says what to fix."""


@dataclass(frozen=True)
class DeliveryResult:
    """What happened to one month's scorecard email."""

    period: str
    outcome: mailer.DeliveryOutcome
    directory: Path

    @property
    def status(self) -> str:
        """'sent', 'partly_refused', 'outbox' or 'skipped' (already done; use force to send again)."""
        return self.outcome.status

    @property
    def subject(self) -> str:
        return self.outcome.subject

    @property
    def recipients(self) -> tuple[str, ...]:
        return self.outcome.recipients

    @property
    def skipped(self) -> bool:
        return self.outcome.skipped

    @property
    def refused(self) -> tuple[str, ...]:
        """Recipients the mail server refused (retry them alone with ``only_failed``)."""
        return self.outcome.refused

    def __str__(self) -> str:
        text = f"Scorecard for {self.period}: {self.outcome}"
        if self.refused:
            text += (f"\nTo send it to the {len(self.refused)} refused recipient(s) alone, once their "
                     f"addresses are right: pkpi scorecard --period {self.period} --send --only-failed")
        return text


def _recipients(settings: Settings) -> list[str]:
    active = load_reference(settings).active_recipients
    if not active:
        raise DeliveryError(
            f"distribution_list.csv in {settings.reference_dir} has no active recipients, so the "
            "scorecard has no one to go to. Set active to true for at least one row and run again."
        )
    return [formataddr((r.name, r.email)) for r in active]


def _manifest(settings: Settings, period: str) -> tuple[Path, dict]:
    """The month's export folder and manifest, producing the scorecard first if files are missing."""
    folder = export_dir(settings, period)
    manifest_path = folder / "manifest.json"

    def complete() -> bool:
        if not manifest_path.is_file():
            return False
        try:
            needed = listed_files(json.loads(manifest_path.read_text(encoding="utf-8")))
        except (KeyError, TypeError):
            return False  # written by an older version: produce the month again
        return all((folder / name).is_file() for name in needed)

    if not complete():
        produce_scorecard(settings, period)
    return folder, json.loads(manifest_path.read_text(encoding="utf-8"))


def build_message(settings: Settings, period: str, recipients: list[str]) -> EmailMessage:
    """The scorecard email for ``period`` from its exported files (see the module docstring)."""
    folder, manifest = _manifest(settings, period)
    message = EmailMessage()
    message["Subject"] = manifest["subject"]
    message["From"] = settings.smtp.sender
    message["To"] = ", ".join(recipients)
    message.set_content((folder / manifest["email"]["text"]).read_text(encoding="utf-8"))
    message.add_alternative((folder / manifest["email"]["html"]).read_text(encoding="utf-8"), subtype="html")
    html_part = message.get_payload()[1]
    for chart in manifest["charts"]:
        path = folder / chart["file"]
        html_part.add_related(
            path.read_bytes(), maintype="image", subtype="png", cid=f"<{chart['cid']}>",
            filename=path.name, disposition="inline",
        )
    for attachment in manifest["attachments"]:
        maintype, subtype = ATTACHMENT_TYPES[Path(attachment["file"]).suffix]
        message.add_attachment((folder / attachment["file"]).read_bytes(), maintype=maintype,
                               subtype=subtype, filename=attachment["filename"])
    return message


def deliver_scorecard(settings: Settings, period: str, force: bool = False,
                      only_failed: bool = False) -> DeliveryResult:
    """Email the scorecard for ``period`` to the active distribution list, exactly once.

    Without SMTP settings the email is written to the outbox instead (recorded as
    ``written_to_outbox``: a later run with SMTP configured sends it). A month the mail server
    accepted is skipped unless ``force`` is true; ``only_failed`` sends only to the active
    recipients it has not accepted yet (the refused ones). Raises
    :class:`pkpi.mailer.MailDeliveryError` when the mail server refuses or cannot be reached
    (recorded as 'failed' in audit.emails first) and :class:`pkpi.mailer.DeliveryUncertain`
    when an attempt may have reached the server (never resent automatically).
    """
    period = parse_month(period).label
    message = build_message(settings, period, _recipients(settings))
    outcome = mailer.deliver(settings, message, kind=KIND, idempotency_key=period, period=period,
                             force=force, only_failed=only_failed)
    return DeliveryResult(period, outcome, export_dir(settings, period))
