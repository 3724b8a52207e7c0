"""Reference data: the partnership's partners, return schedule, courses, population, targets
and scorecard distribution list.

The shipped defaults (the Northamptonshire partnership) live in ``seeds/``; a deployment points
``PKPI_REFERENCE_DIR`` at its own folder holding the same six CSV files (docs/returns/README.md,
section 4). :func:`load_reference` reads that folder afresh on every call and checks it row by
row, so a mistake in a hand-edited file is reported with its file, row and column rather than
surfacing later as a wrong KPI. Nothing is cached: tests and deployments point the settings at
different folders.

:func:`expected_returns` and :func:`expected_returns_for_financial_year` turn the schedule into
the returns the partnership expects for a period, with their due dates.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Callable, Iterable

from .contracts import load_contracts
from .errors import PermanentError
from .periods import PeriodError, parse_financial_year, parse_month
from .settings import Settings

PARTNER_TYPES = (
    "local_authority", "police", "health", "childrens_trust", "education", "probation",
    "voluntary", "government", "other",
)

ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

# The columns of each reference file, exactly as docs/returns/README.md, reference data lists them.
REFERENCE_FILES: dict[str, tuple[str, ...]] = {
    "partners.csv": (
        "partner_code", "partner_name", "partner_type", "statutory_partner", "active_from",
        "active_to", "data_contact_email",
    ),
    "return_schedule.csv": ("return_type", "partner_code", "due_days", "active_from", "active_to"),
    "courses.csv": ("course_code", "course_name", "theme"),
    "population.csv": ("financial_year", "population_0_17"),
    "kpi_targets.csv": ("kpi_code", "financial_year", "target", "amber_tolerance"),
    "distribution_list.csv": ("email", "name", "role", "active"),
}


class ReferenceDataError(PermanentError, ValueError):
    """A reference file is missing or malformed. The message names the file and row."""


class UnknownPartnerError(PermanentError, KeyError):
    """A partner code that is not in partners.csv."""

    def __str__(self) -> str:  # KeyError would otherwise print the repr of its argument
        return str(self.args[0]) if self.args else "unknown partner"


def _overlaps(active_from: date, active_to: date | None, start: date, end: date) -> bool:
    """True when [active_from, active_to] shares at least one day with [start, end]."""
    return active_from <= end and (active_to is None or active_to >= start)


@dataclass(frozen=True)
class Partner:
    """A partner agency from partners.csv."""

    code: str
    name: str
    partner_type: str
    statutory_partner: bool
    active_from: date
    active_to: date | None
    data_contact_email: str | None

    def active_during(self, start: date, end: date) -> bool:
        """True when the partner is active for any part of ``start``..``end`` (inclusive)."""
        return _overlaps(self.active_from, self.active_to, start, end)


@dataclass(frozen=True)
class ScheduleEntry:
    """One row of return_schedule.csv: a partner owes a return type while the row is active."""

    return_type: str
    partner_code: str
    due_days: int
    active_from: date
    active_to: date | None

    def active_during(self, start: date, end: date) -> bool:
        """True when the schedule row applies to any part of ``start``..``end`` (inclusive)."""
        return _overlaps(self.active_from, self.active_to, start, end)


@dataclass(frozen=True)
class Course:
    """A course in the partnership's training catalogue."""

    course_code: str
    course_name: str
    theme: str


@dataclass(frozen=True)
class PopulationYear:
    """The 0 to 17 population used for rates per 10,000 children in one financial year."""

    financial_year: str
    population_0_17: int


@dataclass(frozen=True)
class KpiTarget:
    """A KPI's target for one financial year, and how far short of it still counts as amber."""

    kpi_code: str
    financial_year: str
    target: float
    amber_tolerance: float


@dataclass(frozen=True)
class Recipient:
    """A row of the scorecard distribution list."""

    email: str
    name: str
    role: str
    active: bool


@dataclass(frozen=True)
class ExpectedReturn:
    """A return the schedule says a partner owes for a period, and when it is due."""

    return_type: str
    partner_code: str
    period: str
    due_date: date


