"""Blank templates and partner-facing pages, generated from the contracts.

``pkpi templates DIR`` writes ``<return_type>.csv`` (the header row; as it is, a valid nil
return) and ``<return_type>.xlsx`` (a sheet named after the return type with a drop-down list
on every coded column: the contract's values, or the codes of a reference table such as
courses.csv; a Codes sheet listing each code and its name; a notes sheet describing each
column) for every return type. ``pkpi docs`` writes ``docs/returns/<return_type>.md`` from the
same contracts, and in ``docs/returns/README.md`` the table of return types and the sentence
saying how often landing is checked (between the :data:`GENERATED` markers), taken from the
ingest DAG's schedule.
"""

from __future__ import annotations

from pathlib import Path

from .schedule import TIMEZONE, ingest_frequency
from .contracts import ID_CHARACTERS, Column, Contract, load_contracts
from .identifiers import FALSE_POSITIVES
from .reference import Reference

CODES_SHEET = "Codes"
TEMPLATE_ROWS = 100_000
"""How far down the data sheet the drop-down lists reach."""


def write_templates(folder: Path, reference: Reference) -> list[Path]:
    """Write a blank CSV and XLSX template for every return type into ``folder``; the codes of
    reference tables (course codes) come from ``reference``."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for contract in load_contracts().values():
        csv_path = folder / f"{contract.return_type}.csv"
        csv_path.write_text(",".join(contract.column_names) + "\r\n", encoding="utf-8", newline="")
        written.append(csv_path)
        written.append(_write_xlsx(contract, reference, folder / f"{contract.return_type}.xlsx"))
    return written


def codes(column: Column, reference: Reference) -> list[tuple[str, str]]:
    """The codes a coded column allows, each with its name: the contract's values, or the rows
    of the reference table it names (only courses.csv today)."""
    if column.type == "enum":
        return [(value, column.code_name(value)) for value in column.values]
    if column.reference == ("courses", "course_code"):
        return [(c.course_code, c.course_name) for c in reference.courses]
    raise ValueError(f"{column.name}: the templates know no codes for the reference {column.reference}; "
                     "add the table to pkpi.templates_gen.codes.")


def _write_xlsx(contract: Contract, reference: Reference, path: Path) -> Path:
    from openpyxl import Workbook
    from openpyxl.styles import Font, PatternFill
    from openpyxl.utils import get_column_letter
    from openpyxl.worksheet.datavalidation import DataValidation

    wb = Workbook()
    sheet = wb.active
    sheet.title = contract.return_type
    sheet.append(list(contract.column_names))
    # One visible sheet lists every code and its name, and the drop-downs read their lists from
    # it (a quoted inline list has a 255-character limit). The gate reads only the data sheet.
    listing = wb.create_sheet(CODES_SHEET)
    listing.append(["column", "code", "name"])
    bold = Font(bold=True)
    for c in listing[1]:
        c.font = bold
    for index, column in enumerate(contract.columns, start=1):
        letter = get_column_letter(index)
        cell = sheet.cell(row=1, column=index)
        cell.font = bold
        if column.required:
            cell.fill = PatternFill("solid", fgColor="DDEBF7")
        sheet.column_dimensions[letter].width = max(14, len(column.name) + 4)
        if column.is_coded:
            allowed = codes(column, reference)
            first = listing.max_row + 1
            for code, name in allowed:
                listing.append([column.name, code, name])
            rule = DataValidation(type="list", formula1=f"={CODES_SHEET}!$B${first}:$B${first + len(allowed) - 1}",
                                  allow_blank=not column.required, showErrorMessage=True,
                                  errorTitle=column.name[:32],
                                  error=f"Choose one of the {column.name} codes listed on the {CODES_SHEET} sheet.")
            sheet.add_data_validation(rule)
            rule.add(f"{letter}2:{letter}{TEMPLATE_ROWS}")
        elif column.type == "date":
            for row in range(2, 200):
                sheet.cell(row=row, column=index).number_format = "yyyy-mm-dd"
    for letter, width in zip("ABC", (22, 18, 60)):
        listing.column_dimensions[letter].width = width
    listing.freeze_panes = "A2"
    sheet.freeze_panes = "A2"
    notes = wb.create_sheet("notes")
    notes.append(["column", "required", "type", "rule"])
    for c in notes[1]:
        c.font = bold
    for column in contract.columns:
        notes.append([column.name, "yes" if column.required else "no", column.type_phrase(),
                      contract.column_rule(column)])
    notes.append([])
    for text in contract.row_rule_texts():
        notes.append([text.replace("`", "")])
    notes.append([f"{contract.title}: {contract.grain}"])
    notes.append([f"Save into landing/{contract.return_type}/<partner_code>/<period>/ ; period "
                  f"{'YYYY-MM' if contract.period_kind == 'month' else 'YYYY-YY (financial year)'}."])
    notes.append(["A file with this header and no rows is a nil return: nothing to report this period."])
    notes.append([_capital(checking_sentence())])
    for rule in identifier_rules(contract):
        notes.append([rule.replace("`", "")])
    for letter, width in zip("ABCD", (22, 10, 40, 90)):
        notes.column_dimensions[letter].width = width
    wb.save(path)
    return path


def contract_markdown(contract: Contract) -> str:
    """The partner-facing page for one return type."""
    period = "YYYY-MM (calendar month)" if contract.period_kind == "month" else "YYYY-YY (financial year, April to March)"
    lines = [
        f"# {contract.title} (`{contract.return_type}`)",
        "",
        "<!-- Generated from include/pkpi/contracts/"
        f"{contract.return_type}.yml by `pkpi docs`; edit the contract, not this page. -->",
        "",
        f"- **Who sends it:** {contract.submitted_by}.",
        f"- **How often:** {contract.frequency}; period {period}.",
        f"- **One row per:** {contract.grain.removeprefix('One row per ').rstrip('.')}.",
        f"- **Where:** `landing/{contract.return_type}/<partner_code>/<period>/<any-name>.csv` (or `.xlsx`), "
        f"for example `landing/{contract.return_type}/NCT/{contract.period_example}/return.csv`.",
        f"- **Blank template:** `pkpi templates DIR` writes `{contract.return_type}.csv` and "
        f"`{contract.return_type}.xlsx` (drop-down lists, and a Codes sheet naming every code).",
        f"- **When it is checked:** {checking_sentence()}",
        "",
        "## Columns",
        "",
        "Columns marked * must have a value on every row. Header names are matched ignoring case "
        "and surrounding spaces; column order is free. Any other column is rejected.",
        "",
        "| column | type | rule |",
        "|---|---|---|",
    ]
    for c in contract.columns:
        star = "*" if c.required else ""
        lines.append(f"| {c.name}{star} | {c.type_phrase()} | {contract.column_rule(c)} |")
    if contract.rules:
        lines += ["", "## Rules between columns", ""]
        lines += [f"- {text}" for text in contract.row_rule_texts()]
    lines += [
        "",
        "## Formats",
        "",
        "- CSV: UTF-8 (a BOM is fine), comma-separated, header in the first row. Files saved by "
        "Excel as Windows-1252 are read correctly; other encodings are rejected.",
        "- XLSX: the visible sheet named after the return type, else the first visible sheet "
        "(hidden sheets are never read); header in row 1; date cells are read as dates (a time "
        "of day in a date cell is ignored).",
        "- Dates: `YYYY-MM-DD` or `DD/MM/YYYY`. Enumerated values: the lower-case words listed "
        "(case and surrounding spaces are ignored).",
        "- A header with no rows is a **nil return** (nothing to report), which is different "
        "from not sending a return.",
        "",
        "## No identifiers",
        "",
        *[f"- {rule}" for rule in identifier_rules(contract)],
        "",
        "See [what happens to your file](README.md) for acceptance, rejection and resubmission.",
        "",
    ]
    return "\n".join(lines)


def identifier_rules(contract: Contract) -> list[str]:
    """What the contract says about direct identifiers and ids, for the page and the template."""
    ids = [c.name for c in contract.columns if c.is_id]
    rules = [
        "Never include names, NHS numbers, dates of birth, addresses, postcodes, phone numbers or "
        "email addresses. A column whose header names one, however it is written (`D.O.B`, "
        "`Post.Code`, `Tel No`, `First Name`, `NHS No`, `UPN`, `E-mail`, ...), is rejected "
        "(`column_identifier`).",
        "Every cell is checked too: a value that looks like an NHS number (10 digits, whole or "
        "3-3-4 with spaces or hyphens, with a valid check digit), an email address, a UK "
        "postcode or a UK phone number (starting 0, +44 or 0044), or a person's name in an id "
        "column, rejects the file (`identifier_value`). The value is never repeated in the "
        "errors file, the report or the email: the row and column say where it is.",
    ]
    if ids:
        rules.append(
            f"An id ({', '.join(f'`{n}`' for n in ids)}) is a code, never a name or a number from "
            f"another system: {ID_CHARACTERS}. Any other id is rejected (`id_format`).")
    rules.append(FALSE_POSITIVES)
    return rules


def checking_sentence() -> str:
    """How often landing is checked, from the ingest DAG's schedule (never written by hand)."""
    return (f"landing is checked {ingest_frequency()} ({TIMEZONE} time); the first check after "
            "an upload finishes loads or rejects the file.")


