"""A partnership built on purpose with small numbers, for the adversarial disclosure tests.

Two partners send monthly child death returns through the real gate, the real dbt project
builds the mart, the real publish writes the published copy, and a real scorecard is produced
for every month. The smallest data that exercises every way a hidden count could be worked out:

- months January to May 2025: January to March complete the financial year 2024-25 (so there is
  a whole year beside its months), April and May are a year in progress (a year to date);
- BIG (a health board) has most deaths; SML (a small trust) has 0 to 3 a month, so SML's rows
  are small while ALL is shown, and SML sends a nil return in March;
- breakdowns with one small cell (one death of type not known in January);
- percentages with a small numerator (2 of 7 unexpected deaths with a JAR in March; 1 death
  under one year in April) and with a small complement (4 of 5 in February: one unexpected death
  without a JAR), and the under-1 numerator is the sum of two age bands.

:func:`built_small_numbers` ingests, builds, publishes and produces the scorecards once per
test session (a dbt build takes about 20 seconds, a scorecard about 2).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from itertools import cycle
from pathlib import Path

from pkpi.build import BuildResult, build_mart
from pkpi.ingest import ingest_landing
from pkpi.scorecard import ScorecardOutput, produce_scorecard
from pkpi.settings import Settings

from .catalogue import CHILD_DEATHS, ReturnFile, drop_returns, write_reference

TODAY = date(2025, 6, 20)
THRESHOLD = 5
MONTHS = ("2025-01", "2025-02", "2025-03", "2025-04", "2025-05")
PARTNERS = ("BIG", "SML")

REFERENCE = {
    "partners.csv": """\
partner_code,partner_name,partner_type,statutory_partner,active_from,active_to,data_contact_email
BIG,Big Health Board,health,true,2020-04-01,,
SML,Small Children's Trust,childrens_trust,false,2020-04-01,,
""",
    "return_schedule.csv": """\
return_type,partner_code,due_days,active_from,active_to
child_deaths,BIG,20,2025-01-01,
child_deaths,SML,20,2025-01-01,
""",
    "courses.csv": "course_code,course_name,theme\nEL-A,E-learning A,Foundations\n",
    "population.csv": "financial_year,population_0_17\n2024-25,20000\n2025-26,20000\n",
    "kpi_targets.csv": "kpi_code,financial_year,target,amber_tolerance\nCDN_UNEXPECTED_JAR_PCT,2024-25,90,10\n",
    "distribution_list.csv": "email,name,role,active\nchair@partnership.example,Pat Chair,Independent Scrutineer,true\n",
}

# (partner, month) -> (expected, unexpected with a JAR within 72h, unexpected without, not known,
# of which under one year old). A partner-month not listed sends a nil return.
DEATHS = {
    ("BIG", "2025-01"): (4, 5, 0, 1, 3),
    ("SML", "2025-01"): (1, 0, 0, 0, 0),
    ("BIG", "2025-02"): (5, 4, 1, 0, 2),
    ("SML", "2025-02"): (0, 2, 0, 0, 1),
    ("BIG", "2025-03"): (6, 2, 5, 0, 6),
    ("BIG", "2025-04"): (5, 3, 3, 2, 1),
    ("SML", "2025-04"): (2, 1, 0, 0, 0),
    ("BIG", "2025-05"): (7, 6, 0, 0, 7),
    ("SML", "2025-05"): (0, 0, 1, 0, 0),
}

OLDER_BANDS = ("1_to_4", "5_to_9", "10_to_14", "15_to_17")
SEXES = ("female", "male", "female", "male", "not_known")
ETHNICITIES = ("white", "white", "asian", "white", "black", "mixed", "white", "other")


def _rows(partner: str, month: str) -> list[str]:
    expected, jar_yes, jar_no, not_known, under_1 = DEATHS.get((partner, month), (0, 0, 0, 0, 0))
    types = ([("expected", "")] * expected + [("unexpected", "yes")] * jar_yes
             + [("unexpected", "no")] * jar_no + [("not_known", "")] * not_known)
    older, sexes, ethnicities = cycle(OLDER_BANDS), cycle(SEXES), cycle(ETHNICITIES)
    rows = []
    for i, (death_type, jar) in enumerate(types):
        band = ("under_28_days", "28_to_364_days")[i % 2] if i < under_1 else next(older)
        day = 1 + (i * 3) % 27
        reference = f"{partner.lower()}-{month[-2:]}-{i}"  # a code, like the partners' own
        rows.append(f"{reference},{month}-{day:02d},{band},{next(sexes)},{next(ethnicities)},{death_type},{jar}")
    return rows


def returns() -> list[ReturnFile]:
    """Every partner's child death return for every month (nil returns included), on time."""
    out = []
    for month in MONTHS:
        year, mon = map(int, month.split("-"))
        received = f"{year + mon // 12}-{mon % 12 + 1:02d}-05 09:00"
        for partner in PARTNERS:
            body = "".join(r + "\n" for r in _rows(partner, month))
            out.append(ReturnFile(f"child_deaths/{partner}/{month}/cdop_{month}.csv", received, CHILD_DEATHS + body))
    return out


@dataclass(frozen=True)
class SmallNumbers:
    """The partnership above, ingested, built, published, with a scorecard for every month."""

    settings: Settings
    build: BuildResult
    scorecards: dict[str, ScorecardOutput]


_SESSION: dict[str, SmallNumbers] = {}


def built_small_numbers(tmp_path_factory) -> SmallNumbers:
    """Ingest, build, publish and produce every month's scorecard, once per test session."""
    if "built" not in _SESSION:
        root: Path = tmp_path_factory.mktemp("small_numbers")
        settings = Settings.from_env({
            "PKPI_DATA_DIR": str(root / "data"),
            "PKPI_REFERENCE_DIR": str(write_reference(root / "reference", REFERENCE)),
            "PKPI_DISCLOSURE_THRESHOLD": str(THRESHOLD),
        })
        drop_returns(settings.landing_dir, returns())
        report = ingest_landing(settings, today=TODAY)
        rejected = [o for o in report.outcomes if o.status != "accepted"]
        assert not rejected, [(o.file_name, o.message) for o in rejected]
        build = build_mart(settings)
        scorecards = {m: produce_scorecard(settings, m) for m in MONTHS}
        _SESSION["built"] = SmallNumbers(settings, build, scorecards)
    return _SESSION["built"]
