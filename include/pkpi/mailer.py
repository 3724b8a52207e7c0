"""Send an email, or write it to the outbox, exactly once, and record it in the ledger.

:func:`deliver` is the one way anything leaves by email: scorecards, rejection notices,
receipts, reminders and alerts. With SMTP settings it sends through ``smtplib`` (plain,
STARTTLS or SSL; login when a user is set; retries with backoff). Without them it writes
``$PKPI_DATA_DIR/outbox/<timestamp>-<kind>-<key>.eml``: the outbox is not the mail server, so
that is recorded as ``written_to_outbox`` and a later run with SMTP configured sends it.

Each message has an idempotency key (for example the scorecard's month). The ledger has one
row per attempt in ``audit.emails`` and one row per recipient of it in
``audit.email_recipients``. An attempt moves through these states::

    sending --(server accepted every recipient)----------------> sent
            --(accepted some, refused others)-------------------> partly_refused
            --(nothing accepted: unreachable, refused, login)----> failed
            --(.eml written, no SMTP configured)-----------------> written_to_outbox
            --(lost while the server had the message)------------> uncertain

Exactly once, whatever the crash point:

1. A per-key lock file (``locks/email-<hash>.lock``, held for the whole delivery and released
   by the kernel when the process dies) makes a second sender of the same key wait, then see
   the outcome. The ``sending`` row is written under the warehouse writer lock *before* the
   mail server is contacted, so the ledger always knows an attempt exists.
2. ``smtp_started_at`` is set (another short write) just before connecting. A ``sending`` row
   found later by a process that holds the key lock belongs to a process that died: without
   ``smtp_started_at`` nothing reached the server, so it becomes ``failed`` (or
   ``written_to_outbox`` when its .eml is complete) and the message is delivered now; with it,
   the server may have accepted the message and SMTP gives no way to ask ("did you get
   Message-ID X?"), so it becomes ``uncertain``: never resent automatically.
   :class:`DeliveryUncertain` names the Message-ID to look for in the mail server's log, and
   how to settle it: :func:`mark_sent` (``--mark-sent``) or a deliberate resend (``force``).
3. A connection lost after DATA began is ``uncertain`` too (not retried); an SMTP error reply
   is a definite answer and is retried (4xx) or recorded as failed (5xx).
4. Refused recipients are recorded per recipient; ``only_failed`` sends again to the message's
   recipients the server has not accepted yet (the refused ones, and any new ones), never to
   the rest. Every attempt has its own Message-ID, so a mail server log search for one
   attempt is unambiguous.

Which states count as done depends on the mode: with a mail server only ``sent`` and
``partly_refused``; without one, ``written_to_outbox`` too (the .eml is not written twice).
The warehouse lock is never held while talking to the mail server.
"""

from __future__ import annotations

import fcntl
import glob
import hashlib
import logging
import os
import re
import smtplib
import socket
import ssl
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from email.message import EmailMessage
from email.utils import formatdate, getaddresses, make_msgid, parseaddr
from pathlib import Path
from typing import Iterator

import duckdb

from .errors import PermanentError, PkpiError
from .faults import checkpoint
from .files import make_dir, open_secure, write_atomic
from .settings import Settings, SmtpSettings
from .warehouse import connect, transaction

log = logging.getLogger(__name__)

KINDS = ("scorecard", "rejection", "receipt", "reminder", "alert")
SENT_STATUSES = ("sent", "partly_refused")
"""The mail server accepted the message (for every recipient, or for some)."""
OUTBOX_STATUSES = ("written_to_outbox", "outbox")
"""Written to outbox/ only ('outbox' is how ledgers before 'written_to_outbox' spelled it)."""
DONE_STATUSES = SENT_STATUSES + OUTBOX_STATUSES
"""Done when no SMTP server is configured (see :func:`done_statuses`)."""

# Worth another attempt: the server was unreachable, hung up, or answered 4xx ("try later").
_RETRYABLE = (
    smtplib.SMTPServerDisconnected,
    smtplib.SMTPConnectError,
    ConnectionError,
    TimeoutError,
    socket.timeout,
    socket.gaierror,
)


