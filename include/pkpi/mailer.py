"""Send an email, or write it to the outbox, and record it in the ledger (audit.emails).

:func:`deliver` is the one way anything leaves by email: scorecards, rejection notices,
reminders and alerts. With SMTP settings it sends through ``smtplib`` (plain, STARTTLS or
SSL; login when a user is set; retries with backoff) and records ``sent`` or ``failed``.
Without them it writes ``$PKPI_DATA_DIR/outbox/<timestamp>-<kind>-<key>.eml`` and records
``outbox``, so a fresh install shows exactly what would have been sent.

Each message has an idempotency key (for example the scorecard's month): a key already
``sent`` or written to the ``outbox`` is not delivered again unless ``force=True``. The ledger
is written in short transactions; the warehouse lock is never held while talking to the mail
server.
"""

from __future__ import annotations

import logging
import re
import smtplib
import socket
import ssl
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from email.message import EmailMessage
from email.utils import formatdate, getaddresses, make_msgid, parseaddr
from pathlib import Path

import duckdb

from .settings import Settings, SmtpSettings
from .warehouse import connect

log = logging.getLogger(__name__)

KINDS = ("scorecard", "rejection", "reminder", "alert")
DONE_STATUSES = ("sent", "outbox")
AIRFLOW_SMTP_CONN_ID = "smtp_default"

# Worth another attempt: the server was unreachable, hung up, or answered 4xx ("try later").
_RETRYABLE = (
    smtplib.SMTPServerDisconnected,
    smtplib.SMTPConnectError,
    ConnectionError,
    TimeoutError,
    socket.timeout,
    socket.gaierror,
)


class MailerError(RuntimeError):
    """A message could not be delivered; the message says what to check."""


class MailDeliveryError(MailerError):
    """The SMTP server could not be reached or refused the message after every attempt.

    The failure is already recorded in audit.emails as ``failed``; the SMTP exception is the
    ``__cause__`` (so the Airflow retry policy can tell a transient outage from a refusal).
    """


@dataclass(frozen=True)
class DeliveryOutcome:
    """What :func:`deliver` did with one message."""

    status: str  # 'sent' | 'outbox' | 'skipped' (a previous delivery stands)
    kind: str
    idempotency_key: str
    recipients: tuple[str, ...]
    subject: str
    message_id: str
    email_id: str | None
    attempts: int = 0
    path: Path | None = None  # the .eml file, for 'outbox'
    detail: str = ""

    @property
    def skipped(self) -> bool:
        return self.status == "skipped"

    @property
    def delivered(self) -> bool:
        """True when this call sent the message or wrote it to the outbox."""
        return self.status in DONE_STATUSES

    def __str__(self) -> str:
        if self.status == "sent":
            return f"{self.kind} '{self.subject}' sent to {len(self.recipients)} recipient(s)."
        if self.status == "outbox":
            return (
                f"{self.kind} '{self.subject}' written to {self.path} (no SMTP server is "
                "configured; set PKPI_SMTP_HOST to send)."
            )
        return f"{self.kind} '{self.subject}' not delivered again: {self.detail}"


@dataclass(frozen=True)
class LedgerEntry:
    """One row of audit.emails."""

    email_id: str
    kind: str
    idempotency_key: str
    period: str | None
    partner_code: str | None
    recipients: str
    subject: str
    message_id: str
    status: str
    attempts: int
    detail: str | None
    created_at: datetime


# --- the ledger --------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)  # the warehouse keeps naive UTC


def ledger_entries(settings: Settings, kind: str | None = None, idempotency_key: str | None = None) -> list[LedgerEntry]:
    """Rows of audit.emails (optionally for one kind and key), oldest first."""
    if not settings.warehouse_path.exists():
        return []
    sql = "SELECT * FROM audit.emails WHERE 1 = 1"
    params: list = []
    if kind is not None:
        sql += " AND kind = ?"
        params.append(kind)
    if idempotency_key is not None:
        sql += " AND idempotency_key = ?"
        params.append(idempotency_key)
    sql += " ORDER BY created_at, email_id"
    with connect(settings, read_only=True) as con:
        try:
            cur = con.execute(sql, params)
        except duckdb.CatalogException:  # a warehouse made before the ledger existed
            return []
        names = [d[0] for d in cur.description]
        return [LedgerEntry(**dict(zip(names, r))) for r in cur.fetchall()]