INDEX_START = "<!-- The table of return types is generated from the contracts by `pkpi docs`. -->"
INDEX_END = "<!-- End of the generated table. -->"
CHECKS_START = "<!-- How often landing is checked is generated from the ingest schedule by `pkpi docs`. -->"
CHECKS_END = "<!-- End of the generated sentence. -->"


GUIDE_PAGE = "README.md"


def page_name(return_type: str | None) -> str:
    """The file name of a return type's partner page in docs/returns/ (None: the guide itself)."""
    return f"{return_type}.md" if return_type else GUIDE_PAGE


def return_types_table() -> str:
    """The partners' guide's table of return types: one row per contract, linking its page."""
    lines = ["| return | who sends it | period | page |", "|---|---|---|---|"]
    for c in load_contracts().values():
        period = "month `YYYY-MM`" if c.period_kind == "month" else "financial year `YYYY-YY`"
        lines.append(f"| `{c.return_type}` | {c.submitted_by} | {period} | [{c.return_type}]({page_name(c.return_type)}) |")
    return "\n".join(lines)


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _between(text: str, start_marker: str, end_marker: str, body: str) -> str:
    start, end = text.index(start_marker) + len(start_marker), text.index(end_marker)
    return text[:start] + "\n" + body + "\n" + text[end:]


def partner_index(text: str) -> str:
    """``docs/returns/README.md`` with its generated parts (the table of return types, how
    often landing is checked) made again from the contracts and the schedule."""
    text = _between(text, INDEX_START, INDEX_END, return_types_table())
    return _between(text, CHECKS_START, CHECKS_END, _capital(checking_sentence()))


def write_partner_docs(folder: Path) -> list[Path]:
    """Write one partner-facing markdown page per return type into ``folder``, and the table of
    return types in its README.md (when the README has the markers)."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for contract in load_contracts().values():
        path = folder / page_name(contract.return_type)
        path.write_text(contract_markdown(contract), encoding="utf-8")
        written.append(path)
    index = folder / GUIDE_PAGE
    if index.is_file() and INDEX_START in (text := index.read_text(encoding="utf-8")):
        index.write_text(partner_index(text), encoding="utf-8")
        written.append(index)
    return written
