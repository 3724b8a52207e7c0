"""What a partner is told about its file: for a rejected return the errors file, the readable
report and the notice; for an accepted one, when receipts are on, the receipt.

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
from datetime import date, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import BinaryIO, Callable

from jinja2 import Environment, PackageLoader, select_autoescape

from .contracts import load_contracts
from .gate import Problem
from .periods import period_words
from .reference import on_time
from .templates_gen import checking_sentence, page_name

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


def report_html(facts: "NoticeFacts", *, problems: list[Problem], load_id: str) -> str:
    """A self-contained page a partner's analyst can read, on a phone too, to fix the file."""
    return _env.get_template("rejection_report.html.j2").render(
        facts=facts, summary=summarise(problems), problems=problems[:REPORT_PROBLEM_LIMIT],
        total=len(problems), limit=REPORT_PROBLEM_LIMIT, load_id=load_id, safe=_safe_cell,
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


def day_words(day: date) -> str:
    """A date as a partner reads it: "Thursday 10 April 2025"."""
    return f"{day:%A} {day.day} {day:%B %Y}"


@dataclass(frozen=True)
class NoticeFacts:
    """What a partner's email says about one return besides its problems: the return in words,
    where a corrected file goes, when it is due and where its contract is published."""

    partnership: str
    file_name: str
    return_type: str | None
    partner_code: str | None
    period: str | None
    title: str | None  # "Front-door contacts and referrals (contacts)"; None: an unknown return type
    page_url: str  # the return type's contract page, or the partners' guide
    due: date | None
    received_at: datetime | None
    checking: str  # how often landing is checked (pkpi.templates_gen.checking_sentence)

    @property
    def what(self) -> str:
        return f"{self.return_type or 'return'} for {self.period or 'an unknown period'}"

    @property
    def page_label(self) -> str:
        return f"the {self.title} page" if self.title else "the partners' guide to sending a return"

    @property
    def folder(self) -> str:
        parts = (self.return_type or "<return_type>", self.partner_code or "<partner_code>",
                 self.period or "<period>")
        return "landing/" + "/".join(parts) + "/"

    def due_sentence(self) -> str:
        if self.due is None:
            return ("The partnership's schedule sets no due date for this return: send the "
                    "corrected file as soon as you can.")
        when = day_words(self.due)
        if self.received_at is not None and not on_time(self.received_at, self.due):
            return f"This return was due on {when}, so it is late: send the corrected file as soon as you can."
        return f"This return is due on {when}: a corrected file received by then counts as on time."

    def next_steps(self) -> list[str]:
        return [
            "Correct the file: each rule it did not meet is listed below, with the first rows "
            "to fix (the header is row 1).",
            f"Upload the whole corrected file to {self.folder}; it replaces this one.",
            self.due_sentence(),
            self.checking[:1].upper() + self.checking[1:],
        ]


def notice_facts(*, partnership: str, guide_url: str, file_name: str, return_type: str | None,
                 partner_code: str | None, period: str | None, due: date | None,
                 received_at: datetime | None) -> NoticeFacts:
    """The facts of a partner email for one file (the names are already safe: pkpi.landing)."""
    contract = load_contracts().get(return_type or "")
    return NoticeFacts(
        partnership=partnership, file_name=file_name, return_type=return_type,
        partner_code=partner_code, period=period,
        title=f"{contract.title} ({contract.return_type})" if contract else None,
        page_url=guide_url + page_name(contract.return_type if contract else None),
        due=due, received_at=received_at, checking=checking_sentence(),
    )


def notice_message(facts: NoticeFacts, *, sender: str, recipient: str, problems: list[Problem],
                   load_id: str) -> EmailMessage:
    """The email telling a partner's data contact that a return was rejected, why, and what to
    do next (its due date, where to upload, the contract page)."""
    summary = summarise(problems)
    lines = [
        f"Your file {facts.file_name} ({facts.what}, partner {facts.partner_code or 'unknown'}) was "
        "checked against the data-sharing contract and was not accepted. Nothing from it has been loaded.",
        "",
        "What to do next:",
        *[f"  {n}. {step}" for n, step in enumerate(facts.next_steps(), start=1)],
        "",
        f"Every column's rules are on {facts.page_label}: {facts.page_url}",
        "",
        "The rules it did not meet:",
    ]
    for s in summary:
        where = f" (column {s.column})" if s.column else ""
        rows = f"; first rows: {', '.join(map(str, s.example_rows))}" if s.example_rows else ""
        lines.append(f"  - {s.rule}{where}: {s.message} {s.count} time(s){rows}.")
    lines += [
        "",
        "The full list of problems, row by row, is in the errors file kept with the rejected copy "
        f"(reference {load_id}); the partnership data team can send it to you.",
    ]
    return _partner_email(facts, "was not accepted", sender, recipient, lines, "rejection_notice.html.j2",
                          summary=summary, load_id=load_id)


def receipt_message(facts: NoticeFacts, *, sender: str, recipient: str, partner_name: str,
                    row_count: int, load_id: str) -> EmailMessage:
    """The receipt for an accepted return: which return, partner and period, how many rows were
    counted, and whether it came on time. Only counts and dates: never a value from the file."""
    kind = load_contracts()[facts.return_type].period_kind
    period = period_words(facts.period, kind)
    if facts.due is None:
        timing = "No due date is set in the partnership's schedule"
    else:
        state = "Yes" if facts.received_at is None or on_time(facts.received_at, facts.due) else "No, late"
        timing = f"{state} (due {day_words(facts.due)})"
    rows = f"{row_count:,}" if row_count else "none: a nil return (nothing to report this period)"
    received = f"{facts.received_at:%d %B %Y %H:%M} UTC" if facts.received_at else "not known"
    details = [("Return", facts.title), ("Partner", f"{partner_name} ({facts.partner_code})"),
               ("Period", period), ("Rows counted", rows), ("Received", received), ("On time", timing)]
    lines = [
        f"Your file {facts.file_name} was checked against the data-sharing contract and accepted: "
        "its rows are loaded.",
        "",
        *[f"  {label}: {value}" for label, value in details],
        "",
        f"A corrected file for the same period, uploaded to {facts.folder}, replaces this one. "
        f"Every column's rules are on {facts.page_label}: {facts.page_url}",
        "",
        f"Reference {load_id}.",
    ]
    return _partner_email(facts, "was accepted", sender, recipient, lines, "receipt.html.j2",
                          details=details, load_id=load_id)


def _partner_email(facts: NoticeFacts, outcome: str, sender: str, recipient: str, lines: list[str],
                   template: str, **context) -> EmailMessage:
    """A partner email about one file: its subject names the file and ``outcome``; a plain body
    and an HTML one (``template``, styled like the scorecard)."""
    message = EmailMessage()
    message["Subject"] = f"{facts.partnership}: your {facts.what} ({facts.file_name}) {outcome}"
    message["From"] = sender
    message["To"] = recipient
    message.set_content("\n".join(lines))
    html = _env.get_template(template).render(facts=facts, subject=message["Subject"], **context)
    message.add_alternative(html, subtype="html")
    return message
