"""Two ingests, two runs, two sends, and an ingest during a build with queries running (issue 11, item 9).

Real `pkpi` processes on real DuckDB files, racing each other:

* two ``pkpi ingest`` started together over the same landing (the installed ``pkpi`` script,
  fresh interpreters): every file gets exactly one outcome, none is a duplicate of itself;
* a whole month, the way two schedulers that both fired would run it: two ``pkpi run --period
  2025-04 --send`` (so two builds and two scorecard sends), the second one started, with a
  third ``pkpi ingest``, while the first one's dbt build holds the warehouse, after more files
  arrived; meanwhile ``pkpi query`` runs again and again. Both runs and the ingest finish, each
  file has one outcome and every notice arrived once, the scorecard reached each recipient once,
  the published release is whole and consistent, the mart equals a clean full-refresh build of
  the same warehouse, and every query either answered or (before anything was published, or
  when the warehouse is busy) said why in one line: never a traceback, never a half-published
  answer.

(Two ``pkpi scorecard --send`` processes racing on their own are in
tests/test_delivery_exactly_once.py.) The month uses the hand-made partnership of
tests/support/catalogue.py, one data contact added so rejections are notified.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time

import pytest

from pkpi.settings import Settings
from support.catalogue import CONTACTS, REFERENCE, RETURNS, REDROP, ReturnFile, received, write_reference
from support.crash import assert_crash_safe, copy_data, drop, pkpi_env
from support.returns import CONTACT_PARTNERS, MONTH, csv_bytes, make_reference, table
from support.crash import processes  # noqa: F401 - fixtures
from support.smtp import running_smtp_server, smtp_server  # noqa: F401 - fixture

PERIOD = "2025-04"
LAA_CONTACT = "data@laa.example"
LEADS = ["chair@partnership.example"]  # the catalogue's distribution list
LATE = [
    ReturnFile("contacts/LAA/2025-05/laa_contacts_2025-05.csv", "2025-06-01 09:00", CONTACTS + """\
m1,K30,2025-05-02,police,5,female,white,referral,2025-05-02
m2,K31,2025-05-20,health,9,male,asian,nfa,
"""),
    ReturnFile("contacts/LAA/2025-05/laa_contacts_2025-05_draft.csv", "2025-06-01 09:10", CONTACTS + """\
m3,K32,2025-05-03,police,6,female,white,perhaps,
"""),
]
QUERY = "select count(*) as n from kpi_values"



def test_two_ingests_at_once_give_each_file_one_outcome(processes, tmp_path, smtp_server):
    settings = Settings.from_env({"PKPI_DATA_DIR": str(tmp_path / "data"),
                                  "PKPI_REFERENCE_DIR": str(make_reference(tmp_path / "reference"))})
    uploaded = 1743843600.0
    folder = f"contacts/NCT/{MONTH}"
    v2 = csv_bytes(table("contacts", {(3, "child_age_years"): "13"})[:-1])
    dropped = [
        drop(settings, f"{folder}/contacts.csv", csv_bytes(table("contacts")), mtime=uploaded, expect="accepted"),
        drop(settings, f"{folder}/contacts_v2.csv", v2, mtime=uploaded + 60, expect="accepted"),
        drop(settings, f"{folder}/contacts_v2_again.csv", v2, mtime=uploaded + 120, expect="duplicate"),
        drop(settings, f"{folder}/contacts_bad.csv", csv_bytes(table("contacts", {(2, "sex"): "f"})),
             mtime=uploaded + 180, expect="rejected", notice_to=CONTACT_PARTNERS["NCT"]),
        drop(settings, "finance/NCT/2024-25/finance.csv", csv_bytes(table("finance")), mtime=uploaded + 240,
             expect="accepted"),
    ]
    env = pkpi_env(settings, smtp_server.port)
    runs = [processes.start(["ingest"], env, fresh=True) for _ in range(2)]
    finished = [r.wait() for r in runs]
    assert [f.returncode for f in finished] == [0, 0], "\n".join(map(str, finished))
    taken = sorted(int(f.stdout.split(" file(s)")[0]) for f in finished)
    assert taken == [0, len(dropped)], "\n".join(map(str, finished))  # one run took them all
    assert_crash_safe(settings, dropped, smtp=smtp_server)


def _exclusively_locked(settings: Settings) -> bool:
    """Whether a writer holds the warehouse lock now (a shared lock cannot be had)."""
    if not settings.lock_path.exists():
        return False
    fd = os.open(settings.lock_path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def _wait_for_the_build(settings: Settings, first, landing: list) -> None:
    """Until the first run's ingest is done and its build has held the warehouse for a while."""
    held_since = None
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        assert not first.done(), f"the first run ended before its build was seen: {first.wait()}"
        if any(os.path.lexists(settings.landing_dir / d.relative) for d in landing):
            held_since = None
        elif _exclusively_locked(settings):
            held_since = held_since or time.monotonic()
            if time.monotonic() - held_since > 3:
                return
        else:
            held_since = None
        time.sleep(0.2)
    raise AssertionError("the first run's build never held the warehouse")


