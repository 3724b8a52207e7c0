"""Explaining a rejected return to its sender: the errors file, the readable report, the notice.

The errors file has one line per problem (row, column, value, rule, message). Values are the
partner's own cells, shown so its analyst can find and fix them; identifier columns are
rejected by name and their values are never read into a problem. Values that a spreadsheet
would run as a formula are written with a leading apostrophe so opening the file is safe.
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter, OrderedDict
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import BinaryIO, Callable

from jinja2 import Environment, PackageLoader, select_autoescape

from .gate import Problem

ERRORS_COLUMNS = ("row", "column", "value", "rule", "message")
REPORT_PROBLEM_LIMIT = 500
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class RuleSummary:
    rule: str
    column: str | None
    message: str
    count: int
    example_rows: tuple[int, ...]


def _safe_cell(value: str | None) -> str:
    if value is None:
        return ""
    return "'" + value if value.startswith(_FORMULA_START) else value


def errors_csv(problems: list[Problem]) -> str:
    """The errors file: one line per problem; ``row`` is the file's row number (header = 1)."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(ERRORS_COLUMNS)
    for p in problems:
        # The column can be the partner's own header text, so it is made safe like a value.
        writer.writerow(["" if p.row is None else p.row, _safe_cell(p.column), _safe_cell(p.value), p.rule, p.message])
    return buffer.getvalue()


def summarise(problems: list[Problem]) -> list[RuleSummary]:
    """Problems grouped by rule and column, in the order they first appear."""
    groups: "OrderedDict[tuple[str, str | None], list[Problem]]" = OrderedDict()
    for p in problems:
        groups.setdefault((p.rule, p.column), []).append(p)
    return [
        RuleSummary(rule, column, items[0].message, len(items),
                    tuple(p.row for p in items[:5] if p.row is not None))
        for (rule, column), items in groups.items()
    ]


def audit_message(problems: list[Problem]) -> str:
    """A one-line summary for the load audit and logs: rules and counts, never values."""
    counts = Counter(p.rule for p in problems)
    return f"{len(problems)} problem(s): " + ", ".join(f"{rule} x{n}" for rule, n in counts.most_common())


def rule_ids(problems: list[Problem]) -> list[str]:
    """The distinct rules a file broke, sorted: what audit.loads.error_rules holds."""
    return sorted({p.rule for p in problems})


def rules_of_audit_message(message: str | None) -> list[str]:
    """The rules named in an :func:`audit_message` (for audit rows older than error_rules)."""
    return sorted(set(_AUDIT_RULE.findall(message or "")))


_AUDIT_RULE = re.compile(r"([a-z][a-z0-9_]*) x\d+")

_env = Environment(loader=PackageLoader("pkpi", "templates"), autoescape=select_autoescape(["html", "j2"]))


def report_html(*, file_name: str, return_type: str | None, partner_code: str | None,
                period: str | None, problems: list[Problem], received_at, load_id: str) -> str:
    """A self-contained page a partner's analyst can read to fix the file."""
    return _env.get_template("rejection_report.html.j2").render(
        file_name=file_name, return_type=return_type, partner_code=partner_code, period=period,
        summary=summarise(problems), problems=problems[:REPORT_PROBLEM_LIMIT],
        total=len(problems), limit=REPORT_PROBLEM_LIMIT, received_at=received_at, load_id=load_id,
        safe=_safe_cell,
    )


def write_quarantine(folder: Path, file_name: str, content: "bytes | Callable[[BinaryIO], object] | None",
                     problems: list[Problem], report: str) -> Path:
    """Put the original bytes, the errors file and the report side by side; returns the copy.

    ``file_name`` is never errors.csv or report.html (pkpi.ingest names the copy).

    ``content`` may instead be a function that writes the original into an open file (one too
    large to hold in memory), or None when nothing was read (a link, a pipe...): then only the
    errors file and the report are written, and the report's path is returned.
    """
    folder.mkdir(parents=True, exist_ok=True)
    original = folder / file_name
    if content is None:
        original = folder / "report.html"
    elif callable(content):
        with original.open("wb") as sink:
            content(sink)
    else:
        original.write_bytes(content)
    (folder / "errors.csv").write_text(errors_csv(problems), encoding="utf-8", newline="")
    (folder / "report.html").write_text(report, encoding="utf-8")
    return original


def notice_message(*, partnership: str, sender: str, recipient: str, file_name: str,
                   return_type: str | None, partner_code: str | None, period: str | None,
                   problems: list[Problem], load_id: str) -> EmailMessage:
    """The email telling a partner's data contact that a return was rejected, and why."""
    summary = summarise(problems)
    what = f"{return_type or 'return'} for {period or 'an unknown period'}"
    message = EmailMessage()
    message["Subject"] = f"{partnership}: your {what} ({file_name}) was not accepted"
    message["From"] = sender
    message["To"] = recipient
    lines = [
        f"Your file {file_name} ({what}, partner {partner_code or 'unknown'}) was checked against "
        "the data-sharing contract and was not accepted. Nothing from it has been loaded.",
        "",
        "The rules it did not meet:",
    ]
    for s in summary:
        where = f" (column {s.column})" if s.column else ""
        rows = f"; first rows: {', '.join(map(str, s.example_rows))}" if s.example_rows else ""
        lines.append(f"  - {s.rule}{where}: {s.message} {s.count} time(s){rows}.")
    lines += [
        "",
        "Please correct the file and upload it again to the same folder. The full list of "
        "problems, row by row, is in the errors file kept with the rejected copy "
        f"(reference {load_id}); the partnership data team can send it to you.",
    ]
    text = "\n".join(lines)
    message.set_content(text)
    html = _env.get_template("rejection_notice.html.j2").render(
        file_name=file_name, what=what, partner_code=partner_code, summary=summary, load_id=load_id,
    )
    message.add_alternative(html, subtype="html")
    return message
