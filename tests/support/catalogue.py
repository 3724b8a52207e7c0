"""A small hand-made partnership, loaded through the real gate and built with the real dbt project.

tests/test_kpi_catalogue.py checks every KPI of the catalogue against figures worked out by hand
from the files below; tests/test_published.py checks the published copy made from the same
build. Both use :func:`built_catalogue`, which builds once per test session (dbt is slow to start).

The partnership (its own reference folder, nothing from seeds/):

- partners LAA (local authority), HBB (health), PFF (police), and OLDX, whose membership ended
  on 2025-03-31;
- monthly returns are owed from March 2025: contacts by LAA and PFF (due 10 days after the
  month), training by HBB, PFF and OLDX (15 days), child deaths by HBB (20 days); finance by LAA
  and HBB every financial year from 2024-25 (due 60 days after 1 April);
- the returns cross the financial-year boundary (March 2025 is in 2024-25, April 2025 in
  2025-26). LAA also sent a contacts return for April 2024, before its schedule starts, so the
  re-referral look-back has a year of history;
- a nil return (PFF contacts 2025-03, HBB training and child deaths 2025-04), a resubmission
  that supersedes (LAA contacts 2025-03, LAA finance 2025-26), rejected files (LAA contacts
  2025-04, later replaced; PFF training 2025-04, never replaced; a training file from an
  unknown partner code ZZZ), late files (LAA contacts 2025-03 through its resubmission, PFF
  training 2025-03, PFF contacts 2025-04, HBB finance 2024-25), a missing expected return (OLDX
  training 2025-03) and the same bytes dropped twice (HBB child deaths 2025-03).

Each file's received time is its modification time in landing, set below (UTC).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path

from pkpi.build import BuildResult, build_mart
from pkpi.ingest import IngestReport, ingest_landing
from pkpi.settings import Settings

TODAY = date(2025, 6, 2)  # the gate's "today": every date in the files is in the past

REFERENCE = {
    "partners.csv": """\
partner_code,partner_name,partner_type,statutory_partner,active_from,active_to,data_contact_email
LAA,Local Authority A,local_authority,true,2020-04-01,,
HBB,Health Board B,health,true,2020-04-01,,
PFF,Police Force F,police,true,2020-04-01,,
OLDX,Old Partner X,voluntary,false,2020-04-01,2025-03-31,
""",
    "return_schedule.csv": """\
return_type,partner_code,due_days,active_from,active_to
contacts,LAA,10,2025-03-01,
contacts,PFF,10,2025-03-01,
training,HBB,15,2025-03-01,
training,PFF,15,2025-03-01,
training,OLDX,15,2025-03-01,
child_deaths,HBB,20,2025-03-01,
finance,LAA,60,2024-04-01,
finance,HBB,60,2024-04-01,
""",
    "courses.csv": """\
course_code,course_name,theme
EL-A,E-learning A,Foundations
EL-B,E-learning B,Foundations
F2F-X,Face-to-face X,Practice
VIR-Y,Virtual Y,Practice
NEW-Z,Not yet run,Practice
""",
    "population.csv": """\
financial_year,population_0_17
2024-25,20000
2025-26,30000
""",
    "kpi_targets.csv": """\
kpi_code,financial_year,target,amber_tolerance
CON_CONVERSION_PCT,2025-26,70,5
RET_ON_TIME_PCT,2024-25,50,10
""",
    "distribution_list.csv": """\
email,name,role,active
chair@partnership.example,Pat Chair,Independent Scrutineer,true
""",
}

CONTACTS = "contact_id,child_id,contact_date,contact_source,child_age_years,sex,ethnicity,outcome,referral_date\n"
TRAINING = "record_id,course_code,delivery_mode,event_type,event_date,learner_sector,impact_positive\n"
CHILD_DEATHS = "notification_id,notification_date,age_band,sex,ethnicity,death_type,jar_within_72h\n"
FINANCE = "contribution_type,amount_gbp,agreed_amount_gbp\n"


@dataclass(frozen=True)
class ReturnFile:
    """One partner file: where it lands, when its upload finished (UTC) and its text."""

    path: str
    received: str
    text: str


RETURNS = [
    # --- contacts ---------------------------------------------------------------------------
    # LAA, April 2024 (no return was owed yet): the history the re-referral look-back reaches.
    ReturnFile("contacts/LAA/2024-04/laa_contacts_2024-04.csv", "2024-05-08 09:00", CONTACTS + """\