class MailerError(PkpiError, RuntimeError):
    """A message could not be delivered; the message says what to check (transient or not
    as its cause says: a mail server outage is retried, a refusal is not)."""


class MailDeliveryError(MailerError):
    """The SMTP server could not be reached or refused the message after every attempt.

    The failure is already recorded in audit.emails as ``failed``; the SMTP exception is the
    ``__cause__`` (so the Airflow retry policy can tell a transient outage from a refusal).
    """


class DeliveryUncertain(MailerError, PermanentError):
    """An earlier attempt may have reached the mail server: it is not resent automatically.

    Raised (without a cause: retrying does not settle it) until an engineer checks the mail
    server's log for the Message-ID named in the message and runs ``--mark-sent`` or
    ``--force``. ``entry`` is the uncertain ledger row.
    """

    def __init__(self, message: str, entry: "LedgerEntry"):
        super().__init__(message)
        self.entry = entry


@dataclass(frozen=True)
class DeliveryOutcome:
    """What :func:`deliver` did with one message."""

    status: str  # 'sent' | 'partly_refused' | 'outbox' | 'skipped' (a previous delivery stands)
    kind: str
    idempotency_key: str
    recipients: tuple[str, ...]
    subject: str
    message_id: str
    email_id: str | None
    attempts: int = 0
    path: Path | None = None  # the .eml file, for 'outbox'
    detail: str = ""
    refused: tuple[str, ...] = ()  # recipients the server refused (this attempt, or the one skipped to)

    @property
    def skipped(self) -> bool:
        return self.status == "skipped"

    @property
    def delivered(self) -> bool:
        """True when this call sent the message (to at least one recipient) or wrote it to the outbox."""
        return self.status in ("sent", "partly_refused", "outbox")

    def __str__(self) -> str:
        if self.status == "sent":
            return f"{self.kind} '{self.subject}' sent to {len(self.recipients)} recipient(s)."
        if self.status == "partly_refused":
            accepted = len(self.recipients) - len(self.refused)
            return (
                f"{self.kind} '{self.subject}' sent to {accepted} of {len(self.recipients)} "
                f"recipient(s); the mail server refused {len(self.refused)}: {self.detail}. Check "
                "those addresses, then send again to them alone with --only-failed (the others "
                "are not sent it twice)."
            )
        if self.status == "outbox":
            return (
                f"{self.kind} '{self.subject}' written to {self.path} (no SMTP server is "
                "configured, so it is NOT sent; set PKPI_SMTP_HOST and send again to deliver it)."
            )
        return f"{self.kind} '{self.subject}' not delivered again: {self.detail}"


@dataclass(frozen=True)
class LedgerEntry:
    """One row of audit.emails: one attempt to deliver one message."""

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
    smtp_started_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True)
class RecipientEntry:
    """One row of audit.email_recipients."""

    email_id: str
    recipient: str
    status: str
    detail: str | None
    updated_at: datetime


# --- the ledger --------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)  # the warehouse keeps naive UTC


def done_statuses(settings: Settings) -> tuple[str, ...]:
    """Ledger states after which a key is not delivered again (without force).

    With a mail server configured only what it accepted counts, so a month written to the
    outbox earlier is sent now; without one, the outbox counts too (it is not written twice).
    """
    return SENT_STATUSES if settings.smtp.configured else DONE_STATUSES


def _entries(con, kind: str | None, idempotency_key: str | None) -> list[LedgerEntry]:
    sql = "SELECT * FROM audit.emails WHERE 1 = 1"
    params: list = []
    if kind is not None:
        sql += " AND kind = ?"
        params.append(kind)
    if idempotency_key is not None:
        sql += " AND idempotency_key = ?"
        params.append(idempotency_key)
    cur = con.execute(sql + " ORDER BY created_at, email_id", params)
    names = [d[0] for d in cur.description]
    return [LedgerEntry(**dict(zip(names, r))) for r in cur.fetchall()]


def _recipient_entries(con, email_ids: list[str]) -> list[RecipientEntry]:
    if not email_ids:
        return []
    cur = con.execute(
        "SELECT email_id, recipient, status, detail, updated_at FROM audit.email_recipients "
        "WHERE list_contains(?, email_id) ORDER BY updated_at, recipient", [email_ids])
    return [RecipientEntry(*r) for r in cur.fetchall()]