@dataclass(frozen=True)
class Reference:
    """Everything in the reference folder, typed. Build it with :func:`load_reference`."""

    directory: Path
    partners: tuple[Partner, ...]
    schedule: tuple[ScheduleEntry, ...]
    courses: tuple[Course, ...]
    population: tuple[PopulationYear, ...]
    kpi_targets: tuple[KpiTarget, ...]
    distribution_list: tuple[Recipient, ...]

    @property
    def partner_codes(self) -> tuple[str, ...]:
        return tuple(p.code for p in self.partners)

    def has_partner(self, code: str) -> bool:
        return any(p.code == code for p in self.partners)

    def partner(self, code: str) -> Partner:
        """The partner with this code; raises UnknownPartnerError when partners.csv lacks it."""
        for p in self.partners:
            if p.code == code:
                return p
        raise UnknownPartnerError(
            f"Partner code '{code}' is not in partners.csv ({self.directory}). Use one of "
            f"{', '.join(self.partner_codes)}, or add the partner to partners.csv."
        )

    def partner_active(self, code: str, period_start: date, period_end: date) -> bool:
        """True when ``code`` is a known partner active for any part of the period.

        An unknown code is simply not active, so callers can reject returns from it with one test.
        """
        return self.has_partner(code) and self.partner(code).active_during(period_start, period_end)

    def data_contact(self, code: str) -> str | None:
        """The partner's data contact email, or None when none is set (or the code is unknown)."""
        return self.partner(code).data_contact_email if self.has_partner(code) else None

    @property
    def course_codes(self) -> frozenset[str]:
        return frozenset(c.course_code for c in self.courses)

    @property
    def active_recipients(self) -> tuple[Recipient, ...]:
        """The people who receive the scorecard: active rows of distribution_list.csv."""
        return tuple(r for r in self.distribution_list if r.active)

    def population_for(self, financial_year: str) -> int | None:
        """The 0 to 17 population for a financial year, or None when population.csv lacks it."""
        for p in self.population:
            if p.financial_year == financial_year:
                return p.population_0_17
        return None

    def target_for(self, kpi_code: str, financial_year: str) -> KpiTarget | None:
        """The KPI's target for a financial year, or None when kpi_targets.csv sets none."""
        for t in self.kpi_targets:
            if t.kpi_code == kpi_code and t.financial_year == financial_year:
                return t
        return None

    def schedule_for(self, return_type: str) -> tuple[ScheduleEntry, ...]:
        """Every schedule row for a return type, whatever its active dates."""
        return tuple(s for s in self.schedule if s.return_type == return_type)


# --- reading and checking the files -------------------------------------------------------


class _Row:
    """One data row of a reference file, with converters that name the file, row and column."""

    def __init__(self, file_name: str, row_number: int, values: dict[str, str]):
        self.file_name = file_name
        self.row_number = row_number  # header is row 1, as in partner return error reports
        self.values = values

    def fail(self, column: str | None, problem: str) -> ReferenceDataError:
        where = f"{self.file_name} row {self.row_number}" + (f", column {column}" if column else "")
        return ReferenceDataError(f"{where}: {problem} Correct the file and run again.")

    def text(self, column: str) -> str:
        value = self.values[column]
        if not value:
            raise self.fail(column, "a value is required here but the cell is blank.")
        return value

    def optional_text(self, column: str) -> str | None:
        return self.values[column] or None

    def choice(self, column: str, allowed: Iterable[str]) -> str:
        value = self.text(column)
        allowed = tuple(allowed)
        if value not in allowed:
            raise self.fail(column, f"'{value}' is not one of {', '.join(allowed)}.")
        return value

    def boolean(self, column: str) -> bool:
        value = self.text(column).lower()
        if value not in ("true", "false"):
            raise self.fail(column, f"'{self.values[column]}' is not true or false.")
        return value == "true"

    def day(self, column: str) -> date:
        value = self.text(column)
        try:
            # Reference dates are ISO only (dbt reads the same files as seeds).
            if not ISO_DATE.match(value):
                raise ValueError(value)
            return date.fromisoformat(value)
        except ValueError:
            raise self.fail(column, f"'{value}' is not a date written as YYYY-MM-DD.") from None

    def optional_day(self, column: str) -> date | None:
        return self.day(column) if self.values[column] else None

    def integer(self, column: str, minimum: int = 0) -> int:
        value = self.text(column)
        try:
            number = int(value)
        except ValueError:
            raise self.fail(column, f"'{value}' is not a whole number.") from None
        if number < minimum:
            raise self.fail(column, f"{number} is below the minimum of {minimum}.")
        return number

    def number(self, column: str, minimum: float | None = None) -> float:
        value = self.text(column)
        try:
            number = float(value)
        except ValueError:
            raise self.fail(column, f"'{value}' is not a number.") from None
        if number != number or number in (float("inf"), float("-inf")):
            raise self.fail(column, f"'{value}' is not a finite number.")
        if minimum is not None and number < minimum:
            raise self.fail(column, f"{value} is below the minimum of {minimum:g}.")
        return number

    def financial_year(self, column: str) -> str:
        value = self.text(column)
        try:
            parse_financial_year(value)
        except PeriodError as exc:
            raise self.fail(column, str(exc)) from None
        return value


