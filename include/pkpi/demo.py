"""Synthetic partner returns for demonstrations and tests.

:func:`write_sample_returns` writes a realistic, entirely fictional set of partner returns into
``landing/`` exactly as partners would drop them: one file per expected return (from the
reference schedule), following the contracts in ``pkpi/contracts``, each file's modification
time set to when the partner "uploaded" it (a few days before the due date, a few late).

The data is deterministic: the same seed and window give byte-identical files, so rewriting is
idempotent and the gate recognises re-dropped files by checksum. Child references are random
pseudonyms (``C123456``); no record describes a real person.

In the window's last month (the demo reporting month, 2026-03 by default) two problems are
planted so the demo exercises the unhappy paths: one partner's training return breaks its
contract (an unknown delivery mode and a date outside the month), and one expected return is
not sent at all. The scorecard for that month is therefore provisional.
"""

from __future__ import annotations

import csv
import io
import random
from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Callable, Sequence

from .contracts import get_contract
from .files import write_atomic
from .periods import financial_year_label, months_between, parse_financial_year, parse_month
from .progress import progress
from .reference import (
    ExpectedReturn, Partner, Reference, expected_returns, expected_returns_for_financial_year,
    load_reference,
)
from .settings import Settings

DEFAULT_FIRST_MONTH = "2024-04"
DEFAULT_LAST_MONTH = "2026-03"
DEFAULT_SEED = 20240401

# Which return is planted broken, and which is left missing, in the last month of the window.
PLANTED_REJECTION = ("training", "NPOL")
PLANTED_MISSING = ("training", "PROB")

# How some partners' systems write their files: still within the contract, so the gate's
# tolerance of UK dates, a byte-order mark and Windows line endings is exercised.
UK_DATE_PARTNERS = frozenset({"PROB"})        # a case-management export that writes DD/MM/YYYY
EXCEL_PARTNERS = frozenset({"EDU"})           # saved from Excel as "CSV UTF-8": BOM and CRLF
WINDOWS_PARTNERS = frozenset({"NPOL", "ICB"})  # CRLF line endings

# Front-door mix (percentages), based on the shape of published children-in-need statistics.
CONTACT_SOURCES = {
    "police": 30, "education": 18, "health": 15, "local_authority": 9, "family_friend": 6,
    "self": 4, "anonymous": 4, "housing": 3, "legal_agency": 3, "voluntary_sector": 3,
    "probation": 2, "other": 3,
}
CONTACT_OUTCOMES = {"nfa": 35, "advice": 20, "early_help": 20, "referral": 25}
SEXES = {"female": 48.5, "male": 49, "not_known": 2.5}
ETHNICITIES = {"white": 76, "mixed": 7, "asian": 6, "black": 6, "other": 2, "not_known": 3}
# Contacts per month fall in August (schools closed) and December, and peak in the autumn.
SEASON = {1: 1.02, 2: 1.0, 3: 1.05, 4: 0.97, 5: 1.03, 6: 1.05, 7: 1.02, 8: 0.88, 9: 1.0,
          10: 1.05, 11: 1.07, 12: 0.9}
CONTACTS_PER_MONTH = 2300
# Chance that a referral is of a child referred in the last year: tuned so that the mart's
# CON_REREFERRAL_12M_PCT comes out near 20% (17% to 24% month by month).
REREFERRAL_SHARE = 0.21

# Training: whole-partnership volumes per month when every training partner is active.
ELEARN_COMMENCED_PER_MONTH = 650
ELEARN_COMPLETION = 0.75
F2F_SESSIONS_PER_MONTH = 8
TRAINING_SEASON = {1: 1.1, 2: 1.05, 3: 1.05, 4: 0.95, 5: 1.0, 6: 1.0, 7: 0.9, 8: 0.75, 9: 1.1,
                   10: 1.1, 11: 1.05, 12: 0.8}