def ledger_entries(settings: Settings, kind: str | None = None, idempotency_key: str | None = None) -> list[LedgerEntry]:
    """Rows of audit.emails (optionally for one kind and key), oldest first."""
    if not settings.warehouse_path.exists():
        return []
    with connect(settings, read_only=True) as con:
        try:
            return _entries(con, kind, idempotency_key)
        except duckdb.CatalogException:  # a warehouse made before the ledger existed
            return []


def recipient_entries(settings: Settings, kind: str, idempotency_key: str) -> list[RecipientEntry]:
    """Rows of audit.email_recipients for every attempt at (kind, key), oldest first."""
    if not settings.warehouse_path.exists():
        return []
    with connect(settings, read_only=True) as con:
        try:
            return _recipient_entries(con, [e.email_id for e in _entries(con, kind, idempotency_key)])
        except duckdb.CatalogException:  # a warehouse made before the per-recipient ledger
            return []


def previous_delivery(settings: Settings, kind: str, idempotency_key: str) -> LedgerEntry | None:
    """The latest ledger row for this kind and key that counts as done (:func:`done_statuses`)."""
    done = [e for e in ledger_entries(settings, kind, idempotency_key) if e.status in done_statuses(settings)]
    return done[-1] if done else None


def _split(recipients: str) -> tuple[str, ...]:
    return tuple(a.strip() for a in recipients.split(",") if a.strip())


def _uncertain_message(entry: LedgerEntry) -> str:
    started = entry.smtp_started_at or entry.created_at
    return (
        f"The {entry.kind} email '{entry.subject}' ({entry.idempotency_key}) may have been sent: an "
        f"earlier attempt handed it to the mail server at {started:%Y-%m-%d %H:%M:%S} UTC and stopped "
        "before the server's answer was recorded, and SMTP cannot be asked afterwards. It is not "
        f"sent again automatically. Search the mail server's log for Message-ID {entry.message_id} "
        f"(recipients: {entry.recipients}). If it was accepted, record that with --mark-sent; if "
        "not, send it again with --force. See 'Scorecard email' in docs/runbook.md."
    )


def _unresolved_uncertain(entries: list[LedgerEntry]) -> LedgerEntry | None:
    """The latest 'uncertain' attempt no later attempt has settled (sent or written out)."""
    for entry in reversed(entries):
        if entry.status in DONE_STATUSES:
            return None
        if entry.status == "uncertain":
            return entry
    return None


def _set_status(con, email_id: str, status: str, detail: str, attempts: int | None = None,
                recipients: dict[str, tuple[str, str | None]] | None = None,
                recipients_from: tuple[str, ...] = ()) -> None:
    """Move one attempt (and its recipients: a status per address, or every one still in
    ``recipients_from`` states) to its next state."""
    now = _now()
    con.execute(
        "UPDATE audit.emails SET status = ?, detail = ?, attempts = coalesce(?, attempts), updated_at = ? "
        "WHERE email_id = ?", [status, detail, attempts, now, email_id])
    for address, (r_status, r_detail) in (recipients or {}).items():
        con.execute(
            "UPDATE audit.email_recipients SET status = ?, detail = ?, updated_at = ? "
            "WHERE email_id = ? AND recipient = ?", [r_status, r_detail, now, email_id, address])
    if recipients_from:
        con.execute(
            "UPDATE audit.email_recipients SET status = ?, updated_at = ? "
            "WHERE email_id = ? AND list_contains(?, status)",
            [status if status != "sent" else "accepted", now, email_id, list(recipients_from)])


@contextmanager
def _key_lock(settings: Settings, kind: str, idempotency_key: str) -> Iterator[None]:
    """Hold the lock of one (kind, key) for the whole delivery: a second sender waits."""
    digest = hashlib.sha256(f"{kind}\0{idempotency_key}".encode()).hexdigest()[:32]
    fd = open_secure(settings, settings.data_dir / "locks" / f"email-{digest}.lock")
    deadline = time.monotonic() + settings.lock_timeout_seconds
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise MailerError(
                        f"Another pkpi process has been delivering the {kind} email "
                        f"{idempotency_key!r} for more than {settings.lock_timeout_seconds}s. Check "
                        "for a stuck send (ps; the mail server), then run again: it is not sent twice."
                    ) from None
                time.sleep(0.1)
        yield
    finally:
        os.close(fd)  # releases the lock (the kernel does the same when the process dies)


