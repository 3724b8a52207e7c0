"""A small, real KPI mart for the scorecard and delivery tests.

The tables mimic what dbt builds (mart.scorecard, mart.kpi_values, mart.dim_kpi,
mart.fct_return_submissions) but are created directly with SQL, so these tests do not need a
dbt run. The numbers are chosen so that disclosure control has work to do in 2026-03:

- CDN_NOTIFICATIONS is 3 in March 2026 (hidden as <5); May 2025 (5) is then hidden too, so the
  March figure cannot be worked out from the year to date minus the other months;
- CDN_UNEXPECTED_JAR_PCT is 2 of 3 (66.7%) in March 2026: hidden, its base is below 5;
- over 2025-26, 3 deaths had death type not_known (hidden) and so unexpected is hidden too.

In 2026-03 the training return from WNC is missing and the one from NNC was rejected, so the
scorecard is provisional, and so are the training and return compliance KPIs (PROVISIONAL).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from pkpi.disclosure import store_decisions
from pkpi.periods import financial_year_label, months_between, parse_month, shift_month
from pkpi.settings import Settings
from pkpi.warehouse import connect

PERIOD = "2026-03"
FIRST_MONTH = "2024-04"
MONTHS = months_between(FIRST_MONTH, PERIOD)

HIDDEN_CDN_COUNT = 3  # CDN_NOTIFICATIONS in PERIOD
HIDDEN_JAR_PCT_TEXT = ("66.7", "66.67", "66.66")  # CDN_UNEXPECTED_JAR_PCT in PERIOD (2 of 3)
MISSING_RETURN = ("training", "WNC", "West Northamptonshire Council")
REJECTED_RETURN = ("training", "NNC", "North Northamptonshire Council")

# (kpi_code, name, theme, unit, polarity, disclosive, definition), in display order
CATALOGUE = [
    ("CON_CONTACTS", "Contacts received", "Contacts", "count", "neutral", False, "Contacts received by children's social care."),
    ("CON_REFERRALS", "Referrals", "Contacts", "count", "neutral", False, "Contacts with outcome referral."),
    ("CON_CONVERSION_PCT", "Contacts converted to referral", "Contacts", "percent", "higher_is_better", False, "Referrals as a percentage of contacts."),
    ("CON_REREFERRAL_12M_PCT", "Re-referrals within 12 months", "Contacts", "percent", "lower_is_better", False, "Referrals of a child referred in the previous 365 days."),
    ("TRN_ELEARN_COMPLETION_PCT", "E-learning completion", "Training", "percent", "higher_is_better", False, "Completions as a percentage of courses commenced."),
    ("TRN_ATTENDANCES", "Training attendances", "Training", "count", "higher_is_better", False, "Face-to-face and virtual attendances."),
    ("CDN_NOTIFICATIONS", "Child death notifications", "Child deaths", "count", "neutral", True, "Child death notifications received."),
    ("CDN_UNEXPECTED_JAR_PCT", "Unexpected deaths with a JAR within 72 hours", "Child deaths", "percent", "higher_is_better", True, "Unexpected deaths with a Joint Agency Response meeting within 72 hours."),
    ("FIN_CONTRIBUTIONS_GBP", "Partner contributions", "Finance", "gbp", "neutral", False, "Partner contributions other than grants."),
    ("RET_ON_TIME_PCT", "Returns received on time", "Return compliance", "percent", "higher_is_better", False, "Expected returns accepted by their due date."),
]
NOT_ON_SCORECARD = {"CON_REFERRALS"}
PROVISIONAL = {"TRN_ELEARN_COMPLETION_PCT", "TRN_ATTENDANCES", "RET_ON_TIME_PCT"}  # in PERIOD
# dim_kpi.source: the return type a KPI is counted from, by its code's theme prefix.
SOURCES = {"CON": "contacts", "TRN": "training", "CDN": "child_deaths", "FIN": "finance", "RET": "returns"}
TARGETS = {  # kpi_code -> (target, amber_tolerance)
    "CON_CONVERSION_PCT": (24.0, 3.0),
    "CON_REREFERRAL_12M_PCT": (22.0, 2.0),
    "TRN_ELEARN_COMPLETION_PCT": (75.0, 5.0),
    "CDN_UNEXPECTED_JAR_PCT": (90.0, 10.0),
    "RET_ON_TIME_PCT": (95.0, 5.0),
}
FINANCE = {"2024-25": 1_180_000.00, "2025-26": 1_234_567.89}

# Child deaths per month in 2025-26: (expected, unexpected, not_known).
DEATHS_2025_26 = {
    "2025-04": (4, 2, 0), "2025-05": (3, 2, 0), "2025-06": (5, 2, 0), "2025-07": (4, 1, 0),
    "2025-08": (0, 0, 0), "2025-09": (4, 1, 1), "2025-10": (6, 2, 0), "2025-11": (4, 1, 0),
    "2025-12": (6, 2, 1), "2026-01": (5, 1, 0), "2026-02": (8, 2, 1), "2026-03": (0, 3, 0),
}
JAR_SHORTFALL = {"2025-06": 1, "2025-10": 1, "2026-03": 1}  # unexpected deaths without a JAR


def deaths(month: str) -> tuple[int, int, int]:
    return DEATHS_2025_26.get(month, (4, 2, 0))


@dataclass
class _Obs:
    numerator: float
    denominator: float | None

    @property
    def value(self) -> float | None:
        if self.denominator is None:
            return self.numerator
        return None if not self.denominator else 100.0 * self.numerator / self.denominator


def _month_obs(code: str, month: str) -> _Obs | None:
    i = MONTHS.index(month)
    contacts = 380 + (i * 37) % 60
    referrals = round(contacts * (0.2 + (i % 5) * 0.01))
    expected, unexpected, not_known = deaths(month)
    return {
        "CON_CONTACTS": _Obs(contacts, None),
        "CON_REFERRALS": _Obs(referrals, None),
        "CON_CONVERSION_PCT": _Obs(referrals, contacts),
        "CON_REREFERRAL_12M_PCT": _Obs(round(referrals * 0.21), referrals),
        "TRN_ELEARN_COMPLETION_PCT": _Obs(150 + i % 7, 200 + (i * 3) % 11),
        "TRN_ATTENDANCES": _Obs(110 + (i * 13) % 40, None),
        "CDN_NOTIFICATIONS": _Obs(expected + unexpected + not_known, None),
        "CDN_UNEXPECTED_JAR_PCT": _Obs(unexpected - JAR_SHORTFALL.get(month, 0), unexpected),
        "RET_ON_TIME_PCT": _Obs(2, 5) if month == PERIOD else _Obs(4 + i % 2, 5),
    }.get(code)


def _fytd(code: str, month: str) -> _Obs | None:
    fy = financial_year_label(parse_month(month).start)
    if code.startswith("FIN_"):
        return _Obs(FINANCE[fy], None) if fy in FINANCE else None
    months = [m for m in MONTHS if financial_year_label(parse_month(m).start) == fy and m <= month]
    obs = [_month_obs(code, m) for m in months]
    if obs[0].denominator is None:
        return _Obs(sum(o.numerator for o in obs), None)
    return _Obs(sum(o.numerator for o in obs), sum(o.denominator for o in obs))


def _value_of(code: str, month: str) -> float | None:
    obs = _month_obs(code, month) if month in MONTHS else None
    return obs.value if obs else None


def _rag(value, target, polarity) -> str:
    if value is None or target is None:
        return "grey"
    goal, tolerance = target
    gap = (value - goal) if polarity != "lower_is_better" else (goal - value)
    return "green" if gap >= 0 else "amber" if gap >= -tolerance else "red"


def _trend(value, previous) -> str:
    if value is None or previous is None:
        return "n/a"
    return "up" if value > previous else "down" if value < previous else "flat"


def _submissions(month: str) -> list[tuple]:
    due = parse_month(month).end + timedelta(days=15)
    rows = [
        ("contacts", "NCT", month, due, "received_on_time"),
        ("training", "NNC", month, due, "received_on_time"),
        ("training", "WNC", month, due, "received_on_time"),
        ("training", "NCT", month, due, "received_on_time"),
        ("child_deaths", "NCT", month, due, "received_late"),
    ]
    if month == PERIOD:
        rows[1] = ("training", "NNC", month, due, "rejected")
        rows[2] = ("training", "WNC", month, due, "missing")
    return rows


def build_mart(settings: Settings) -> Path:
    """Create the warehouse at ``settings`` with the mart tables filled as described above."""
    with connect(settings) as con:
        con.execute("CREATE SCHEMA IF NOT EXISTS mart")
        for table in ("scorecard", "kpi_values", "dim_kpi", "dim_month", "fct_return_submissions"):
            con.execute(f"DROP TABLE IF EXISTS mart.{table}")
        con.execute("""
            CREATE TABLE mart.dim_kpi (kpi_code VARCHAR PRIMARY KEY, name VARCHAR, theme VARCHAR,
              unit VARCHAR, polarity VARCHAR, on_scorecard BOOLEAN, disclosive BOOLEAN, definition VARCHAR,
              source VARCHAR NOT NULL, display_order INTEGER NOT NULL UNIQUE)
        """)
        con.executemany(
            "INSERT INTO mart.dim_kpi VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(c, n, t, u, p, c not in NOT_ON_SCORECARD, d, df, SOURCES[c[:3]], 10 * (i + 1))
             for i, (c, n, t, u, p, d, df) in enumerate(CATALOGUE)],
        )
        con.execute("CREATE TABLE mart.dim_month (month VARCHAR PRIMARY KEY, financial_year VARCHAR)")
        con.executemany(
            "INSERT INTO mart.dim_month VALUES (?, ?)",
            [(m, financial_year_label(parse_month(m).start)) for m in MONTHS],
        )
        con.execute("""
            CREATE TABLE mart.kpi_values (kpi_code VARCHAR, period_grain VARCHAR, period VARCHAR,
              partner_code VARCHAR, dimension VARCHAR, dimension_value VARCHAR,
              numerator DOUBLE, denominator DOUBLE, value DOUBLE, disclosive BOOLEAN)
        """)
        values = []
        for code, *_ in CATALOGUE:
            for month in MONTHS:
                obs = _month_obs(code, month)
                if obs:
                    values.append((code, "month", month, "ALL", "total", "total", obs.numerator, obs.denominator, obs.value))
            for fy in ("2024-25", "2025-26"):
                obs = _fytd(code, shift_month(parse_month(f"{fy[:4]}-04").label, 11))
                if obs:
                    values.append((code, "financial_year", fy, "ALL", "total", "total", obs.numerator, obs.denominator, obs.value))
        for month in MONTHS:
            for death_type, n in zip(("expected", "unexpected", "not_known"), deaths(month)):
                values.append(("CDN_NOTIFICATIONS", "month", month, "ALL", "death_type", death_type, n, None, n))
        disclosive = {c for c, *_, d, _ in CATALOGUE if d}
        con.executemany(
            "INSERT INTO mart.kpi_values VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(*v, v[0] in disclosive) for v in values],
        )

        con.execute("""
            CREATE TABLE mart.fct_return_submissions (return_type VARCHAR, partner_code VARCHAR,
              period VARCHAR, due_date DATE, status VARCHAR)
        """)
        con.executemany(
            "INSERT INTO mart.fct_return_submissions VALUES (?, ?, ?, ?, ?)",
            [r for m in MONTHS for r in _submissions(m)],
        )

        con.execute("""
            CREATE TABLE mart.scorecard (period VARCHAR, kpi_code VARCHAR, kpi_name VARCHAR,
              theme VARCHAR, unit VARCHAR, value DOUBLE, fytd_value DOUBLE,
              previous_month_value DOUBLE, same_month_last_year_value DOUBLE, target DOUBLE,
              polarity VARCHAR, rag VARCHAR, trend VARCHAR, provisional BOOLEAN, suppressed BOOLEAN,
              financial_year VARCHAR, value_grain VARCHAR, fytd_numerator DOUBLE,
              fytd_denominator DOUBLE, disclosive BOOLEAN)
        """)
        rows = []
        for month in months_between("2025-04", PERIOD):
            outstanding = {s[0] for s in _submissions(month) if s[4] in ("missing", "rejected")}
            for code, name, theme, unit, polarity, disclosive, _ in CATALOGUE:
                if code in NOT_ON_SCORECARD:
                    continue
                # int_scorecard_rows' rule: a return the KPI is counted from is outstanding.
                source = SOURCES[code[:3]]
                provisional = bool(outstanding) if source == "returns" else source in outstanding
                value = _value_of(code, month)
                previous = _value_of(code, shift_month(month, -1))
                fytd = _fytd(code, month)
                target = TARGETS.get(code)
                small = disclosive and value is not None and 0 < value < 5
                rows.append((
                    month, code, name, theme, unit, value, fytd.value if fytd else None,
                    previous, _value_of(code, shift_month(month, -12)),
                    target[0] if target else None, polarity,
                    _rag(value if value is not None else (fytd.value if fytd else None), target, polarity),
                    _trend(value, previous), provisional, small,
                    financial_year_label(parse_month(month).start),
                    "financial_year" if code.startswith("FIN_") else "month",
                    fytd.numerator if fytd else None, fytd.denominator if fytd else None, disclosive,
                ))
        con.executemany(f"INSERT INTO mart.scorecard VALUES ({', '.join('?' * 20)})", rows)
        # What `pkpi build` does once dbt has built the mart: the disclosure decisions, stored.
        store_decisions(con, settings.disclosure_threshold)
    return settings.warehouse_path


REFERENCE_FILES = {
    "partners.csv": [
        "partner_code,partner_name,partner_type,statutory_partner,active_from,active_to,data_contact_email",
        "NNC,North Northamptonshire Council,local_authority,true,2021-04-01,,performance@nnc.example",
        "WNC,West Northamptonshire Council,local_authority,true,2021-04-01,,bi.team@wnc.example",
        "NCT,Northamptonshire Children's Trust,childrens_trust,false,2020-11-01,,data@nct.example",
    ],
    "return_schedule.csv": [
        "return_type,partner_code,due_days,active_from,active_to",
        "contacts,NCT,10,2024-04-01,",
        "training,NNC,15,2024-04-01,",
        "training,WNC,15,2024-04-01,",
        "training,NCT,15,2024-04-01,",
        "child_deaths,NCT,10,2024-04-01,",
        "finance,NNC,60,2024-04-01,",
    ],
    "courses.csv": ["course_code,course_name,theme", "EL-INTRO,Introduction to safeguarding,Foundations"],
    "population.csv": ["financial_year,population_0_17", "2024-25,190000", "2025-26,191000"],
    "kpi_targets.csv": ["kpi_code,financial_year,target,amber_tolerance"]
    + [f"{code},2025-26,{t},{a}" for code, (t, a) in TARGETS.items()],
    "distribution_list.csv": [
        "email,name,role,active",
        "lead.one@partnership.example,Lead One,Independent Scrutineer,true",
        "lead.two@partnership.example,Lead Two,Director of Children's Services,true",
        "former.lead@partnership.example,Former Lead,Retired,false",
    ],
}
ACTIVE_RECIPIENTS = ("lead.one@partnership.example", "lead.two@partnership.example")
INACTIVE_RECIPIENT = "former.lead@partnership.example"


def write_reference(directory: Path) -> Path:
    """A small reference folder with all six files (docs/returns/README.md, reference data)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, lines in REFERENCE_FILES.items():
        (directory / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return directory


def make_settings(tmp_path: Path, **env: str) -> Settings:
    """Settings for a fresh data folder in ``tmp_path`` with the small reference folder."""
    base = {
        "PKPI_DATA_DIR": str(tmp_path / "data"),
        "PKPI_REFERENCE_DIR": str(write_reference(tmp_path / "reference")),
    }
    base.update(env)
    return Settings.from_env(base)