a1,K1,2024-04-10,police,5,female,white,referral,2024-04-10
a2,K4,2024-04-01,health,6,male,white,referral,2024-04-01
a3,K10,2024-04-01,health,7,female,asian,referral,2024-04-01
a4,K9,2024-04-20,education,8,male,black,advice,
"""),
    # LAA, March 2025, first version (on time), superseded by the resubmission below.
    ReturnFile("contacts/LAA/2025-03/laa_contacts_2025-03.csv", "2025-04-05 09:00", CONTACTS + """\
b1,K1,2025-03-10,police,6,female,white,referral,2025-03-10
b2,K7,2025-03-12,health,3,male,white,referral,2025-03-12
"""),
    # LAA, March 2025, resubmitted on 12 April: due 10 April, so the return is late.
    ReturnFile("contacts/LAA/2025-03/laa_contacts_2025-03_v2.csv", "2025-04-12 08:00", CONTACTS + """\
c1,K1,2025-03-10,police,6,female,white,referral,2025-03-10
c2,K2,2025-03-03,education,9,male,mixed,referral,2025-03-03
c3,K3,2025-03-15,health,0,not_known,white,nfa,
c4,K5,2025-03-20,police,15,female,black,early_help,
c5,K6,2025-03-31,self,17,male,other,nfa,
"""),
    # PFF, March 2025: a nil return, on time.
    ReturnFile("contacts/PFF/2025-03/pff_contacts_2025-03.csv", "2025-04-02 09:00", CONTACTS),
    # LAA, April 2025: first a file the gate rejects (outcome 'maybe'), then a good one on time.
    ReturnFile("contacts/LAA/2025-04/laa_contacts_2025-04_draft.csv", "2025-05-03 09:00", CONTACTS + """\
d1,K4,2025-04-01,police,7,male,white,maybe,
"""),
    ReturnFile("contacts/LAA/2025-04/laa_contacts_2025-04.csv", "2025-05-09 09:00", CONTACTS + """\
d1,K4,2025-04-01,police,7,male,white,referral,2025-04-01
d2,K10,2025-04-02,police,8,female,asian,referral,2025-04-02
d3,K1,2025-04-05,health,6,female,white,referral,2025-04-05
d4,K11,2025-04-08,police,12,male,white,referral,2025-04-08
d5,K11,2025-04-08,education,12,male,white,referral,2025-04-08
d6,K12,2025-04-15,housing,4,female,asian,nfa,
"""),
    # PFF, April 2025: due 10 May, received 15 May (late).
    ReturnFile("contacts/PFF/2025-04/pff_contacts_2025-04.csv", "2025-05-15 09:00", CONTACTS + """\
p1,K2,2025-04-10,police,9,male,mixed,referral,2025-04-10
p2,K20,2025-04-11,police,11,female,white,nfa,
p3,K21,2025-04-30,anonymous,16,male,white,early_help,
"""),
    # --- training ---------------------------------------------------------------------------
    ReturnFile("training/HBB/2025-03/hbb_training_2025-03.csv", "2025-04-10 09:00", TRAINING + """\
t1,EL-A,elearning,commenced,2025-03-03,health,
t2,EL-A,elearning,commenced,2025-03-04,health,
t3,EL-B,elearning,commenced,2025-03-05,education,
t4,EL-A,elearning,completed,2025-03-20,health,yes
t5,F2F-X,face_to_face,attended,2025-03-10,health,yes
t6,F2F-X,face_to_face,attended,2025-03-10,education,no
t7,VIR-Y,virtual,did_not_attend,2025-03-11,police,
t8,VIR-Y,virtual,attended,2025-03-11,police,yes
"""),
    # PFF, March 2025: due 15 April, received 20 April (late).
    ReturnFile("training/PFF/2025-03/pff_training_2025-03.csv", "2025-04-20 09:00", TRAINING + """\
u1,EL-B,elearning,completed,2025-03-02,police,no
u2,F2F-X,face_to_face,did_not_attend,2025-03-12,police,
"""),
    ReturnFile("training/HBB/2025-04/hbb_training_2025-04.csv", "2025-05-05 09:00", TRAINING),
    # PFF, April 2025: rejected (face-to-face events cannot be 'commenced'), never replaced.
    ReturnFile("training/PFF/2025-04/pff_training_2025-04.csv", "2025-05-06 09:00", TRAINING + """\
v1,F2F-X,face_to_face,commenced,2025-04-03,police,
"""),
    # A partner code that is not in partners.csv: rejected.
    ReturnFile("training/ZZZ/2025-04/zzz_training_2025-04.csv", "2025-05-07 09:00", TRAINING + """\