def test_two_runs_an_ingest_during_a_build_and_queries_keep_everything_exactly_once(processes, tmp_path):
    reference = dict(REFERENCE)
    reference["partners.csv"] = reference["partners.csv"].replace(
        "LAA,Local Authority A,local_authority,true,2020-04-01,,",
        f"LAA,Local Authority A,local_authority,true,2020-04-01,,{LAA_CONTACT}")
    settings = Settings.from_env({"PKPI_DATA_DIR": str(tmp_path / "data"),
                                  "PKPI_REFERENCE_DIR": str(write_reference(tmp_path / "reference", reference))})
    notified = {"contacts/LAA/2025-04/laa_contacts_2025-04_draft.csv", LATE[1].path}
    first_files = [drop(settings, f.path, f.text.encode(), mtime=received(f.received),
                        notice_to=LAA_CONTACT if f.path in notified else None) for f in RETURNS + [REDROP]]

    queries: list[tuple[bool, object]] = []
    stop = threading.Event()

    with running_smtp_server() as server:
        env = pkpi_env(settings, server.port)

        def query_loop() -> None:
            while not stop.is_set():
                published_before = (settings.published_dir / "current").exists()
                queries.append((published_before, processes.run(["query", QUERY], env)))
                stop.wait(0.5)  # a reader's pace, not a loop that starves the runs it watches

        first = processes.start(["run", "--period", PERIOD, "--send"], env)
        reader = threading.Thread(target=query_loop, daemon=True)
        reader.start()
        try:
            _wait_for_the_build(settings, first, first_files)
            late = [drop(settings, f.path, f.text.encode(), mtime=received(f.received),
                         notice_to=LAA_CONTACT if f.path in notified else None) for f in LATE]
            second = processes.start(["run", "--period", PERIOD, "--send"], env)
            ingest = processes.start(["ingest"], env)
            finished = [p.wait(timeout=1800) for p in (first, second, ingest)]
        finally:
            stop.set()
            reader.join(timeout=300)
        assert [f.returncode for f in finished] == [0, 0, 0], "\n".join(map(str, finished))

        clean = copy_data(settings, tmp_path / "clean")
        refreshed = processes.run(["build", "--full-refresh"], pkpi_env(clean))
        assert refreshed.returncode == 0, refreshed
        assert_crash_safe(settings, first_files + late, smtp=server, scorecards={PERIOD: LEADS},
                          published=True, clean=clean)

    answered = [q for _, q in queries if q.returncode == 0]
    assert answered and all(q.stdout.splitlines()[0].split() == ["n"] for q in answered), answered[:3]
    for published_before, q in queries:
        if q.returncode == 0:
            continue
        told = q.stderr.strip()
        assert "Traceback" not in told and len(told.splitlines()) == 1 and told.startswith("pkpi: "), q
        # Once something is published, a query is only ever turned away because the warehouse is busy.
        assert not published_before or "busy" in told.lower(), q
