"""A deterministic national data set: 153 partnerships' monthly returns, as partners drop them.

Not a test. :mod:`benchmarks.bench` (``make bench``) uses it; it can also be run by hand:

    .venv/bin/python benchmarks/national_data.py DATA_DIR [--month 2026-03] [--partnerships 153]

One deployment serves every partnership (the issue 13 hub). Each partnership is one partner in
``partners.csv`` (codes ``XAA``, ``XAB``, ...: letters only, so no code reads like a postcode or a
pseudonym) that sends three returns a month: contacts (its front door), training and child
deaths, so one month is ``3 × partnerships`` files (459 for 153). The rows come from
:mod:`pkpi.demo`'s writer, unchanged: its front door (about 2,300 contacts a month), one
partnership's training and its child death notifications, written with the demo's CSV writer
and modification times. Only the training volume is scaled (:data:`TRAINING_KEEP`), because the
demo's figure is a whole partnership's training spread over seven partners; with it, a month
is about 448,000 rows for 153 partnerships.

Everything is a pure function of ``seed``, the partnership codes and the month (string-seeded
random streams, as in the demo), so two runs write byte-identical files.

Years of history (``--history-from``): a month before the history's first year is that first
year's month of the same name with every date, every record id's ``YYMM`` and the upload time
moved back whole years (:func:`shift_records`), so ten years cost one year to generate. The
benchmark does not even write those files: :mod:`history` replicates the first year's loads in
the warehouse the same way, and checks them against a real ingest of files written here.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import re
import shutil
import sys
from datetime import date, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "include"))

from pkpi import demo  # noqa: E402
from pkpi.contracts import get_contract  # noqa: E402
from pkpi.periods import months_between, parse_month, shift_month  # noqa: E402
from pkpi.reference import expected_returns, load_reference  # noqa: E402
from pkpi.settings import Settings  # noqa: E402

PARTNERSHIPS = 153
MONTH = "2026-03"
SEED = 20240401
TRAINING_KEEP = 0.45
"""The share of the demo's training events kept for one partnership's training return."""

RETURN_TYPES = (("contacts", 10), ("training", 15), ("child_deaths", 15))  # and days until due
ACTIVE_FROM = "2015-04-01"  # early enough for ten years of history
_SHARED_SEEDS = ("courses.csv", "kpi_targets.csv", "population.csv", "distribution_list.csv")


def partnership_codes(count: int = PARTNERSHIPS) -> list[str]:
    """``count`` partner codes, XAA, XAB, ... (letters only)."""
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    if count > len(letters) ** 2:
        raise ValueError(f"At most {len(letters) ** 2} partnerships; {count} were asked for.")
    return [f"X{letters[i // 26]}{letters[i % 26]}" for i in range(count)]


def write_reference(directory: Path, count: int = PARTNERSHIPS) -> Path:
    """A reference folder for ``count`` partnerships: the shipped courses, targets, population
    and distribution list, and one partner per partnership sending the three monthly returns."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in _SHARED_SEEDS:
        shutil.copyfile(REPO / "seeds" / name, directory / name)
    codes = partnership_codes(count)
    with open(directory / "partners.csv", "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["partner_code", "partner_name", "partner_type", "statutory_partner", "active_from",
                         "active_to", "data_contact_email"])
        for number, code in enumerate(codes, 1):
            writer.writerow([code, f"Safeguarding Partnership {number}", "childrens_trust", "true", ACTIVE_FROM,
                             "", f"data@{code.lower()}.example"])
    with open(directory / "return_schedule.csv", "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["return_type", "partner_code", "due_days", "active_from", "active_to"])
        for code in codes:
            for return_type, due_days in RETURN_TYPES:
                writer.writerow([return_type, code, due_days, ACTIVE_FROM, ""])
    return directory


@dataclasses.dataclass(frozen=True)
class Written:
    """What :func:`write_months` wrote."""

    files: int
    rows: int
    bytes: int
    rows_by_type: dict[str, int]


def write_months(settings: Settings, first_month: str = MONTH, last_month: str | None = None,
                 seed: int = SEED, history_from: str | None = None) -> Written:
    """Write every partnership's returns for ``first_month`` .. ``last_month`` into
    ``settings.landing_dir`` (the reference folder is ``settings.reference_dir``, written by
    :func:`write_reference`).

    With ``history_from`` (the first month of the history's first year), a month before it is
    written as :func:`base_month` of it shifted back (:func:`shift_records`); the front doors
    then run from ``history_from``, as when that year itself is written."""
    reference = load_reference(settings)
    doors: dict[str, tuple[demo._FrontDoor, str]] = {}  # each door and the month it runs next
    files = rows = size = 0
    by_type: dict[str, int] = {}
    for month in months_between(first_month, last_month or first_month):
        source, years = base_month(month, history_from) if history_from else (month, 0)
        after_month_end = parse_month(source).end + timedelta(days=1)
        for expected in expected_returns(reference, source):
            code = expected.partner_code
            if expected.return_type == "contacts":
                records = _front_door(doors, seed, code, source, history_from)
            elif expected.return_type == "training":
                records = _training(seed, reference, code, source)
            elif expected.return_type == "child_deaths":
                records = demo._child_deaths_month(seed, code, source)
            else:
                continue
            received = demo._received_at(seed, expected, after_month_end)
            if years:
                records = shift_records(expected.return_type, records, years)
                expected = dataclasses.replace(expected, period=month)
                received = shift_date(received, years)
            content = demo._csv_bytes(expected.return_type, code, records)
            demo._write(demo._landing_path(settings, expected), content, received)
            files += 1
            rows += len(records)
            size += len(content)
            by_type[expected.return_type] = by_type.get(expected.return_type, 0) + len(records)
    return Written(files, rows, size, by_type)


def _front_door(doors: dict, seed: int, code: str, month: str, start: str | None) -> list[dict]:
    """The contacts of ``code``'s front door for ``month``: the door remembers its children, so
    it runs month after month from the first month written (or from ``start``)."""
    door, upcoming = doors.get(code, (None, None))
    if door is None or upcoming > month:
        door, upcoming = demo._FrontDoor(seed, code), start or month
    while upcoming < month:  # months skipped, as when the whole year is written
        door.month(upcoming)
        upcoming = shift_month(upcoming, 1)
    records = door.month(month)
    doors[code] = (door, shift_month(month, 1))
    return records


def base_month(month: str, history_from: str) -> tuple[str, int]:
    """The month of the history's first year (``history_from`` .. 11 months on) that ``month``
    copies, and how many whole years back: (``month``, 0) from ``history_from`` on."""
    if month >= history_from:
        return month, 0
    first = parse_month(history_from).start
    day = parse_month(month).start
    back = (first.year * 12 + first.month - day.year * 12 - day.month + 11) // 12
    return shift_month(month, 12 * back), back


_RECORD_ID = re.compile(r"^([A-Z]{3}-[A-Z])([0-9]{2})([0-9]{2}-[0-9]+)$")
"""A record id of the demo's writer (``XAA-C2504-00001``): partner, letter, YYMM, number."""


def shift_date(value, years: int):
    """``value`` (a date or datetime) ``years`` earlier; 29 February becomes the 28th, as DuckDB's
    ``- INTERVAL n YEAR`` does."""
    try:
        return value.replace(year=value.year - years)
    except ValueError:
        return value.replace(year=value.year - years, day=28)


def shift_id(value: str, years: int) -> str:
    """A record id with its ``YY`` moved back ``years``; any other id unchanged (a child's)."""
    found = _RECORD_ID.match(value)
    if not found:
        return value
    return f"{found[1]}{(int(found[2]) - years) % 100:02d}{found[3]}"


def shift_records(return_type: str, records: list[dict], years: int) -> list[dict]:
    """The records ``years`` earlier: every date column and every id column moved back
    (:func:`shift_date`, :func:`shift_id`), the other values as they are."""
    columns = get_contract(return_type).columns
    dates = [c.name for c in columns if c.type == "date"]
    ids = [c.name for c in columns if c.is_id]
    out = []
    for record in records:
        record = dict(record)
        for name in dates:
            if isinstance(record.get(name), (date, datetime)):
                record[name] = shift_date(record[name], years)
        for name in ids:
            if isinstance(record.get(name), str):
                record[name] = shift_id(record[name], years)
        out.append(record)
    return out


def _training(seed: int, reference, code: str, month: str) -> list[dict]:
    """One partnership's training return: the demo's month for a partnership whose only
    training partner is ``code``, thinned to :data:`TRAINING_KEEP` of its events."""
    alone = dataclasses.replace(reference, schedule=tuple(s for s in reference.schedule if s.partner_code == code))
    events = demo._training_month(seed, alone, month, [reference.partner(code)])[code]
    keep = demo._stream(seed, "national-training", code, month)
    return [row for row in events if keep.random() < TRAINING_KEEP]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path, help="the PKPI_DATA_DIR to write (its landing/ and reference/)")
    parser.add_argument("--month", default=MONTH, help="first month, YYYY-MM")
    parser.add_argument("--last-month", default=None, help="last month (default: the first)")
    parser.add_argument("--partnerships", type=int, default=PARTNERSHIPS)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--history-from", default=None,
                        help="first month of the history's first year: earlier months are its months shifted back")
    args = parser.parse_args()
    reference_dir = write_reference(args.data_dir / "reference", args.partnerships)
    settings = Settings.from_env({"PKPI_DATA_DIR": str(args.data_dir), "PKPI_REFERENCE_DIR": str(reference_dir)})
    written = write_months(settings, args.month, args.last_month, args.seed, args.history_from)
    print(f"{written.files} files, {written.rows:,} rows ({written.rows_by_type}), {written.bytes / 1e6:.1f} MB "
          f"in {settings.landing_dir}; reference data in {reference_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
