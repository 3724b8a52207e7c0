"""A real SMTP server (aiosmtpd) on 127.0.0.1 for the delivery tests.

``smtp_server`` is a pytest fixture: import it into a test module to use it. The server keeps
every message it receives, with its envelope, so tests can check what a recipient would get;
:func:`smtp_settings` points the platform's settings at it.
"""

from __future__ import annotations

import socket
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Iterator

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from pkpi.settings import Settings, SmtpSettings

HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port nothing listens on (bound then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def smtp_settings(settings: Settings, port: int, *, retries: int, **changes) -> Settings:
    """``settings`` sending through the server on ``port`` of 127.0.0.1, with a short timeout and
    no wait between attempts."""
    smtp = SmtpSettings(host=HOST, port=port, timeout_seconds=5, retries=retries, retry_delay_seconds=0, **changes)
    return settings.with_overrides(smtp=smtp)


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes

    @property
    def message(self) -> EmailMessage:
        return BytesParser(policy=policy.default).parsebytes(self.content)


@dataclass
class SmtpServer:
    """A running server: where it listens, and what it has received."""

    host: str
    port: int
    received: list[Received] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)

    def env(self, **extra: str) -> dict[str, str]:
        """The PKPI_SMTP_* settings that point the platform at this server."""
        return {"PKPI_SMTP_HOST": self.host, "PKPI_SMTP_PORT": str(self.port), **extra}


class _Handler:
    def __init__(self, server: SmtpServer):
        self.server = server

    async def handle_DATA(self, smtp, session, envelope):
        self.server.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content or envelope.content))
        return "250 Message accepted for delivery"


@contextmanager
def running_smtp_server(credentials: tuple[str, str] | None = None) -> Iterator[SmtpServer]:
    """Start a server; with ``credentials`` it accepts AUTH (LOGIN/PLAIN) with that user only."""
    server = SmtpServer(HOST, free_port())
    kwargs = {}
    if credentials:
        user, password = credentials

        def authenticator(smtp, session, envelope, mechanism, auth_data):
            ok = isinstance(auth_data, LoginPassword) and auth_data == LoginPassword(user.encode(), password.encode())
            if ok:
                server.logins.append(user)
            return AuthResult(success=ok, handled=False)  # let aiosmtpd answer 535 on failure

        # No TLS on a loopback test server, so allow AUTH without it (and require it).
        kwargs = {"authenticator": authenticator, "auth_require_tls": False, "auth_required": True}
    controller = Controller(_Handler(server), hostname=HOST, port=server.port, **kwargs)
    controller.start()
    try:
        yield server
    finally:
        controller.stop()


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A plain SMTP server on 127.0.0.1 that records what it receives."""
    with running_smtp_server() as server:
        yield server
