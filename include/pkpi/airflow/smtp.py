"""SMTP settings from Airflow's ``smtp_default`` connection, for deployments that keep the mail
server's details in Airflow rather than in ``PKPI_SMTP_*``.

The environment wins (one place to override everything); the Airflow connection is the
fallback under Airflow; without either, mail goes to the outbox (see :mod:`pkpi.mailer`).
"""

from __future__ import annotations

from airflow.sdk import BaseHook

from ..settings import Settings, SmtpSettings

AIRFLOW_SMTP_CONN_ID = "smtp_default"


def smtp_settings_from_airflow(conn_id: str = AIRFLOW_SMTP_CONN_ID, base: SmtpSettings | None = None) -> SmtpSettings | None:
    """SmtpSettings from an Airflow SMTP connection, or None when the connection is absent.

    Follows the SMTP provider's conventions: extras ``disable_ssl`` (SSL is on by default),
    ``disable_tls`` (STARTTLS otherwise), ``from_email``, ``timeout`` and ``retry_limit``.
    """
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
    """Settings whose SMTP comes from Airflow's connection when PKPI_SMTP_HOST is not set."""
    if settings.smtp.configured:
        return settings
    smtp = smtp_settings_from_airflow(conn_id, base=settings.smtp)
    return settings.with_overrides(smtp=smtp) if smtp else settings