# Each partner's share of the training, and the sectors its learners work in, by partner type.
TRAINING_WEIGHT = {
    "childrens_trust": 22, "local_authority": 16, "health": 16, "police": 14, "education": 10,
    "probation": 6, "voluntary": 5, "government": 2, "other": 2,
}
LEARNER_SECTORS = {
    "local_authority": {"local_authority": 45, "early_years": 20, "education": 15, "voluntary_sector": 12, "other": 8},
    "childrens_trust": {"childrens_social_care": 85, "local_authority": 5, "early_years": 4, "other": 6},
    "police": {"police": 95, "other": 5},
    "health": {"health": 92, "other": 8},
    "probation": {"probation": 95, "other": 5},
    "education": {"education": 75, "early_years": 25},
    "voluntary": {"voluntary_sector": 90, "other": 10},
}
ELEARN_COURSES = {"EL-AWARE": 28, "EL-NEGLECT": 12, "EL-EXPLOIT": 12, "EL-ONLINE": 12, "EL-FGM": 7,
                  "EL-PREVENT": 12, "EL-CURIOUS": 9, "EL-SLEEP": 8}
F2F_COURSES = {"F2F-WT": 20, "F2F-THRESH": 20, "F2F-DA": 15, "F2F-GCP2": 12, "F2F-TIP": 13,
               "F2F-RPC": 12, "F2F-CSPR": 8}
IMPACT = {"yes": 78, "no": 9, "": 13}  # blank: the learner skipped the evaluation

# Child death notifications: about 30 a year; nil months happen.
DEATHS_PER_MONTH = {0: 10, 1: 14, 2: 24, 3: 26, 4: 16, 5: 10}
AGE_BANDS = {"under_28_days": 40, "28_to_364_days": 18, "1_to_4": 11, "5_to_9": 7, "10_to_14": 10, "15_to_17": 14}
DEATH_TYPES = {"expected": 58, "unexpected": 37, "not_known": 5}
JAR_HELD = {"yes": 87, "no": 13}

# Finance: a core contribution by partner type (pounds, 2024-25), councils add a DSG contribution.
CORE_CONTRIBUTION = {"local_authority": (195_000, 250_000), "police": (85_000, 105_000),
                     "health": (160_000, 200_000)}
OTHER_CONTRIBUTION = (15_000, 30_000)
DSG_CONTRIBUTION = (38_000, 55_000)
GRANT_INCOME = (95_000, 125_000)
FINANCE_BASE_YEAR = 2024


@dataclass(frozen=True)
class WrittenReturn:
    """One return file the demo wrote into landing."""

    return_type: str
    partner_code: str
    period: str
    path: Path
    rows: int
    due_date: date
    received_at: datetime  # timezone-aware UTC; also the file's mtime

    @property
    def is_nil(self) -> bool:
        return self.rows == 0

    @property
    def late(self) -> bool:
        return self.received_at.date() > self.due_date


@dataclass(frozen=True)
class PlantedRejection:
    """The return planted to break its contract, and what is wrong with it."""

    return_type: str
    partner_code: str
    period: str
    path: Path
    problems: tuple[str, ...]


@dataclass(frozen=True)
class DemoSummary:
    """What :func:`write_sample_returns` wrote, and the problems it planted."""

    landing_dir: Path
    first_month: str
    last_month: str
    seed: int
    returns: tuple[WrittenReturn, ...]
    planted_rejection: PlantedRejection | None
    missing_return: ExpectedReturn | None

    @property
    def files_written(self) -> int:
        return len(self.returns)

    @property
    def rows_by_return_type(self) -> dict[str, int]:
        """Data rows written per return type (including the planted broken file's rows)."""
        counts: Counter[str] = Counter()
        for r in self.returns:
            counts[r.return_type] += r.rows
        return dict(sorted(counts.items()))

    @property
    def nil_returns(self) -> tuple[WrittenReturn, ...]:
        return tuple(r for r in self.returns if r.is_nil)

    @property
    def late_returns(self) -> tuple[WrittenReturn, ...]:
        return tuple(r for r in self.returns if r.late)

    def __str__(self) -> str:
        return self.describe()

    def describe(self) -> str:
        """A short plain-text account of the sample returns, for the command line."""
        lines = [
            f"Wrote {self.files_written} sample returns for {self.first_month} to {self.last_month} "
            f"into {self.landing_dir}.",
        ]
        for return_type, rows in self.rows_by_return_type.items():
            files = sum(1 for r in self.returns if r.return_type == return_type)
            lines.append(f"  {return_type}: {files} files, {rows:,} rows")
        lines.append(f"  nil returns: {len(self.nil_returns)}; received late: {len(self.late_returns)}")
        if self.planted_rejection:
            p = self.planted_rejection
            lines.append(
                f"Planted to be rejected: {p.return_type} from {p.partner_code} for {p.period} "
                f"({'; '.join(p.problems)})."
            )
        if self.missing_return:
            m = self.missing_return
            lines.append(f"Left missing: {m.return_type} from {m.partner_code} for {m.period} (due {m.due_date}).")
        return "\n".join(lines)