def _settle_abandoned(settings: Settings, con, entry: LedgerEntry) -> None:
    """A 'sending' row whose process died (the caller holds the key lock): settle it."""
    outbox_file = outbox_path(settings, entry.kind, entry.idempotency_key, entry.created_at)
    if entry.smtp_started_at is not None:
        _set_status(con, entry.email_id, "uncertain",
                    "the sending process stopped after handing the message to the mail server and "
                    "before its answer was recorded: it may have been sent",
                    recipients_from=("pending",))
        log.error("%s", _uncertain_message(entry))
    elif outbox_file.is_file():  # complete: it is renamed into place only once written
        _set_status(con, entry.email_id, "written_to_outbox", str(outbox_file),
                    recipients_from=("pending",))
    else:
        for stale in _temporaries(outbox_file):  # a half-written .eml of the dead process
            stale.unlink(missing_ok=True)
        _set_status(con, entry.email_id, "failed",
                    "the sending process stopped before contacting the mail server: nothing was sent",
                    recipients_from=("pending",))


@dataclass(frozen=True)
class _Reservation:
    email_id: str
    created_at: datetime
    recipients: tuple[str, ...]


def _reserve(settings: Settings, *, kind: str, key: str, period: str | None, partner_code: str | None,
             recipients: tuple[str, ...], subject: str, message_id: str, force: bool,
             only_failed: bool) -> _Reservation | DeliveryOutcome:
    """Settle abandoned attempts, then either answer from the ledger (a skipped outcome) or
    record a new 'sending' attempt: one write transaction under the warehouse lock."""
    with connect(settings) as con, transaction(con):
        answer = _reserve_in(settings, con, kind=kind, key=key, period=period, partner_code=partner_code,
                             recipients=recipients, subject=subject, message_id=message_id, force=force,
                             only_failed=only_failed)
    if isinstance(answer, DeliveryUncertain):  # raised once the settled ledger is committed
        raise answer
    return answer


def _reserve_in(settings: Settings, con, *, kind: str, key: str, period: str | None, partner_code: str | None,
                recipients: tuple[str, ...], subject: str, message_id: str, force: bool,
                only_failed: bool) -> "_Reservation | DeliveryOutcome | DeliveryUncertain":
    """The body of :func:`_reserve`, inside its transaction (an uncertain attempt is returned)."""
    for entry in _entries(con, kind, key):
        if entry.status == "sending":
            _settle_abandoned(settings, con, entry)
    entries = _entries(con, kind, key)
    uncertain = _unresolved_uncertain(entries)
    if uncertain is not None and not force:
        return DeliveryUncertain(_uncertain_message(uncertain), uncertain)

    targets = recipients
    if only_failed:
        # Everyone the server has (or may have): never sent it twice.
        have = {r.recipient.lower() for r in _recipient_entries(con, [e.email_id for e in entries])
                if r.status in ("accepted", "uncertain")}
        targets = tuple(r for r in recipients if r.lower() not in have)
        if not targets:
            return DeliveryOutcome(
                "skipped", kind, key, recipients, subject, entries[-1].message_id if entries else message_id,
                entries[-1].email_id if entries else None,
                detail="the mail server has already accepted it for every recipient; nothing to retry",
            )
    elif not force:
        done = [e for e in entries if e.status in done_statuses(settings)]
        if done:
            before = done[-1]
            refused = tuple(r.recipient for r in _recipient_entries(con, [before.email_id])
                            if r.status == "refused")
            detail = f"already {before.status} on {before.created_at:%Y-%m-%d %H:%M} UTC (email {before.email_id})"
            if refused:
                detail += (f"; {len(refused)} recipient(s) were refused: {', '.join(refused)}: send to "
                           "them alone with --only-failed")
            return DeliveryOutcome("skipped", kind, key, _split(before.recipients), before.subject,
                                   before.message_id, before.email_id, detail=detail + "; use force to send again",
                                   refused=refused)

    email_id, created_at = uuid.uuid4().hex, _now()
    con.execute(
        """
        INSERT INTO audit.emails (email_id, kind, idempotency_key, period, partner_code,
          recipients, subject, message_id, status, attempts, detail, created_at, updated_at)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'sending', 0, ?, ?, ?)
        """,
        [email_id, kind, key, period, partner_code, ", ".join(targets), subject, message_id,
         f"reserved by process {os.getpid()} on {socket.gethostname()}", created_at, created_at],
    )
    for address in targets:
        con.execute("INSERT INTO audit.email_recipients VALUES (?, ?, 'pending', NULL, ?)",
                    [email_id, address, created_at])
    return _Reservation(email_id, created_at, targets)