def previous_delivery(settings: Settings, kind: str, idempotency_key: str) -> LedgerEntry | None:
    """The latest 'sent' or 'outbox' ledger row for this kind and key, if any."""
    done = [e for e in ledger_entries(settings, kind, idempotency_key) if e.status in DONE_STATUSES]
    return done[-1] if done else None


def _record(settings: Settings, *, kind: str, key: str, period: str | None, partner_code: str | None,
            recipients: tuple[str, ...], subject: str, message_id: str, status: str, attempts: int,
            detail: str) -> str:
    email_id = uuid.uuid4().hex
    with connect(settings) as con:  # one short write transaction
        con.execute(
            """
            INSERT INTO audit.emails (email_id, kind, idempotency_key, period, partner_code,
              recipients, subject, message_id, status, attempts, detail, created_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """,
            [email_id, kind, key, period, partner_code, ", ".join(recipients), subject, message_id,
             status, attempts, detail, _now()],
        )
    return email_id


# --- sending -----------------------------------------------------------------------------


def recipients_of(message: EmailMessage) -> tuple[str, ...]:
    """Every address in To, Cc and Bcc, de-duplicated, in order."""
    fields = [v for h in ("To", "Cc", "Bcc") for v in message.get_all(h, [])]
    seen, out = set(), []
    for _, address in getaddresses(fields):
        if address and address.lower() not in seen:
            seen.add(address.lower())
            out.append(address)
    return tuple(out)


def _prepare(settings: Settings, message: EmailMessage) -> str:
    """Fill in From, Date and Message-ID when the caller left them out; returns the Message-ID."""
    if not message["From"]:
        message["From"] = settings.smtp.sender
    if not message["Date"]:
        message["Date"] = formatdate(localtime=False, usegmt=True)
    if not message["Message-ID"]:
        domain = parseaddr(str(message["From"]))[1].rpartition("@")[2] or "pkpi.localdomain"
        message["Message-ID"] = make_msgid(idstring="pkpi", domain=domain)
    return str(message["Message-ID"])


def _open(smtp: SmtpSettings) -> smtplib.SMTP:
    context = ssl.create_default_context()
    if smtp.security == "ssl":
        client: smtplib.SMTP = smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=smtp.timeout_seconds, context=context)
    else:
        client = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout_seconds)
    try:
        client.ehlo()
        if smtp.security == "starttls":
            client.starttls(context=context)
            client.ehlo()
        if smtp.user:
            client.login(smtp.user, smtp.password or "")
    except BaseException:
        client.close()
        raise
    return client


def _is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, (smtplib.SMTPAuthenticationError, smtplib.SMTPRecipientsRefused,
                        smtplib.SMTPSenderRefused, smtplib.SMTPNotSupportedError, ssl.SSLCertVerificationError)):
        return False  # the same settings will be refused the same way: fix them instead
    if isinstance(exc, smtplib.SMTPResponseException):
        return 400 <= exc.smtp_code < 500
    return isinstance(exc, _RETRYABLE + (OSError,))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return "the server refused every recipient: " + ", ".join(
            f"{addr} ({code} {msg.decode(errors='replace') if isinstance(msg, bytes) else msg})"
            for addr, (code, msg) in exc.recipients.items()
        )
    if isinstance(exc, smtplib.SMTPResponseException):
        msg = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else exc.smtp_error
        return f"{type(exc).__name__} {exc.smtp_code}: {msg}"
    return f"{type(exc).__name__}: {exc}"


