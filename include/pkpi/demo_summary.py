"""Where a demo cycle's outputs are: what ``pkpi demo`` and ``make demo`` print when they finish.

Everything the README promises the demo makes, each with its path: the month's scorecard files
and charts, the scorecard email and the rejected partner's notice (written to the outbox, or
sent, as the email ledger records them), the quarantined return, the warehouse and the published
copy for analysts; then the month's returns as ``pkpi status`` shows them. It reads what is
there and says plainly what is not, so it also explains a demo that stopped half-way.
"""

from __future__ import annotations

from pathlib import Path

from .mailer import LedgerEntry, ledger_entries
from .periods import parse_month
from .settings import Settings

SCORECARD_FILES = ("scorecard.html", "scorecard.pdf", "scorecard.xlsx", "scorecard.csv")


def _email(entry: LedgerEntry | None) -> str:
    if entry is None:
        return "not made"
    recipients = len([r for r in entry.recipients.split(",") if r.strip()])
    if entry.status == "written_to_outbox":
        return f"{entry.detail} (written to the outbox, not sent: no SMTP server is configured)"
    if entry.status == "sent":
        return f"sent to {recipients} recipient(s) (Message-ID {entry.message_id})"
    if entry.status == "partly_refused":
        return f"sent, but the mail server refused some recipients: {entry.detail}"
    return f"{entry.status.replace('_', ' ')}: {entry.detail or 'see the runbook'}"


def _latest(entries: list[LedgerEntry]) -> LedgerEntry | None:
    return entries[-1] if entries else None


def _rejected_loads(settings: Settings, period: str) -> list[tuple[str, str, str]]:
    """(return type, partner, quarantine folder) of each rejected return for the month, latest first."""
    if not settings.warehouse_path.exists():
        return []
    from .warehouse import connect

    with connect(settings, read_only=True) as con:
        rows = con.execute(
            """SELECT return_type, partner_code, stored_path FROM audit.loads
               WHERE status = 'rejected' AND period = ? ORDER BY arrival_seq DESC""", [period]).fetchall()
    seen: set[tuple[str, str]] = set()
    out = []
    for return_type, partner, stored in rows:
        if (return_type, partner) not in seen:  # a rejected file sent again is quarantined again
            seen.add((return_type, partner))
            out.append((return_type, partner, str((settings.data_dir / stored).parent)))
    return out


def _line(label: str, text: str) -> str:
    return f"  {label + ':':<17} {text}"


def _present(path: Path, what: str = "") -> str:
    return f"{path}{' ' + what if what else ''}" if path.exists() else f"{path} (not there yet)"


def describe_outputs(settings: Settings, period: str) -> str:
    """The demo's outputs for ``period`` (``YYYY-MM``), one per line with its path, then the
    month's returns."""
    from .status import format_states, return_states

    month = parse_month(period)
    folder = settings.exports_dir / period
    made = [name for name in SCORECARD_FILES if (folder / name).exists()]
    charts = sorted((folder / "charts").glob("*.png")) if (folder / "charts").is_dir() else []
    emails = ledger_entries(settings)
    lines = [f"\nThe demo's outputs for {month.start:%B %Y}:",
             _line("scorecard", f"{folder}/ ({', '.join(made) or 'not written'})"),
             _line("charts", f"{folder / 'charts'}/ ({len(charts)} charts)" if charts else f"{folder / 'charts'}/ (none)"),
             _line("scorecard email",
                   _email(_latest([e for e in emails if e.kind == "scorecard" and e.period == period])))]
    rejections = [e for e in emails if e.kind == "rejection" and e.period == period]
    for partner in sorted({e.partner_code or "" for e in rejections}):
        notice = _latest([e for e in rejections if (e.partner_code or "") == partner])
        lines.append(_line(f"notice to {partner or 'a partner'}", _email(notice)))
    if not rejections:
        lines.append(_line("partner notice", "none (no return for the month was rejected)"))
    quarantined = _rejected_loads(settings, period)
    for return_type, partner, where in quarantined:
        lines.append(_line("quarantine", f"{where}/ ({partner}'s {return_type} return, errors.csv, report.html)"))
    if not quarantined:
        lines.append(_line("quarantine", f"{settings.quarantine_dir}/ (nothing for {period})"))
    lines += [
        _line("warehouse", _present(settings.warehouse_path)),
        _line("published copy", f"{_present(settings.published_dir / 'kpi_mart.duckdb')} and "
                                f"{settings.published_dir / 'parquet'}/ (for analysts: pkpi query)"),
        f"\nReturns for {period}:",
        format_states(return_states(settings, period)),
    ]
    return "\n".join(lines)
