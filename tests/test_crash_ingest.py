"""Ingest crashed at every step, for every kind of file, then recovered (issue 11, items 1, 2 and 9).

For each crash point of the ingest state machine (``ingest.*`` and ``outbox.*`` in
:mod:`pkpi.faults`) and each kind of file (accepted, rejected with a notice, the same bytes as
the current version, and a symbolic link refused unread), a real ``pkpi ingest`` process is
ended at that step (``PKPI_CRASH_AT``, exit 86, like ``kill -9`` there), then ``pkpi ingest``
runs again, twice, with SMTP pointed at a real server on loopback. After recovery
:func:`support.crash.assert_crash_safe` checks that the file has exactly one audit row and one
stored copy of its original bytes, nothing temporary is left, nothing is left in landing, no
file is a duplicate of itself, and the partner's notice arrived exactly once. Behind the
rejected file a second file waits: it must come through untouched.

The processes come from the fork server of :mod:`support.crash` (each is a process of its own
running the ``pkpi`` command line; it saves the 10 s of imports a fresh interpreter spends).
tests/test_concurrency.py runs the installed ``pkpi`` script itself.
"""

from __future__ import annotations

import pytest

from pkpi.settings import Settings
from support.crash import (
    CRASHED, Dropped, assert_crash_safe, copy_data, drop, drop_link, pkpi_env,
)
from support.returns import CONTACT_PARTNERS, FINANCIAL_YEAR, MONTH, csv_bytes, table
from support.crash import processes, reference  # noqa: F401 - fixtures
from support.smtp import smtp_server  # noqa: F401 - fixture

STEPS = ("ingest.staged", "ingest.committed", "ingest.placed", "ingest.left_landing", "ingest.settled",
         "outbox.delivered")
KINDS = ("accepted", "rejected", "duplicate", "symlink")
NOTIFIED = ("rejected", "symlink")  # the kinds whose partner is sent a notice (outbox.delivered)
CASES = [(step, kind) for step in STEPS for kind in KINDS
         if step != "outbox.delivered" or kind in NOTIFIED]
CONTACT = CONTACT_PARTNERS["NCT"]
FOLDER = f"contacts/NCT/{MONTH}"
UPLOADED = 1743843600.0  # 2025-04-05 09:00 UTC: before every due date
GOOD = csv_bytes(table("contacts"))
BAD = csv_bytes(table("contacts", {(2, "sex"): "f", (4, "child_age_years"): "18"}))




def fresh_settings(root, reference) -> Settings:
    return Settings.from_env({"PKPI_DATA_DIR": str(root / "data"), "PKPI_REFERENCE_DIR": str(reference)})


@pytest.fixture(scope="module")
def ingested(tmp_path_factory, reference, processes):
    """A data folder where NCT's March contacts return is already accepted (for the duplicate)."""
    settings = fresh_settings(tmp_path_factory.mktemp("ingested"), reference)
    original = drop(settings, f"{FOLDER}/contacts.csv", GOOD, mtime=UPLOADED, expect="accepted")
    run = processes.run(["ingest"], pkpi_env(settings))
    assert run.returncode == 0, run
    assert_crash_safe(settings, [original])
    return settings, original


def prepare(kind: str, tmp_path, reference, ingested) -> tuple[Settings, list[Dropped]]:
    """The data folder and landing of one case: the file of ``kind`` first, then a bystander."""
    if kind == "duplicate":
        settings, original = ingested
        settings = copy_data(settings, tmp_path)
        dropped = [original, drop(settings, f"{FOLDER}/contacts_again.csv", GOOD, mtime=UPLOADED + 60,
                                  expect="duplicate")]
    else:
        settings = fresh_settings(tmp_path, reference)
        if kind == "accepted":
            dropped = [drop(settings, f"{FOLDER}/contacts.csv", GOOD, mtime=UPLOADED, expect="accepted")]
        elif kind == "rejected":
            dropped = [drop(settings, f"{FOLDER}/contacts_bad.csv", BAD, mtime=UPLOADED, expect="rejected",
                            notice_to=CONTACT)]
        else:  # a link to a real return outside landing: refused unread, the target never copied
            target = tmp_path / "elsewhere" / "contacts.csv"
            target.parent.mkdir()
            target.write_bytes(GOOD)
            dropped = [drop_link(settings, f"{FOLDER}/linked.csv", target, notice_to=CONTACT)]
    if kind == "rejected":  # a file waiting behind the crashed one: recovery must not disturb it
        dropped.append(drop(settings, f"finance/NCT/{FINANCIAL_YEAR}/finance.csv", csv_bytes(table("finance")),
                            mtime=UPLOADED + 3600, expect="accepted"))
    return settings, dropped


def crash_and_recover(processes, settings, dropped, step, smtp) -> None:
    env = pkpi_env(settings, smtp.port)
    crashed = processes.run(["ingest"], dict(env, PKPI_CRASH_AT=step))
    assert crashed.returncode == CRASHED, crashed
    assert f"crash injected at {step}" in crashed.stderr
    for _ in range(2):  # recovery, then a run that must find nothing left to do
        again = processes.run(["ingest"], env)
        assert again.returncode == 0, again
    assert again.stdout.startswith("0 file(s)"), again
    assert_crash_safe(settings, dropped, smtp=smtp)


@pytest.mark.parametrize("step, kind", CASES, ids=[f"{s}-{k}" for s, k in CASES])
def test_ingest_crashed_at_each_step_is_recovered_to_one_outcome(processes, reference, ingested, tmp_path,
                                                                   smtp_server, step, kind):
    settings, dropped = prepare(kind, tmp_path, reference, ingested)
    crash_and_recover(processes, settings, dropped, step, smtp_server)


RECEIPT_STEPS = STEPS + ("delivery.reserved",)


@pytest.mark.parametrize("step", RECEIPT_STEPS)
def test_a_receipt_arrives_once_whatever_step_ingest_crashed_at(processes, reference, tmp_path, smtp_server, step):
    # Receipts on: the accepted file's receipt is queued with its outcome, delivered once.
    settings = fresh_settings(tmp_path, reference)
    dropped = [drop(settings, f"{FOLDER}/contacts.csv", GOOD, mtime=UPLOADED, expect="accepted", receipt_to=CONTACT)]
    env = pkpi_env(settings, smtp_server.port, PKPI_SEND_RECEIPTS="true")
    crashed = processes.run(["ingest"], dict(env, PKPI_CRASH_AT=step))
    assert crashed.returncode == CRASHED, crashed
    for _ in range(2):
        again = processes.run(["ingest"], env)
        assert again.returncode == 0, again
    assert_crash_safe(settings, dropped, smtp=smtp_server)
    assert len(smtp_server.received) == 1


def test_a_notice_written_to_the_outbox_while_crashing_is_sent_once_smtp_is_configured(
        processes, reference, ingested, tmp_path, smtp_server):
    # No mail server during the crashed run: the notice can only be queued (or written out).
    settings, dropped = prepare("rejected", tmp_path, reference, ingested)
    crashed = processes.run(["ingest"], dict(pkpi_env(settings), PKPI_CRASH_AT="ingest.settled"))
    assert crashed.returncode == CRASHED, crashed
    recovered = processes.run(["ingest"], pkpi_env(settings))
    assert recovered.returncode == 0, recovered
    assert smtp_server.received == []
    again = processes.run(["ingest"], pkpi_env(settings, smtp_server.port))  # now SMTP is configured
    assert again.returncode == 0, again
    assert_crash_safe(settings, dropped, smtp=smtp_server)