def mark_sent(settings: Settings, kind: str, idempotency_key: str) -> LedgerEntry:
    """Record an 'uncertain' attempt as sent, after an engineer found it in the mail server's log.

    Nothing is sent. Raises :class:`MailerError` when no attempt at (kind, key) is uncertain.
    """
    with _key_lock(settings, kind, idempotency_key), connect(settings) as con, transaction(con):
        for entry in _entries(con, kind, idempotency_key):
            if entry.status == "sending":
                _settle_abandoned(settings, con, entry)
        uncertain = _unresolved_uncertain(_entries(con, kind, idempotency_key))
        if uncertain is None:  # rolled back by transaction(): nothing was changed
            raise MailerError(
                f"No attempt at the {kind} email {idempotency_key!r} is uncertain, so there is nothing "
                "to mark as sent: see audit.emails for what the ledger records."
            )
        _set_status(con, uncertain.email_id, "sent",
                    f"{uncertain.detail}; confirmed accepted by an engineer (mark sent) on {_now():%Y-%m-%d %H:%M} UTC",
                    recipients_from=("uncertain", "pending"))
    return next(e for e in ledger_entries(settings, kind, idempotency_key) if e.email_id == uncertain.email_id)


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


def _reply(code: int, msg) -> str:
    return f"{code} {msg.decode(errors='replace') if isinstance(msg, bytes) else msg}"