def _read_rows(directory: Path, file_name: str) -> list[_Row]:
    """Read one reference CSV, checking it exists, decodes and has exactly its columns."""
    path = directory / file_name
    if not path.is_file():
        raise ReferenceDataError(
            f"Reference file {file_name} is missing from {directory}. PKPI_REFERENCE_DIR must "
            f"point at a folder holding {', '.join(REFERENCE_FILES)}; copy the shipped seeds/ "
            "folder as a starting point."
        )
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise ReferenceDataError(
            f"{file_name} is not UTF-8 text. Save it as 'CSV UTF-8' and run again."
        ) from None
    reader = csv.reader(text.splitlines())
    header = next(reader, None)
    if header is None:
        raise ReferenceDataError(f"{file_name} is empty: it needs a header row ({', '.join(REFERENCE_FILES[file_name])}).")
    header = [h.strip().lower() for h in header]
    expected = REFERENCE_FILES[file_name]
    missing = [c for c in expected if c not in header]
    unknown = [h for h in header if h not in expected]
    if missing or unknown or len(header) != len(set(header)):
        problems = []
        if missing:
            problems.append(f"missing column(s) {', '.join(missing)}")
        if unknown:
            problems.append(f"unexpected column(s) {', '.join(unknown)}")
        if len(header) != len(set(header)):
            problems.append("a column appears twice")
        raise ReferenceDataError(
            f"{file_name} row 1 (header): {'; '.join(problems)}. The columns must be exactly: "
            f"{', '.join(expected)}."
        )
    rows = []
    for number, cells in enumerate(reader, start=2):
        if not any(c.strip() for c in cells):
            continue  # tolerate blank lines, e.g. a trailing one left by a spreadsheet
        if len(cells) != len(header):
            raise ReferenceDataError(
                f"{file_name} row {number}: has {len(cells)} cells but the header has "
                f"{len(header)}. Check for a stray or missing comma (quote values containing commas)."
            )
        rows.append(_Row(file_name, number, {h: c.strip() for h, c in zip(header, cells, strict=True)}))
    return rows


def _unique(rows: list[_Row], key: Callable[[_Row], tuple], what: str) -> None:
    seen: dict[tuple, int] = {}
    for row in rows:
        k = key(row)
        if k in seen:
            raise row.fail(None, f"{what} {' / '.join(k)} repeats row {seen[k]}.")
        seen[k] = row.row_number


def _check_dates(row: _Row, active_from: date, active_to: date | None) -> None:
    if active_to is not None and active_to < active_from:
        raise row.fail("active_to", f"active_to {active_to} is before active_from {active_from}.")


def _partners(directory: Path) -> tuple[Partner, ...]:
    rows = _read_rows(directory, "partners.csv")
    if not rows:
        raise ReferenceDataError("partners.csv has no partners. Add at least one row and run again.")
    _unique(rows, lambda r: (r.values["partner_code"],), "partner_code")
    out = []
    for r in rows:
        partner = Partner(
            code=r.text("partner_code"),
            name=r.text("partner_name"),
            partner_type=r.choice("partner_type", PARTNER_TYPES),
            statutory_partner=r.boolean("statutory_partner"),
            active_from=r.day("active_from"),
            active_to=r.optional_day("active_to"),
            data_contact_email=r.optional_text("data_contact_email"),
        )
        _check_dates(r, partner.active_from, partner.active_to)
        if partner.data_contact_email and "@" not in partner.data_contact_email:
            raise r.fail("data_contact_email", f"'{partner.data_contact_email}' is not an email address.")
        out.append(partner)
    return tuple(out)


def _schedule(directory: Path, partner_codes: set[str]) -> tuple[ScheduleEntry, ...]:
    rows = _read_rows(directory, "return_schedule.csv")
    known_types = tuple(load_contracts())
    out = []
    for r in rows:
        entry = ScheduleEntry(
            return_type=r.choice("return_type", known_types),
            partner_code=r.text("partner_code"),
            due_days=r.integer("due_days", minimum=0),
            active_from=r.day("active_from"),
            active_to=r.optional_day("active_to"),
        )
        if entry.partner_code not in partner_codes:
            raise r.fail("partner_code", f"'{entry.partner_code}' is not a partner_code in partners.csv.")
        _check_dates(r, entry.active_from, entry.active_to)
        for earlier in out:
            if (
                earlier.return_type == entry.return_type
                and earlier.partner_code == entry.partner_code
                and _overlaps(earlier.active_from, earlier.active_to, entry.active_from, entry.active_to or date.max)
            ):
                raise r.fail(
                    None,
                    f"{entry.return_type} for {entry.partner_code} overlaps an earlier row's active "
                    "dates, so the due date would be ambiguous.",
                )
        out.append(entry)
    return tuple(out)


