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
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import shutil
import sys
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "include"))

from pkpi import demo  # noqa: E402
from pkpi.periods import months_between, parse_month  # noqa: E402
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
                 seed: int = SEED) -> Written:
    """Write every partnership's returns for ``first_month`` .. ``last_month`` into
    ``settings.landing_dir`` (the reference folder is ``settings.reference_dir``, written by
    :func:`write_reference`)."""
    reference = load_reference(settings)
    doors: dict[str, demo._FrontDoor] = {}
    files = rows = size = 0
    by_type: dict[str, int] = {}
    for month in months_between(first_month, last_month or first_month):
        after_month_end = parse_month(month).end + timedelta(days=1)
        for expected in expected_returns(reference, month):
            code = expected.partner_code
            if expected.return_type == "contacts":
                records = doors.setdefault(code, demo._FrontDoor(seed, code)).month(month)
            elif expected.return_type == "training":
                records = _training(seed, reference, code, month)
            elif expected.return_type == "child_deaths":
                records = demo._child_deaths_month(seed, code, month)
            else:
                continue
            content = demo._csv_bytes(expected.return_type, code, records)
            demo._write(demo._landing_path(settings, expected), content,
                        demo._received_at(seed, expected, after_month_end))
            files += 1
            rows += len(records)
            size += len(content)
            by_type[expected.return_type] = by_type.get(expected.return_type, 0) + len(records)
    return Written(files, rows, size, by_type)


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
    args = parser.parse_args()
    reference_dir = write_reference(args.data_dir / "reference", args.partnerships)
    settings = Settings.from_env({"PKPI_DATA_DIR": str(args.data_dir), "PKPI_REFERENCE_DIR": str(reference_dir)})
    written = write_months(settings, args.month, args.last_month, args.seed)
    print(f"{written.files} files, {written.rows:,} rows ({written.rows_by_type}), {written.bytes / 1e6:.1f} MB "
          f"in {settings.landing_dir}; reference data in {reference_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