# --- small helpers --------------------------------------------------------------------------


def _pick(rng: random.Random, weights: dict[str, float]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def _month_days(month: str, rng: random.Random, count: int, weekend_weight: float = 0.35) -> list[date]:
    """``count`` dates inside the month, weekdays busier than weekends, sorted."""
    p = parse_month(month)
    days = [p.start + timedelta(days=i) for i in range((p.end - p.start).days + 1)]
    weights = [weekend_weight if d.weekday() >= 5 else 1.0 for d in days]
    return sorted(rng.choices(days, weights=weights, k=count))


def _stream(seed: int, *parts: str) -> random.Random:
    """An independent, reproducible random stream for one part of the data.

    String seeds are hashed with SHA-512 by ``random``, so streams do not depend on
    PYTHONHASHSEED and are stable across runs and machines.
    """
    return random.Random(":".join((str(seed),) + parts))


def _age_on(birth: date, day: date) -> int:
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


# --- contacts -------------------------------------------------------------------------------


@dataclass
class _Child:
    birth: date
    sex: str
    ethnicity: str


class _FrontDoor:
    """Simulates one front door's contacts month by month, remembering the children it has seen
    so that children come back and some referrals are re-referrals within twelve months."""

    def __init__(self, seed: int, partner_code: str):
        self.partner_code = partner_code
        self.rng = _stream(seed, "contacts", partner_code)
        self.children: dict[str, _Child] = {}
        self.seen: list[str] = []
        self.referrals: list[tuple[date, str]] = []  # (referral_date, child_id) in the order made
        self.last_referral: dict[str, date] = {}

    def _new_child(self, day: date) -> str:
        rng = self.rng
        while True:
            child_id = f"C{rng.randrange(100000, 1000000):06d}"
            if child_id not in self.children:
                break
        age = rng.choices(range(18), weights=[9, 4, 4, 5, 5, 5, 5, 5, 6, 6, 6, 7, 7, 7, 7, 6, 5, 4])[0]
        birth = day - timedelta(days=round(age * 365.25) + rng.randrange(365))
        self.children[child_id] = _Child(birth, _pick(rng, SEXES), _pick(rng, ETHNICITIES))
        self.seen.append(child_id)
        return child_id

    def _returning_child(self, day: date, recent_referral: bool) -> str | None:
        """A child seen before (with a referral in the last year when asked), still under 18."""
        rng = self.rng
        if recent_referral:
            # Referrals are appended in date order (give or take a day), so the last year's
            # referrals sit at the end of the list.
            lo = bisect_left(self.referrals, (day - timedelta(days=355), ""))
            pool = self.referrals[lo:]
            candidates = [pool[rng.randrange(len(pool))][1] for _ in range(4)] if pool else []
        else:
            candidates = [self.seen[rng.randrange(len(self.seen))] for _ in range(4)] if self.seen else []
        for child_id in candidates:
            last = self.last_referral.get(child_id)
            if _age_on(self.children[child_id].birth, day) > 17:
                continue
            if recent_referral and not (last and last < day):
                continue
            if not recent_referral and last and (day - last).days <= 365:
                continue  # keep re-referral rates under control: only "recent" picks add to them
            return child_id
        return None

    def month(self, month: str) -> list[dict]:
        rng = self.rng
        p = parse_month(month)
        growth = 1 + 0.02 * (p.start.year - 2024 + (p.start.month - 4) / 12)
        count = round(CONTACTS_PER_MONTH * SEASON[p.start.month] * growth * rng.uniform(0.97, 1.03))
        count = max(2000, min(2600, count))
        sources = dict(CONTACT_SOURCES)
        if p.start.month == 8:
            sources["education"] = 6  # schools are closed for most of August
        rows = []
        for day in _month_days(month, rng, count):
            outcome = _pick(rng, CONTACT_OUTCOMES)
            child_id = None
            if outcome == "referral" and rng.random() < REREFERRAL_SHARE:
                child_id = self._returning_child(day, recent_referral=True)
            elif rng.random() < 0.3:
                child_id = self._returning_child(day, recent_referral=False)
            child_id = child_id or self._new_child(day)
            child = self.children[child_id]
            referral_date = None
            if outcome == "referral":
                # Decided the same day or within a few; the extract is taken at month end.
                lag = rng.choices((0, 1, 2, 3), weights=(60, 28, 9, 3))[0]
                referral_date = min(day + timedelta(days=lag), p.end)
                self.referrals.append((referral_date, child_id))
                self.last_referral[child_id] = referral_date
            rows.append({
                "child_id": child_id,
                "contact_date": day,
                "contact_source": _pick(rng, sources),
                "child_age_years": _age_on(child.birth, day),
                "sex": child.sex,
                "ethnicity": child.ethnicity,
                "outcome": outcome,
                "referral_date": referral_date,
            })
        self.referrals.sort()
        yymm = f"{p.start.year % 100:02d}{p.start.month:02d}"
        return [{"contact_id": f"{self.partner_code}-C{yymm}-{i:05d}", **row} for i, row in enumerate(rows, 1)]


# --- training -------------------------------------------------------------------------------


def _courses(reference: Reference, prefix: str, weights: dict[str, float]) -> dict[str, float]:
    """Catalogue courses of one kind, weighted by popularity (unknown courses weigh 5)."""
    codes = sorted(c for c in reference.course_codes if c.startswith(prefix)) or sorted(reference.course_codes)
    return {c: weights.get(c, 5) for c in codes}


def _training_month(seed: int, reference: Reference, month: str, partners: Sequence[Partner]) -> dict[str, list[dict]]:
    """One month's learning events for every training partner, keyed by partner code.

    Face-to-face and virtual sessions are shared: each session's bookings come from several
    partners, so attendances cluster on session dates across the partners' files.
    """
    rng = _stream(seed, "training", month)
    p = parse_month(month)
    season = TRAINING_SEASON[p.start.month]
    # Volumes are set for the whole partnership; a partner not yet sending training leaves a gap.
    everyone = {e.partner_code for e in reference.schedule_for("training")}
    all_weight = sum(TRAINING_WEIGHT.get(reference.partner(c).partner_type, 2) for c in everyone) or 1
    weights = {pt.code: TRAINING_WEIGHT.get(pt.partner_type, 2) for pt in partners}
    by_code = {pt.code: pt for pt in partners}
    elearning = _courses(reference, "EL-", ELEARN_COURSES)
    classroom = _courses(reference, "F2F-", F2F_COURSES)
    events: dict[str, list[dict]] = {pt.code: [] for pt in partners}

    def event(partner: Partner, course: str, mode: str, kind: str, day: date) -> None:
        sectors = LEARNER_SECTORS.get(partner.partner_type, {"other": 1})
        impact = _pick(rng, IMPACT) if kind in ("completed", "attended") else ""
        events[partner.code].append({
            "course_code": course, "delivery_mode": mode, "event_type": kind, "event_date": day,
            "learner_sector": _pick(rng, sectors), "impact_positive": impact or None,
        })

    for partner in partners:
        share = weights[partner.code] / all_weight
        commenced = round(ELEARN_COMMENCED_PER_MONTH * season * share * rng.uniform(0.9, 1.1))
        completed = round(commenced * rng.uniform(ELEARN_COMPLETION - 0.05, ELEARN_COMPLETION + 0.05))
        for kind, n in (("commenced", commenced), ("completed", completed)):
            for day in _month_days(month, rng, n, weekend_weight=0.25):
                event(partner, _pick(rng, elearning), "elearning", kind, day)

    # Sessions run Tuesday to Thursday; most in a training room, now and then one online.
    session_days = [d for d in (p.start + timedelta(days=i) for i in range(p.end.day)) if d.weekday() in (1, 2, 3)]
    sessions = [("face_to_face", max(1, round(F2F_SESSIONS_PER_MONTH * season) + rng.choice((-1, 0, 0, 1))))]
    if rng.random() < 0.6:
        sessions.append(("virtual", 1))
    present_weight = sum(weights.values()) / all_weight
    for mode, n in sessions:
        for _ in range(n):
            course, day = _pick(rng, classroom), rng.choice(session_days)
            bookings = rng.randint(15, 21) if mode == "face_to_face" else rng.randint(8, 14)
            for _ in range(max(1, round(bookings * present_weight))):
                partner = by_code[_pick(rng, weights)]
                kind = "attended" if rng.random() < 0.9 else "did_not_attend"
                event(partner, course, mode, kind, day)

    yymm = f"{p.start.year % 100:02d}{p.start.month:02d}"
    out = {}
    for code, rows in events.items():
        rows.sort(key=lambda r: (r["event_date"], r["delivery_mode"], r["course_code"], r["event_type"]))
        out[code] = [{"record_id": f"{code}-T{yymm}-{i:05d}", **r} for i, r in enumerate(rows, 1)]
    return out


# --- child deaths and finance -------------------------------------------------------------


def _child_deaths_month(seed: int, partner_code: str, month: str) -> list[dict]:
    rng = _stream(seed, "child_deaths", partner_code, month)
    count = rng.choices(list(DEATHS_PER_MONTH), weights=list(DEATHS_PER_MONTH.values()))[0]
    rows = []
    p = parse_month(month)
    for i, day in enumerate(_month_days(month, rng, count, weekend_weight=0.6), 1):
        death_type = _pick(rng, DEATH_TYPES)
        rows.append({
            "notification_id": f"{partner_code}-N{p.start.year % 100:02d}{p.start.month:02d}-{i:03d}",
            "notification_date": day,
            "age_band": _pick(rng, AGE_BANDS),
            "sex": _pick(rng, {"female": 45, "male": 53, "not_known": 2}),
            "ethnicity": _pick(rng, ETHNICITIES),
            "death_type": death_type,
            "jar_within_72h": _pick(rng, JAR_HELD) if death_type == "unexpected" else None,
        })
    return rows


def _finance_year(seed: int, reference: Reference, partner: Partner, fy: str) -> list[dict]:
    """A partner's contributions for a financial year: stable base amounts that drift a few
    per cent a year, so the same year is the same whatever window is generated."""
    start_year = parse_financial_year(fy).start.year
    base = _stream(seed, "finance", partner.code)
    core = base.uniform(*CORE_CONTRIBUTION.get(partner.partner_type, OTHER_CONTRIBUTION))
    dsg = base.uniform(*DSG_CONTRIBUTION)
    grant = base.uniform(*GRANT_INCOME)
    factor = 1.0
    for year in range(FINANCE_BASE_YEAR + 1, start_year + 1):
        factor *= 1 + _stream(seed, "finance", partner.code, str(year)).uniform(0.01, 0.05)
    for year in range(start_year + 1, FINANCE_BASE_YEAR + 1):
        factor /= 1 + _stream(seed, "finance", partner.code, str(year)).uniform(0.01, 0.05)

    def pounds(amount: float) -> float:
        return float(round(amount * factor / 50) * 50)  # budgets are set in round sums

    rows = [{"contribution_type": "core", "amount_gbp": pounds(core), "agreed_amount_gbp": None}]
    councils = [p.code for p in reference.partners if p.partner_type == "local_authority"]
    if partner.partner_type == "local_authority":
        rows.append({"contribution_type": "dsg", "amount_gbp": pounds(dsg), "agreed_amount_gbp": None})
    if councils and partner.code == councils[0]:
        # The lead council receives the government grant on the partnership's behalf.
        rows.append({"contribution_type": "grant", "amount_gbp": pounds(grant), "agreed_amount_gbp": None})
    if partner.partner_type == "police" and start_year > FINANCE_BASE_YEAR:
        # A part-year payment: less paid than agreed, so agreed_amount_gbp is filled in.
        rows[0]["agreed_amount_gbp"] = rows[0]["amount_gbp"]
        rows[0]["amount_gbp"] = round(rows[0]["amount_gbp"] * 0.94, 2)
    return rows


# --- writing files ------------------------------------------------------------------------


def _cell(value: object, uk_dates: bool) -> str:
    if value is None:
        return ""
    if isinstance(value, date):
        return value.strftime("%d/%m/%Y") if uk_dates else value.isoformat()
    if isinstance(value, float):  # money: always pounds and pence
        return f"{value:.2f}"
    return str(value)


def _csv_bytes(return_type: str, partner_code: str, rows: list[dict]) -> bytes:
    columns = get_contract(return_type).column_names
    excel = partner_code in EXCEL_PARTNERS
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n" if excel or partner_code in WINDOWS_PARTNERS else "\n")
    writer.writerow(columns)
    uk = partner_code in UK_DATE_PARTNERS
    for row in rows:
        writer.writerow([_cell(row.get(c), uk) for c in columns])
    return buffer.getvalue().encode("utf-8-sig" if excel else "utf-8")


def _landing_path(settings: Settings, expected: ExpectedReturn) -> Path:
    name = f"{expected.return_type}_{expected.partner_code}_{expected.period}.csv"
    return settings.landing_dir / expected.return_type / expected.partner_code / expected.period / name


def _received_at(seed: int, expected: ExpectedReturn, earliest: date, on_time: bool | None = None) -> datetime:
    """When the partner's upload finished: usually a few working days before the due date,
    about one return in fifteen late."""
    rng = _stream(seed, "received", expected.return_type, expected.partner_code, expected.period)
    late = rng.random() < 0.065 if on_time is None else not on_time
    if late:
        day = expected.due_date + timedelta(days=rng.randint(1, 9))
    else:
        day = expected.due_date - timedelta(days=rng.choice((0, 1, 2, 2, 3, 3, 4, 5, 6, 8)))
        while day.weekday() >= 5:
            day -= timedelta(days=1)
        day = max(day, earliest)
    moment = time(8 + rng.randrange(9), rng.randrange(60), rng.randrange(60))  # office hours
    return datetime.combine(day, moment, tzinfo=timezone.utc)


def _write(path: Path, content: bytes, received_at: datetime) -> None:
    """Write atomically (a gate scanning landing never sees half a file) and set the mtime."""
    write_atomic(path, content, mtime=received_at.timestamp())


def _plant_problems(rows: list[dict], month: str) -> tuple[list[dict], tuple[str, ...]]:
    """Break a training return the way a real extract goes wrong: a free-typed delivery mode
    and an event from the previous month that slipped into the extract."""
    if len(rows) < 2:
        raise ValueError(f"Cannot plant problems in a training return with {len(rows)} rows.")
    rows = [dict(r) for r in rows]
    classroom = [i for i, r in enumerate(rows) if r["delivery_mode"] == "face_to_face"]
    bad_mode = classroom[0] if classroom else 0
    rows[bad_mode]["delivery_mode"] = "classroom"
    bad_date = len(rows) // 2 if len(rows) // 2 != bad_mode else len(rows) // 2 + 1
    outside = parse_month(month).start - timedelta(days=3)
    rows[bad_date]["event_date"] = outside
    problems = (
        f"row {bad_mode + 2}: delivery_mode 'classroom' is not one of elearning, face_to_face, virtual",
        f"row {bad_date + 2}: event_date {outside.isoformat()} is outside {month}",
    )
    return rows, problems


def _choose(expected: list[ExpectedReturn], wanted: tuple[str, str], avoid: ExpectedReturn | None) -> ExpectedReturn | None:
    """The planted return: the wanted one when it is expected, otherwise another training return
    (so a custom reference folder still gets its planted problems where it can)."""
    candidates = [e for e in expected if e.return_type == "training" and e != avoid]
    for e in candidates:
        if (e.return_type, e.partner_code) == wanted:
            return e
    return candidates[-1] if candidates else None


def write_sample_returns(
    settings: Settings,
    first_month: str = DEFAULT_FIRST_MONTH,
    last_month: str = DEFAULT_LAST_MONTH,
    seed: int = DEFAULT_SEED,
    plant_problems: bool = True,
) -> DemoSummary:
    """Write deterministic synthetic returns for every expected return from ``first_month`` to
    ``last_month`` into ``settings.landing_dir``, plus the annual finance returns of the
    financial years the window touches.

    With ``plant_problems`` (the default), the last month gets one return that breaks its
    contract and one expected return that is not written. Rewriting replaces the same files
    byte for byte. Returns a :class:`DemoSummary`.
    """
    parse_month(first_month)
    parse_month(last_month)
    if first_month > last_month:
        raise ValueError(f"The first month {first_month} is after the last month {last_month}: swap them.")
    reference = load_reference(settings)
    months = months_between(first_month, last_month)

    last_expected = expected_returns(reference, last_month)
    rejection = _choose(last_expected, PLANTED_REJECTION, None) if plant_problems else None
    missing = _choose(last_expected, PLANTED_MISSING, rejection) if plant_problems else None

    written: list[WrittenReturn] = []
    planted: PlantedRejection | None = None
    front_doors: dict[str, _FrontDoor] = {}

    def emit(expected: ExpectedReturn, rows: list[dict], earliest: date) -> None:
        nonlocal planted
        path = _landing_path(settings, expected)
        if expected == missing:
            path.unlink(missing_ok=True)  # an earlier demo run may have written it
            return
        if expected == rejection:
            rows, problems = _plant_problems(rows, expected.period)
            planted = PlantedRejection(expected.return_type, expected.partner_code, expected.period, path, problems)
        received = _received_at(seed, expected, earliest, on_time=True if expected == rejection else None)
        _write(path, _csv_bytes(expected.return_type, expected.partner_code, rows), received)
        written.append(WrittenReturn(expected.return_type, expected.partner_code, expected.period,
                                     path, len(rows), expected.due_date, received))

    with progress() as shown:
        for fy in sorted({financial_year_label(parse_month(m).start) for m in months}):
            year_start = parse_financial_year(fy).start
            for expected in expected_returns_for_financial_year(reference, fy):
                rows = _finance_year(seed, reference, reference.partner(expected.partner_code), fy)
                emit(expected, rows, year_start + timedelta(days=1))
        for number, month in enumerate(months, 1):
            _write_month(seed, reference, month, front_doors, emit)
            shown.count("demo", number, len(months), "months of sample returns")

    return DemoSummary(
        landing_dir=settings.landing_dir,
        first_month=first_month,
        last_month=last_month,
        seed=seed,
        returns=tuple(written),
        planted_rejection=planted,
        missing_return=missing,
    )


def _write_month(seed: int, reference: Reference, month: str, front_doors: dict[str, "_FrontDoor"],
                 emit: Callable[[ExpectedReturn, list[dict], date], None]) -> None:
    """Every expected return of one month, through ``emit`` (a front door's children carry over
    from month to month in ``front_doors``)."""
    after_month_end = parse_month(month).end + timedelta(days=1)
    expected_now = expected_returns(reference, month)
    trainers = [reference.partner(e.partner_code) for e in expected_now if e.return_type == "training"]
    training = _training_month(seed, reference, month, trainers) if trainers else {}
    for expected in expected_now:
        if expected.return_type == "contacts":
            door = front_doors.setdefault(expected.partner_code, _FrontDoor(seed, expected.partner_code))
            rows = door.month(month)
        elif expected.return_type == "training":
            rows = training[expected.partner_code]
        elif expected.return_type == "child_deaths":
            rows = _child_deaths_month(seed, expected.partner_code, month)
        else:  # a monthly return type this generator does not know: send a nil return
            rows = []
        emit(expected, rows, after_month_end)
