"""Blank templates and partner-facing pages, generated from the contracts.

``pkpi templates DIR`` writes ``<return_type>.csv`` (the header row; as it is, a valid nil
return) and ``<return_type>.xlsx`` (a sheet named after the return type with drop-down lists
for every enumerated column, and a notes sheet describing each column) for every return type.
``pkpi docs`` writes ``docs/returns/<return_type>.md`` from the same contracts, and the table of
return types in ``docs/returns/README.md`` (between :data:`INDEX_START` and :data:`INDEX_END`).
"""

from __future__ import annotations

from pathlib import Path

from .contracts import ID_CHARACTERS, Contract, load_contracts
from .identifiers import FALSE_POSITIVES


def write_templates(folder: Path) -> list[Path]:
    """Write a blank CSV and XLSX template for every return type into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for contract in load_contracts().values():
        csv_path = folder / f"{contract.return_type}.csv"
        csv_path.write_text(",".join(contract.column_names) + "\r\n", encoding="utf-8", newline="")
        written.append(csv_path)
        written.append(_write_xlsx(contract, folder / f"{contract.return_type}.xlsx"))
    return written


def _write_xlsx(contract: Contract, path: Path) -> Path:
    from openpyxl import Workbook
    from openpyxl.styles import Font, PatternFill
    from openpyxl.utils import get_column_letter
    from openpyxl.worksheet.datavalidation import DataValidation

    wb = Workbook()
    sheet = wb.active
    sheet.title = contract.return_type
    lists = wb.create_sheet("lists")
    sheet.append(list(contract.column_names))
    bold = Font(bold=True)
    for index, column in enumerate(contract.columns, start=1):
        letter = get_column_letter(index)
        cell = sheet.cell(row=1, column=index)
        cell.font = bold
        if column.required:
            cell.fill = PatternFill("solid", fgColor="DDEBF7")
        sheet.column_dimensions[letter].width = max(14, len(column.name) + 4)
        values = column.values
        if column.type == "enum":
            # Lists live on a sheet of their own: a quoted inline list has a 255-character limit.
            for row, value in enumerate(values, start=1):
                lists.cell(row=row, column=index, value=value)
            rule = DataValidation(type="list", formula1=f"=lists!${letter}$1:${letter}${len(values)}",
                                  allow_blank=not column.required, showErrorMessage=True,
                                  errorTitle=column.name, error=f"Choose one of: {', '.join(values)}")
            sheet.add_data_validation(rule)
            rule.add(f"{letter}2:{letter}100000")
        elif column.type == "date":
            for row in range(2, 200):
                sheet.cell(row=row, column=index).number_format = "yyyy-mm-dd"
    sheet.freeze_panes = "A2"
    lists.sheet_state = "hidden"
    notes = wb.create_sheet("notes")
    notes.append(["column", "required", "type", "rule"])
    for c in notes[1]:
        c.font = bold
    for column in contract.columns:
        notes.append([column.name, "yes" if column.required else "no", column.type_phrase(), column.description])
    notes.append([])
    notes.append([f"{contract.title}: {contract.grain}"])
    notes.append([f"Save into landing/{contract.return_type}/<partner_code>/<period>/ ; period "
                  f"{'YYYY-MM' if contract.period_kind == 'month' else 'YYYY-YY (financial year)'}."])
    notes.append(["A file with this header and no rows is a nil return: nothing to report this period."])
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
        f"`{contract.return_type}.xlsx` (with drop-down lists).",
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
        extras = []
        if c.unique:
            extras.append("unique within the file")
        if c.in_period:
            extras.append("inside the return's period")
        if c.not_before:
            extras.append(f"not before {c.not_before}")
        if c.not_in_future:
            extras.append("not in the future")
        if c.reference:
            extras.append(f"a code from {c.reference[0]}.csv")
        extras = [e for e in extras if e.lower() not in c.description.lower()]
        rule = c.description + (f" ({'; '.join(extras)})" if extras else "")
        lines.append(f"| {c.name}{star} | {c.type_phrase()} | {rule} |")
    if contract.rules:
        lines += ["", "## Rules between columns", ""]
        for r in contract.rules:
            if r.rule == "required_when":
                text = f"`{r.column}` is required when {r.when.describe()}"
                text += ", and must be blank otherwise." if r.blank_otherwise else "."
            elif r.rule == "values_when":
                text = f"When {r.when.describe()}, `{r.column}` must be one of: {', '.join(r.values)}."
            else:
                text = f"`{r.column}` must be blank unless {r.when.describe()}."
            lines.append(f"- {text}")
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


INDEX_START = "<!-- The table of return types is generated from the contracts by `pkpi docs`. -->"
INDEX_END = "<!-- End of the generated table. -->"


def return_types_table() -> str:
    """The partners' guide's table of return types: one row per contract, linking its page."""
    lines = ["| return | who sends it | period | page |", "|---|---|---|---|"]
    for c in load_contracts().values():
        period = "month `YYYY-MM`" if c.period_kind == "month" else "financial year `YYYY-YY`"
        lines.append(f"| `{c.return_type}` | {c.submitted_by} | {period} | [{c.return_type}]({c.return_type}.md) |")
    return "\n".join(lines)


def partner_index(text: str) -> str:
    """``docs/returns/README.md`` with its table of return types replaced by the contracts' one."""
    start, end = text.index(INDEX_START) + len(INDEX_START), text.index(INDEX_END)
    return text[:start] + "\n" + return_types_table() + "\n" + text[end:]


def write_partner_docs(folder: Path) -> list[Path]:
    """Write one partner-facing markdown page per return type into ``folder``, and the table of
    return types in its README.md (when the README has the markers)."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for contract in load_contracts().values():
        path = folder / f"{contract.return_type}.md"
        path.write_text(contract_markdown(contract), encoding="utf-8")
        written.append(path)
    index = folder / "README.md"
    if index.is_file() and INDEX_START in (text := index.read_text(encoding="utf-8")):
        index.write_text(partner_index(text), encoding="utf-8")
        written.append(index)
    return written