def _send(smtp: SmtpSettings, message: EmailMessage, recipients: tuple[str, ...]) -> tuple[int, str, BaseException | None]:
    """Try to send, with retries and exponential backoff. Returns (attempts, detail, error)."""
    attempts_allowed = 1 + max(0, smtp.retries)
    error: BaseException | None = None
    for attempt in range(1, attempts_allowed + 1):
        try:
            client = _open(smtp)
            try:
                refused = client.send_message(message, to_addrs=list(recipients))
            finally:
                try:
                    client.quit()
                except (smtplib.SMTPException, OSError):
                    client.close()
            detail = f"accepted by {smtp.host}:{smtp.port}"
            if refused:  # some (not all) recipients refused: the message did go out
                detail += "; refused: " + ", ".join(sorted(refused))
            return attempt, detail, None
        except Exception as exc:  # noqa: BLE001 - classified below, and recorded in the ledger
            error = exc
            log.warning("SMTP attempt %d of %d to %s:%s failed: %s", attempt, attempts_allowed,
                        smtp.host, smtp.port, _describe(exc))
            if attempt == attempts_allowed or not _is_retryable(exc):
                return attempt, _describe(exc), exc
            time.sleep(smtp.retry_delay_seconds * (2 ** (attempt - 1)))
    return attempts_allowed, _describe(error) if error else "not sent", error  # pragma: no cover


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def outbox_path(settings: Settings, kind: str, idempotency_key: str, when: datetime | None = None) -> Path:
    """``<outbox>/<UTC timestamp>-<kind>-<key>.eml``, with the key made safe for a file name."""
    when = when or datetime.now(timezone.utc)
    safe_key = _UNSAFE.sub("_", idempotency_key).strip("_")[:120] or "message"
    return settings.outbox_dir / f"{when.strftime('%Y%m%dT%H%M%S%fZ')}-{kind}-{safe_key}.eml"


def deliver(
    settings: Settings,
    message: EmailMessage,
    kind: str,
    idempotency_key: str,
    period: str | None = None,
    partner_code: str | None = None,
    force: bool = False,
) -> DeliveryOutcome:
    """Send ``message`` (or write it to the outbox) once per (kind, idempotency_key).

    Returns a 'skipped' outcome when the key was already sent or written to the outbox and
    ``force`` is false. Raises :class:`MailDeliveryError` (after recording 'failed') when the
    SMTP server cannot take the message after every attempt.

    The ledger is opened through :func:`pkpi.warehouse.connect`, so call this outside any
    ``connect`` block of your own (the lock is per process and would wait on itself).
    """
    if kind not in KINDS:
        raise MailerError(f"Unknown email kind {kind!r}: use one of {', '.join(KINDS)}.")
    if not idempotency_key:
        raise MailerError("Every email needs an idempotency key (for example the month it reports).")
    recipients = recipients_of(message)
    if not recipients:
        raise MailerError(f"The {kind} email '{message['Subject']}' has no recipients: add To addresses.")
    subject = str(message["Subject"] or "")

    if not force:
        before = previous_delivery(settings, kind, idempotency_key)
        if before is not None:
            when = before.created_at.strftime("%Y-%m-%d %H:%M UTC")
            return DeliveryOutcome(
                status="skipped", kind=kind, idempotency_key=idempotency_key, recipients=recipients,
                subject=subject, message_id=before.message_id, email_id=before.email_id,
                detail=f"already {before.status} on {when} (email {before.email_id}); use force to send again",
            )

    message_id = _prepare(settings, message)
    ledger = dict(kind=kind, key=idempotency_key, period=period, partner_code=partner_code,
                  recipients=recipients, subject=subject, message_id=message_id)

    if not settings.smtp.configured:
        path = outbox_path(settings, kind, idempotency_key)
        path.parent.mkdir(parents=True, exist_ok=True)
        # The Bcc header stays in the .eml on purpose: the file shows who would receive it.
        path.write_bytes(message.as_bytes())
        email_id = _record(settings, **ledger, status="outbox", attempts=0, detail=str(path))
        log.info("no SMTP host configured: %s email written to %s", kind, path)
        return DeliveryOutcome("outbox", kind, idempotency_key, recipients, subject, message_id,
                               email_id, attempts=0, path=path, detail=str(path))

    # No warehouse lock is held here: the SMTP conversation can take a while.
    attempts, detail, error = _send(settings.smtp, message, recipients)
    if error is not None:
        _record(settings, **ledger, status="failed", attempts=attempts, detail=detail)
        raise MailDeliveryError(
            f"Could not send the {kind} email '{subject}' through {settings.smtp.host}:"
            f"{settings.smtp.port} after {attempts} attempt(s): {detail}. It is recorded in "
            "audit.emails as failed. Check the PKPI_SMTP_* settings and that the server is "
            "reachable, then run the delivery again."
        ) from error
    email_id = _record(settings, **ledger, status="sent", attempts=attempts, detail=detail)
    log.info("%s email %s sent to %d recipient(s)", kind, message_id, len(recipients))
    return DeliveryOutcome("sent", kind, idempotency_key, recipients, subject, message_id, email_id,
                           attempts=attempts, detail=detail)