def _describe(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return "the server refused every recipient: " + ", ".join(
            f"{addr} ({_reply(code, msg)})" for addr, (code, msg) in exc.recipients.items()
        )
    if isinstance(exc, smtplib.SMTPResponseException):
        msg = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else exc.smtp_error
        return f"{type(exc).__name__} {exc.smtp_code}: {msg}"
    return f"{type(exc).__name__}: {exc}"


@dataclass
class _SendResult:
    attempts: int
    detail: str
    error: BaseException | None = None
    refused: dict | None = None  # address -> (code, message), when the message was accepted
    uncertain: bool = False  # the connection was lost while the server had the message


def _send(smtp: SmtpSettings, message: EmailMessage, recipients: tuple[str, ...]) -> _SendResult:
    """Try to send, with retries and exponential backoff; never retried once DATA was under way
    without a definite answer (the server may have the message)."""
    attempts_allowed = 1 + max(0, smtp.retries)
    error: BaseException | None = None
    for attempt in range(1, attempts_allowed + 1):
        in_data = False
        try:
            client = _open(smtp)
            original_data = client.data

            def data(msg, _original=original_data):
                nonlocal in_data
                in_data = True
                try:
                    answer = _original(msg)
                except smtplib.SMTPResponseException:
                    in_data = False  # a definite answer (no 354): the server did not take it
                    raise
                in_data = False  # the server's final reply, 250 or a refusal, is a definite answer
                return answer

            client.data = data
            try:
                refused = client.send_message(message, to_addrs=list(recipients))
            finally:
                try:
                    client.quit()
                except (smtplib.SMTPException, OSError):
                    client.close()
            detail = f"accepted by {smtp.host}:{smtp.port}"
            if refused:  # some (not all) recipients refused: the message did go out
                detail += "; refused: " + ", ".join(f"{a} ({_reply(*refused[a])})" for a in sorted(refused))
            return _SendResult(attempt, detail, refused=dict(refused))
        except Exception as exc:  # noqa: BLE001 - classified below, and recorded in the ledger
            error = exc
            log.warning("SMTP attempt %d of %d to %s:%s failed: %s", attempt, attempts_allowed,
                        smtp.host, smtp.port, _describe(exc))
            if in_data:
                return _SendResult(attempt, "the connection was lost while the server had the message "
                                   f"({_describe(exc)}): it may have been sent", exc, uncertain=True)
            if attempt == attempts_allowed or not _is_retryable(exc):
                return _SendResult(attempt, _describe(exc), exc)
            time.sleep(smtp.retry_delay_seconds * (2 ** (attempt - 1)))
    return _SendResult(attempts_allowed, _describe(error) if error else "not sent", error)  # pragma: no cover


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def outbox_path(settings: Settings, kind: str, idempotency_key: str, when: datetime | None = None) -> Path:
    """``<outbox>/<UTC timestamp>-<kind>-<key>.eml``, with the key made safe for a file name.

    ``when`` is the attempt's created_at, so a recovering run finds the file of a crashed one."""
    when = when or datetime.now(timezone.utc)
    safe_key = _UNSAFE.sub("_", idempotency_key).strip("_")[:120] or "message"
    return settings.outbox_dir / f"{when.strftime('%Y%m%dT%H%M%S%fZ')}-{kind}-{safe_key}.eml"


def _temporaries(path: Path) -> list[Path]:
    """Temporary files :func:`pkpi.files.write_atomic` may have left for ``path`` (never *.eml)."""
    return list(path.parent.glob(f".{glob.escape(path.name)}.*.tmp"))


def deliver(
    settings: Settings,
    message: EmailMessage,
    kind: str,
    idempotency_key: str,
    period: str | None = None,
    partner_code: str | None = None,
    force: bool = False,
    only_failed: bool = False,
) -> DeliveryOutcome:
    """Send ``message`` (or write it to the outbox) exactly once per (kind, idempotency_key).

    Returns a 'skipped' outcome when the key is already done (:func:`done_statuses`) and
    ``force`` is false. ``only_failed`` sends only to the message's recipients the server has
    not accepted for this key yet (after 'partly_refused'; needs SMTP). Raises
    :class:`MailDeliveryError` (after recording 'failed') when the SMTP server cannot take the
    message after every attempt, and :class:`DeliveryUncertain` when this or an earlier attempt
    may have reached the server (see the module docstring).

    The ledger is opened through :func:`pkpi.warehouse.connect`, so call this outside any
    ``connect`` block of your own (its lock would wait on itself).
    """
    if kind not in KINDS:
        raise MailerError(f"Unknown email kind {kind!r}: use one of {', '.join(KINDS)}.")
    if not idempotency_key:
        raise MailerError("Every email needs an idempotency key (for example the month it reports).")
    recipients = recipients_of(message)
    if not recipients:
        raise MailerError(f"The {kind} email '{message['Subject']}' has no recipients: add To addresses.")
    if only_failed and not settings.smtp.configured:
        raise MailerError("Sending again to refused recipients needs a mail server: set PKPI_SMTP_HOST.")
    subject = str(message["Subject"] or "")
    message_id = _prepare(settings, message)

    with _key_lock(settings, kind, idempotency_key):
        reserved = _reserve(settings, kind=kind, key=idempotency_key, period=period, partner_code=partner_code,
                            recipients=recipients, subject=subject, message_id=message_id, force=force,
                            only_failed=only_failed)
        if isinstance(reserved, DeliveryOutcome):
            return reserved
        checkpoint("delivery.reserved")
        email_id, targets = reserved.email_id, reserved.recipients

        if not settings.smtp.configured:
            return _write_outbox(settings, message, kind, idempotency_key, reserved, subject, message_id)

        with connect(settings) as con:  # from here on the server may get the message
            con.execute("UPDATE audit.emails SET smtp_started_at = ?, updated_at = ? WHERE email_id = ?",
                        [_now(), _now(), email_id])
        checkpoint("delivery.handing_over")
        # No warehouse lock is held here: the SMTP conversation can take a while.
        result = _send(settings.smtp, message, targets)
        if result.error is None:
            checkpoint("delivery.accepted")
        status = ("uncertain" if result.uncertain else "failed" if result.error is not None
                  else "partly_refused" if result.refused else "sent")
        per_recipient = _per_recipient(targets, result)
        with connect(settings) as con, transaction(con):
            _set_status(con, email_id, status, result.detail, attempts=result.attempts, recipients=per_recipient)
        checkpoint("delivery.recorded")

    where = f"{settings.smtp.host}:{settings.smtp.port}"
    if result.uncertain:
        entry = next(e for e in ledger_entries(settings, kind, idempotency_key) if e.email_id == email_id)
        raise DeliveryUncertain(_uncertain_message(entry), entry)
    if result.error is not None:
        raise MailDeliveryError(
            f"Could not send the {kind} email '{subject}' through {where} after {result.attempts} "
            f"attempt(s): {result.detail}. It is recorded in audit.emails as failed. Check the "
            "PKPI_SMTP_* settings and that the server is reachable, then run the delivery again."
        ) from result.error
    refused = tuple(a for a in targets if per_recipient[a][0] == "refused")
    log.info("%s email %s accepted for %d of %d recipient(s)", kind, message_id,
             len(targets) - len(refused), len(targets))
    return DeliveryOutcome(status, kind, idempotency_key, targets, subject, message_id, email_id,
                           attempts=result.attempts, detail=result.detail, refused=refused)


def _per_recipient(targets: tuple[str, ...], result: _SendResult) -> dict[str, tuple[str, str | None]]:
    """Each target's status after an attempt (smtplib keys refusals by the address given)."""
    if result.uncertain:
        return {a: ("uncertain", None) for a in targets}
    if result.error is not None:
        if isinstance(result.error, smtplib.SMTPRecipientsRefused):
            refused = result.error.recipients
            return {a: ("refused", _reply(*refused[a])) if a in refused else ("failed", None) for a in targets}
        return {a: ("failed", None) for a in targets}
    refused = result.refused or {}
    return {a: ("refused", _reply(*refused[a])) if a in refused else ("accepted", None) for a in targets}


def _write_outbox(settings: Settings, message: EmailMessage, kind: str, key: str, reserved: _Reservation,
                  subject: str, message_id: str) -> DeliveryOutcome:
    """No mail server: write the .eml (temporary name, then renamed whole) and record it."""
    path = outbox_path(settings, kind, key, reserved.created_at)
    make_dir(settings, path.parent)  # private: notices name partners' files and rules
    # The Bcc header stays in the .eml on purpose: the file shows who would receive it.
    write_atomic(path, message.as_bytes(), settings)
    checkpoint("delivery.outbox_written")
    with connect(settings) as con, transaction(con):
        _set_status(con, reserved.email_id, "written_to_outbox", str(path), attempts=0,
                    recipients_from=("pending",))
    checkpoint("delivery.recorded")
    log.info("no SMTP host configured: %s email written to %s (not sent)", kind, path)
    return DeliveryOutcome("outbox", kind, key, reserved.recipients, subject, message_id,
                           reserved.email_id, attempts=0, path=path, detail=str(path))


OUTBOX_REDELIVERED_KINDS = ("rejection", "receipt")
"""Kinds :func:`deliver_outbox` sends by default (what ingest told a partner). Scorecards are sent again from their exports
by ``pkpi scorecard --send``; reminders and alerts are re-derived by their own runs (a reminder
"due in 3 days" written weeks ago must not arrive now)."""


def deliver_outbox(settings: Settings, kinds: tuple[str, ...] = OUTBOX_REDELIVERED_KINDS) -> list[DeliveryOutcome]:
    """Send, through the now configured mail server, every message of ``kinds`` that was only
    written to the outbox: the .eml itself (same content and Message-ID), once per key.

    Does nothing without SMTP settings. A key already sent is skipped by :func:`deliver`; an
    .eml that has gone missing is logged and left (its row stays ``written_to_outbox``).
    """
    from email import policy
    from email.parser import BytesParser

    if not settings.smtp.configured:
        return []
    latest: dict[tuple[str, str], LedgerEntry] = {}
    for entry in ledger_entries(settings):
        if entry.kind in kinds:
            latest[(entry.kind, entry.idempotency_key)] = entry
    outcomes = []
    for entry in latest.values():
        if entry.status not in OUTBOX_STATUSES:
            continue
        path = Path(entry.detail or "")
        if not path.is_file():
            log.warning("the outbox file of %s email %s is missing (%s): not sent", entry.kind,
                        entry.email_id, path)
            continue
        message = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
        outcomes.append(deliver(settings, message, entry.kind, entry.idempotency_key,
                                period=entry.period, partner_code=entry.partner_code))
    return outcomes


def queue(con, message: EmailMessage, kind: str, idempotency_key: str, *, period: str | None = None,
          partner_code: str | None = None, load_id: str | None = None) -> None:
    """Record ``message`` in the outbox (``audit.outbox``) inside the caller's transaction.

    This is how an outcome calls for a notice: the notice is committed with the outcome it
    reports or not at all, and :func:`deliver_queued` hands it to :func:`deliver` afterwards. A
    key already queued is left as it is (the same notice is never queued twice).
    """
    if kind not in KINDS:
        raise MailerError(f"Unknown email kind {kind!r}: use one of {', '.join(KINDS)}.")
    con.execute(
        """INSERT INTO audit.outbox (kind, idempotency_key, period, partner_code, load_id, message, queued_at)
           VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING""",
        [kind, idempotency_key, period, partner_code, load_id, message.as_bytes(), _now()],
    )


@dataclass(frozen=True)
class QueuedNotice:
    kind: str
    idempotency_key: str
    period: str | None
    partner_code: str | None
    load_id: str | None
    queued_at: datetime
    message: bytes


def queued(settings: Settings) -> list[QueuedNotice]:
    """Notices recorded in the outbox and not yet delivered (with their messages), oldest first."""
    with connect(settings) as con:  # a writer: it makes the outbox table of an older warehouse
        rows = con.execute(
            """SELECT kind, idempotency_key, period, partner_code, load_id, queued_at, message FROM audit.outbox
               WHERE delivered_at IS NULL ORDER BY queued_at, kind, idempotency_key""").fetchall()
    return [QueuedNotice(*r[:-1], bytes(r[-1])) for r in rows]


def deliver_queued(settings: Settings) -> list[DeliveryOutcome]:
    """Deliver every notice waiting in the outbox, each exactly once; returns the outcomes.

    Each goes through :func:`deliver` (the ledger makes a second delivery of a key a skip), then
    its outbox row is marked delivered: a crash in between is resolved by the next call, which
    finds the key done and only marks it. A notice the mail server could not take (or may have
    taken: ``uncertain``) stays queued, is logged, and is tried again by the next call (an
    uncertain one is not resent: see the module docstring). Without SMTP settings a delivery is
    the .eml in outbox/, which counts as done here; a later run with SMTP sends it
    (:func:`deliver_outbox`).
    """
    from email import policy
    from email.parser import BytesParser

    outcomes = []
    for notice in queued(settings):
        message = BytesParser(policy=policy.default).parsebytes(notice.message)
        try:
            outcome = deliver(settings, message, notice.kind, notice.idempotency_key,
                              period=notice.period, partner_code=notice.partner_code)
        except MailerError as exc:  # stays queued: the next run tries again (or reports it again)
            log.warning("the %s notice %s stays in the outbox: %s", notice.kind, notice.idempotency_key, exc)
            continue
        checkpoint("outbox.delivered")
        with connect(settings) as con:
            con.execute(
                "UPDATE audit.outbox SET delivered_at = ?, email_id = ?, detail = ? "
                "WHERE kind = ? AND idempotency_key = ?",
                [_now(), outcome.email_id, outcome.status if not outcome.detail else f"{outcome.status}: {outcome.detail}",
                 notice.kind, notice.idempotency_key])
        outcomes.append(outcome)
    return outcomes


def send_alert(settings: Settings, recipients: list[str], subject: str, body: str, idempotency_key: str) -> DeliveryOutcome:
    """A plain-text alert to the data engineers (kind 'alert')."""
    message = EmailMessage()
    message["Subject"] = subject
    message["To"] = ", ".join(recipients)
    message.set_content(body)
    return deliver(settings, message, kind="alert", idempotency_key=idempotency_key)