def _courses(directory: Path) -> tuple[Course, ...]:
    rows = _read_rows(directory, "courses.csv")
    _unique(rows, lambda r: (r.values["course_code"],), "course_code")
    return tuple(
        Course(r.text("course_code"), r.text("course_name"), r.text("theme")) for r in rows
    )


def _population(directory: Path) -> tuple[PopulationYear, ...]:
    rows = _read_rows(directory, "population.csv")
    _unique(rows, lambda r: (r.values["financial_year"],), "financial_year")
    return tuple(
        PopulationYear(r.financial_year("financial_year"), r.integer("population_0_17", minimum=1))
        for r in rows
    )


def _targets(directory: Path) -> tuple[KpiTarget, ...]:
    rows = _read_rows(directory, "kpi_targets.csv")
    _unique(rows, lambda r: (r.values["kpi_code"], r.values["financial_year"]), "kpi_code and financial_year")
    return tuple(
        KpiTarget(
            kpi_code=r.text("kpi_code"),
            financial_year=r.financial_year("financial_year"),
            target=r.number("target"),
            amber_tolerance=r.number("amber_tolerance", minimum=0),
        )
        for r in rows
    )


def _recipients(directory: Path) -> tuple[Recipient, ...]:
    rows = _read_rows(directory, "distribution_list.csv")
    _unique(rows, lambda r: (r.values["email"].lower(),), "email")
    out = []
    for r in rows:
        email = r.text("email")
        if "@" not in email:
            raise r.fail("email", f"'{email}' is not an email address.")
        out.append(Recipient(email, r.text("name"), r.optional_text("role") or "", r.boolean("active")))
    return tuple(out)


def read_reference(directory: Path) -> Reference:
    """Read and check every reference file in ``directory``.

    Raises ReferenceDataError, naming the file and row, when a file is missing or malformed.
    """
    directory = Path(directory)
    partners = _partners(directory)
    return Reference(
        directory=directory,
        partners=partners,
        schedule=_schedule(directory, {p.code for p in partners}),
        courses=_courses(directory),
        population=_population(directory),
        kpi_targets=_targets(directory),
        distribution_list=_recipients(directory),
    )


def load_reference(settings: Settings) -> Reference:
    """The reference data in ``settings.reference_dir`` (``seeds/`` or ``$PKPI_REFERENCE_DIR``)."""
    return read_reference(settings.reference_dir)


# --- the schedule: which returns are expected, and when they are due ----------------------


def _expected(reference: Reference, period_kind: str, label: str, start: date, end: date, due_base: date) -> list[ExpectedReturn]:
    contracts = load_contracts()
    out = []
    for entry in reference.schedule:
        if contracts[entry.return_type].period_kind != period_kind:
            continue
        if not entry.active_during(start, end) or not reference.partner_active(entry.partner_code, start, end):
            continue
        out.append(
            ExpectedReturn(entry.return_type, entry.partner_code, label, due_base + timedelta(days=entry.due_days))
        )
    return sorted(out, key=lambda e: (e.return_type, e.partner_code))


def expected_returns(reference: Reference, period_label: str) -> list[ExpectedReturn]:
    """The monthly returns expected for a month (``YYYY-MM``), due ``due_days`` after its end.

    Only schedule rows and partners active for some part of the month count. Annual returns
    (finance) are listed by :func:`expected_returns_for_financial_year`.
    """
    month = parse_month(period_label)
    return _expected(reference, "month", month.label, month.start, month.end, month.end)


def expected_returns_for_financial_year(reference: Reference, fy_label: str) -> list[ExpectedReturn]:
    """The annual returns expected for a financial year (``YYYY-YY``), due ``due_days`` after
    1 April. Only schedule rows and partners active for some part of the year count.
    """
    year = parse_financial_year(fy_label)
    return _expected(reference, "financial_year", year.label, year.start, year.end, year.start)


def due_date(reference: Reference, return_type: str | None, partner_code: str | None,
             period: str | None) -> date | None:
    """When the schedule says this partner's return for ``period`` is due, or None when it
    expects no such return (an unknown type, partner or period, or no schedule row)."""
    contract = load_contracts().get(return_type or "")
    if contract is None or not partner_code or not period:
        return None
    try:
        expected = (expected_returns(reference, period) if contract.period_kind == "month"
                    else expected_returns_for_financial_year(reference, period))
    except PeriodError:
        return None
    return next((e.due_date for e in expected
                 if (e.return_type, e.partner_code) == (return_type, partner_code)), None)


def on_time(received_at: datetime, due: date) -> bool:
    """A return counts as on time when it was received on or before its due date (UTC)."""
    return received_at.date() <= due