def send_alert(settings: Settings, recipients: list[str], subject: str, body: str, idempotency_key: str) -> DeliveryOutcome:
    """A plain-text alert to the data engineers (kind 'alert')."""
    message = EmailMessage()
    message["Subject"] = subject
    message["To"] = ", ".join(recipients)
    message.set_content(body)
    return deliver(settings, message, kind="alert", idempotency_key=idempotency_key)


# --- SMTP settings from Airflow ------------------------------------------------------------


def smtp_settings_from_airflow(conn_id: str = AIRFLOW_SMTP_CONN_ID, base: SmtpSettings | None = None) -> SmtpSettings | None:
    """SmtpSettings from an Airflow SMTP connection, or None when Airflow or the connection is absent.

    Follows the SMTP provider's conventions: extras ``disable_ssl`` (SSL is on by default),
    ``disable_tls`` (STARTTLS otherwise), ``from_email``, ``timeout`` and ``retry_limit``.
    Airflow is imported here, not at module level, so the command line never needs it.
    """
    try:
        from airflow.sdk import BaseHook
    except Exception:  # noqa: BLE001 - Airflow is optional outside the scheduler
        return None
    try:
        conn = BaseHook.get_connection(conn_id)
    except Exception:  # noqa: BLE001 - AirflowNotFoundException, or no way to look it up
        return None
    if not conn.host:
        return None
    extra = conn.extra_dejson or {}
    base = base or SmtpSettings()

    def flag(name: str) -> bool:
        value = extra.get(name, False)
        return value if isinstance(value, bool) else str(value).strip().lower() in ("1", "true", "yes", "on")

    if not flag("disable_ssl"):
        security = "ssl"
    elif not flag("disable_tls"):
        security = "starttls"
    else:
        security = "none"
    default_port = {"none": 25, "starttls": 587, "ssl": 465}[security]
    return SmtpSettings(
        host=conn.host,
        port=int(conn.port or default_port),
        security=security,
        user=conn.login or None,
        password=conn.password or None,
        sender=extra.get("from_email") or base.sender,
        timeout_seconds=int(extra.get("timeout", base.timeout_seconds)),
        retries=int(extra.get("retry_limit", base.retries)),
        retry_delay_seconds=base.retry_delay_seconds,
    )


def with_airflow_smtp(settings: Settings, conn_id: str = AIRFLOW_SMTP_CONN_ID) -> Settings:
    """Settings whose SMTP comes from Airflow's connection when PKPI_SMTP_HOST is not set.

    The environment wins (one place to override everything); the Airflow connection is the
    fallback under Airflow; without either, mail goes to the outbox.
    """
    if settings.smtp.configured:
        return settings
    smtp = smtp_settings_from_airflow(conn_id, base=settings.smtp)
    return settings.with_overrides(smtp=smtp) if smtp else settings
