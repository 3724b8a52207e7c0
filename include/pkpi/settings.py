"""One typed settings object, read from the environment once.

Every part of the system (command line, Airflow tasks, tests) builds a :class:`Settings` with
:meth:`Settings.from_env` and passes it down, so there are no scattered ``os.environ`` look-ups.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping

from .errors import UserError

PROJECT_DIR = Path(__file__).resolve().parents[2]
"""The repository root (``include/pkpi`` sits two levels below it)."""

SMTP_SECURITY_MODES = ("none", "starttls", "ssl")
DEFAULT_QUIET_SECONDS = 60.0
"""PKPI_LANDING_QUIET_SECONDS when unset: a return is taken once unchanged for a minute (the
sensor looks every minute). The test suite sets it to 0 (tests/conftest.py)."""


class SettingsError(UserError, ValueError):
    """A setting in the environment has a value the platform cannot use."""


_MEMORY_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*$", re.IGNORECASE)


def default_duckdb_memory_limit() -> str:
    """PKPI_DUCKDB_MEMORY_LIMIT when unset: half the machine's memory, at most 4 GB.

    DuckDB's own default is 80 % of the machine, which lets one build starve everything else
    on the host (Airflow, the gate); above the limit DuckDB spills to disk beside the warehouse.
    """
    try:
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return "4096MiB"
    return f"{max(256, min(4096, physical // (2 * 1024 * 1024)))}MiB"


def default_duckdb_threads() -> int:
    """PKPI_DUCKDB_THREADS when unset: two, or one on a single-core machine."""
    return max(1, min(2, os.cpu_count() or 1))


def _threads(env: Mapping[str, str], name: str, default: int) -> int:
    value = _int(env, name, default)
    if value < 1:
        raise SettingsError(f"{name} must be a whole number of 1 or more, not {value}.")
    return value


def _memory_size(env: Mapping[str, str], name: str, default: str) -> str:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    match = _MEMORY_SIZE.match(raw)
    if not match or float(match.group(1)) <= 0:
        raise SettingsError(
            f"{name} must be an amount of memory such as 2GB or 512MB, not {raw!r}."
        )
    return f"{match.group(1)}{match.group(2).upper().replace('I', 'i')}"


def _flag(value: str | None, default: bool) -> bool:
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _number(env: Mapping[str, str], name: str, default: float, minimum: float = 0) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be a number, not {raw!r}.") from exc
    if value < minimum:
        raise SettingsError(f"{name} must be {minimum:g} or more, not {raw!r}.")
    return value


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be a whole number, not {raw!r}.") from exc


@dataclass(frozen=True)
class SmtpSettings:
    """How scorecards and partner notices are sent. No host means: write .eml files to outbox/."""

    host: str | None = None
    port: int = 25
    security: str = "none"  # none | starttls | ssl
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    sender: str = "Safeguarding Partnership Data Team <data@partnership.example>"
    timeout_seconds: int = 30
    retries: int = 3
    retry_delay_seconds: float = 2.0

    @property
    def configured(self) -> bool:
        return bool(self.host)


@dataclass(frozen=True)
class FileLimits:
    """How big a partner file may be before it is refused unread (hostile or careless input).

    Every limit breach is a rejection with a message, never an out-of-memory crash.
    """

    max_file_bytes: int = 200 * 1024 * 1024
    max_rows: int = 1_000_000
    max_columns: int = 200
    xlsx_max_uncompressed_bytes: int = 400 * 1024 * 1024
    xlsx_max_shared_strings: int = 2_000_000


PUBLISHED_ACCESS_MODES = ("private", "group", "everyone")
DEFAULT_PARTNER_GUIDE_URL = "https://partnership.example/returns/"


def _web_folder(env: Mapping[str, str], name: str, default: str) -> str:
    """An http(s) address that pages are found below; always ends in '/'."""
    raw = (env.get(name) or "").strip() or default
    if not re.match(r"^https?://[^\s/]+", raw) or any(c in raw for c in "<>\"' "):
        raise SettingsError(
            f"{name} must be the web address the partner pages (docs/returns/) are published at, "
            f"starting http:// or https://, for example {default}; not {raw!r}."
        )
    return raw if raw.endswith("/") else raw + "/"


@dataclass(frozen=True)
class Settings:
    """Where things live and how the platform behaves; see README "Configuration"."""

    data_dir: Path
    reference_dir: Path
    smtp: SmtpSettings = SmtpSettings()
    project_dir: Path = PROJECT_DIR
    partnership_name: str = "Northamptonshire Safeguarding Children Partnership"
    disclosure_threshold: int = 5
    engineer_emails: tuple[str, ...] = ()
    lock_timeout_seconds: int = 600
    limits: "FileLimits" = field(default_factory=lambda: FileLimits())
    query_timeout_seconds: float = 30.0
    query_max_rows: int = 100_000
    abandoned_after_hours: float = 24.0
    quiet_seconds: float = DEFAULT_QUIET_SECONDS  # a return is taken once unchanged this long
    file_group: str | None = None
    published_access: str = "everyone"  # private | group | everyone
    retention_days: int = 2557
    identifier_retention_days: int = 30
    # What one dbt build may take of the machine (DuckDB's memory_limit and threads).
    duckdb_memory_limit: str = field(default_factory=default_duckdb_memory_limit)
    duckdb_threads: int = field(default_factory=default_duckdb_threads)
    # Partners' emails: where the partner pages are published (notices link to them), and
    # whether an accepted return gets a receipt (off unless PKPI_SEND_RECEIPTS is set).
    partner_guide_url: str = DEFAULT_PARTNER_GUIDE_URL
    send_receipts: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        """Read every PKPI_* and SMTP setting from ``env`` (default: the process environment)."""
        env = os.environ if env is None else env
        project_dir = Path(env.get("PKPI_PROJECT_DIR") or PROJECT_DIR).resolve()
        data_dir = Path(env.get("PKPI_DATA_DIR") or project_dir / "data")
        reference_dir = Path(env.get("PKPI_REFERENCE_DIR") or project_dir / "seeds")
        security = (env.get("PKPI_SMTP_SECURITY") or "none").strip().lower()
        if security not in SMTP_SECURITY_MODES:
            raise SettingsError(
                f"PKPI_SMTP_SECURITY must be one of {', '.join(SMTP_SECURITY_MODES)}, not {security!r}."
            )
        default_port = {"none": 25, "starttls": 587, "ssl": 465}[security]
        smtp = SmtpSettings(
            host=(env.get("PKPI_SMTP_HOST") or "").strip() or None,
            port=_int(env, "PKPI_SMTP_PORT", default_port),
            security=security,
            user=(env.get("PKPI_SMTP_USER") or "").strip() or None,
            password=env.get("PKPI_SMTP_PASSWORD") or None,
            sender=(env.get("PKPI_SMTP_FROM") or "").strip() or SmtpSettings.sender,
            timeout_seconds=_int(env, "PKPI_SMTP_TIMEOUT", 30),
            retries=_int(env, "PKPI_SMTP_RETRIES", 3),
        )
        threshold = _int(env, "PKPI_DISCLOSURE_THRESHOLD", 5)
        if threshold < 1:
            raise SettingsError("PKPI_DISCLOSURE_THRESHOLD must be 1 or more (5 hides counts of 1 to 4).")
        engineers = tuple(
            e.strip() for e in (env.get("PKPI_ENGINEER_EMAILS") or "").split(",") if e.strip()
        )
        mb = 1024 * 1024
        default_limits = FileLimits()
        limits = FileLimits(
            max_file_bytes=int(_number(env, "PKPI_MAX_FILE_MB", default_limits.max_file_bytes / mb, 1) * mb),
            max_rows=int(_number(env, "PKPI_MAX_ROWS", default_limits.max_rows, 1)),
            max_columns=int(_number(env, "PKPI_MAX_COLUMNS", default_limits.max_columns, 1)),
            xlsx_max_uncompressed_bytes=int(
                _number(env, "PKPI_XLSX_MAX_UNCOMPRESSED_MB", default_limits.xlsx_max_uncompressed_bytes / mb, 1) * mb
            ),
            xlsx_max_shared_strings=int(
                _number(env, "PKPI_XLSX_MAX_SHARED_STRINGS", default_limits.xlsx_max_shared_strings, 1)
            ),
        )
        access = (env.get("PKPI_PUBLISHED_ACCESS") or "everyone").strip().lower()
        if access not in PUBLISHED_ACCESS_MODES:
            raise SettingsError(
                f"PKPI_PUBLISHED_ACCESS must be one of {', '.join(PUBLISHED_ACCESS_MODES)}, not {access!r}."
            )
        return cls(
            data_dir=data_dir.resolve(),
            reference_dir=reference_dir.resolve(),
            smtp=smtp,
            project_dir=project_dir,
            partnership_name=(env.get("PKPI_PARTNERSHIP_NAME") or "").strip() or cls.partnership_name,
            disclosure_threshold=threshold,
            engineer_emails=engineers,
            lock_timeout_seconds=_int(env, "PKPI_LOCK_TIMEOUT", 600),
            limits=limits,
            query_timeout_seconds=_number(env, "PKPI_QUERY_TIMEOUT", 30.0, 0.1),
            query_max_rows=int(_number(env, "PKPI_QUERY_MAX_ROWS", 100_000, 1)),
            abandoned_after_hours=_number(env, "PKPI_ABANDONED_AFTER_HOURS", 24.0, 0),
            quiet_seconds=_number(env, "PKPI_LANDING_QUIET_SECONDS", DEFAULT_QUIET_SECONDS, 0),
            file_group=(env.get("PKPI_FILE_GROUP") or "").strip() or None,
            published_access=access,
            retention_days=int(_number(env, "PKPI_RETENTION_DAYS", 2557, 1)),
            identifier_retention_days=int(_number(env, "PKPI_IDENTIFIER_RETENTION_DAYS", 30, 1)),
            duckdb_memory_limit=_memory_size(env, "PKPI_DUCKDB_MEMORY_LIMIT", default_duckdb_memory_limit()),
            duckdb_threads=_threads(env, "PKPI_DUCKDB_THREADS", default_duckdb_threads()),
            partner_guide_url=_web_folder(env, "PKPI_PARTNER_GUIDE_URL", DEFAULT_PARTNER_GUIDE_URL),
            send_receipts=_flag(env.get("PKPI_SEND_RECEIPTS"), False),
        )

    def with_overrides(self, **changes) -> "Settings":
        return replace(self, **changes)

    # Locations derived from data_dir: one place decides the layout of the data folder.
    @property
    def warehouse_path(self) -> Path:
        return self.data_dir / "warehouse.duckdb"

    @property
    def lock_path(self) -> Path:
        return self.data_dir / "warehouse.lock"

    @property
    def landing_dir(self) -> Path:
        return self.data_dir / "landing"

    @property
    def archive_dir(self) -> Path:
        return self.data_dir / "archive"

    @property
    def quarantine_dir(self) -> Path:
        return self.data_dir / "quarantine"

    @property
    def exports_dir(self) -> Path:
        return self.data_dir / "exports"

    @property
    def outbox_dir(self) -> Path:
        return self.data_dir / "outbox"

    @property
    def published_dir(self) -> Path:
        return self.data_dir / "published"

    @property
    def dbt_project_dir(self) -> Path:
        return self.project_dir / "dbt_project"

    @property
    def expectations_dir(self) -> Path:
        return self.project_dir / "expectations"