z1,EL-A,elearning,commenced,2025-04-03,other,
"""),
    # --- child deaths -----------------------------------------------------------------------
    ReturnFile("child_deaths/HBB/2025-03/hbb_cdop_2025-03.csv", "2025-04-18 09:00", CHILD_DEATHS + """\
n1,2025-03-02,under_28_days,male,white,expected,
n2,2025-03-09,28_to_364_days,female,asian,unexpected,yes
n3,2025-03-21,10_to_14,male,black,unexpected,no
n4,2025-03-30,15_to_17,not_known,white,unexpected,yes
"""),
    ReturnFile("child_deaths/HBB/2025-04/hbb_cdop_2025-04.csv", "2025-05-02 09:00", CHILD_DEATHS),
    # --- finance ----------------------------------------------------------------------------
    # 2024-25 is due 60 days after 1 April 2024: 31 May 2024.
    ReturnFile("finance/LAA/2024-25/laa_finance_2024-25.csv", "2024-05-01 09:00", FINANCE + """\
core,10000.00,10000.00
dsg,2500.50,
grant,4000.00,
"""),
    ReturnFile("finance/HBB/2024-25/hbb_finance_2024-25.csv", "2024-06-15 09:00", FINANCE + """\
core,5000.00,
other,499.50,
"""),
    # 2025-26 is due 31 May 2025; LAA resubmitted on 20 May, still on time.
    ReturnFile("finance/LAA/2025-26/laa_finance_2025-26.csv", "2025-05-01 09:00", FINANCE + """\
core,11000.00,
"""),
    ReturnFile("finance/LAA/2025-26/laa_finance_2025-26_revised.csv", "2025-05-20 09:00", FINANCE + """\
core,12000.00,
dsg,3000.25,
grant,1000.00,
other,0.75,
"""),
    ReturnFile("finance/HBB/2025-26/hbb_finance_2025-26.csv", "2025-05-10 09:00", FINANCE + """\
core,4500.00,
grant,250.00,
"""),
]

# The same bytes as HBB's March child deaths return, dropped again a week later: a duplicate.
REDROP = ReturnFile("child_deaths/HBB/2025-03/hbb_cdop_2025-03_again.csv", "2025-04-25 09:00",
                    RETURNS[12].text)


def write_reference(folder: Path, files: dict[str, str]) -> Path:
    """Write a reference folder (docs/returns/README.md, reference data) from file name -> CSV text."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def partnership_settings(root: Path, reference: dict[str, str]) -> Settings:
    """Settings for a fresh data folder under ``root``, with a reference folder written there
    from ``reference`` (file name -> CSV text)."""
    return Settings.from_env({
        "PKPI_DATA_DIR": str(root / "data"),
        "PKPI_REFERENCE_DIR": str(write_reference(root / "reference", reference)),
    })


def received(text: str) -> float:
    """A 'YYYY-MM-DD HH:MM' UTC time as a file modification time."""
    return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=timezone.utc).timestamp()


def drop_returns(landing: Path, files: list[ReturnFile]) -> None:
    """Put the files in landing as the partners' uploads would leave them."""
    for f in files:
        path = landing / f.path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f.text, encoding="utf-8")
        os.utime(path, (received(f.received), received(f.received)))


@dataclass(frozen=True)
class Built:
    """A partnership ingested and built: its settings, what ingest did and what dbt did."""

    settings: Settings
    ingest: IngestReport
    build: BuildResult


def ingest_and_build(root: Path, reference: dict[str, str], files: list[ReturnFile],
                     today: date = TODAY) -> Built:
    """Write a reference folder and returns under ``root``, ingest them, build the mart."""
    settings = partnership_settings(root, reference)
    drop_returns(settings.landing_dir, files)
    report = ingest_landing(settings, today=today)
    return Built(settings, report, build_mart(settings))


_SESSION: dict[str, Built] = {}


def built_catalogue(tmp_path_factory) -> Built:
    """The partnership above, ingested and built once per test session."""
    if "catalogue" not in _SESSION:
        root = tmp_path_factory.mktemp("catalogue")
        _SESSION["catalogue"] = ingest_and_build(root, REFERENCE, RETURNS + [REDROP])
    return _SESSION["catalogue"]


def copy_of(built: Built, root: Path) -> Settings:
    """A private copy of a built partnership (its data folder and reference files), to change."""
    source = built.settings.data_dir.parent
    shutil.copytree(source / "data", root / "data", symlinks=True)
    shutil.copytree(source / "reference", root / "reference", symlinks=True)
    return Settings.from_env({"PKPI_DATA_DIR": str(root / "data"), "PKPI_REFERENCE_DIR": str(root / "reference")})
