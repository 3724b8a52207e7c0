"""No accepted file vanishes between raw and the mart (issue 10, item 3).

One realistic partnership (tests/support/catalogue.py: resubmissions, nil returns, late and
rejected files, the same bytes twice) plus files whose folder names a careless partner spells
differently (upper-case return type, lower-case partner code), an XLSX return, and files whose
period folders are not ASCII or end in a newline, goes through one real ingest and one real dbt
build. :func:`support.invariants.assert_current_returns_counted` then checks that every current
accepted return is in the mart fact of its type and shows as received.
"""

from __future__ import annotations

import os
import shutil

import duckdb
import pytest

from support.catalogue import (
    CONTACTS, REDROP, REFERENCE, RETURNS, TRAINING, ReturnFile, ingest_and_build, partnership_settings, received,
)
from support.invariants import assert_current_returns_counted, current_returns, uncounted_returns
from support.returns import xlsx_bytes

# Spelled as a careless partner would: accepted, and stored under the canonical names.
RESPELT = ReturnFile("Contacts/laa/2025-05/laa_contacts_may.csv", "2025-06-01 09:00", CONTACTS + """\
m1,K30,2025-05-02,police,5,female,white,referral,2025-05-02
m2,K31,2025-05-20,health,9,male,asian,nfa,
""")
# Rejected: the period folder is not exactly YYYY-MM in ASCII digits.
NOT_EXACT = [
    ReturnFile("contacts/PFF/2025-05\n/pff_newline.csv", "2025-06-01 09:10", CONTACTS + "q1,K40,2025-05-03,police,5,female,white,nfa,\n"),
    ReturnFile("contacts/PFF/\u0662\u0660\u0662\u0665-\u0660\u0665/pff_arabic.csv", "2025-06-01 09:20",
               CONTACTS + "q2,K41,2025-05-04,police,6,male,white,nfa,\n"),
    ReturnFile("contacts/PFF/\uff12\uff10\uff12\uff15-\uff10\uff15/pff_fullwidth.csv", "2025-06-01 09:30",
               CONTACTS + "q3,K42,2025-05-05,police,7,male,white,nfa,\n"),
]
XLSX_PATH = "training/HBB/2025-05/hbb_training_may.xlsx"
XLSX_ROWS = [TRAINING.strip().split(","), ["w1", "EL-A", "elearning", "completed", "2025-05-06", "health", "yes"],
             ["w2", "F2F-X", "face_to_face", "attended", "2025-05-07", "police", "no"]]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("invariant")
    # The XLSX file waits in the same landing folder (ReturnFile holds text only).
    path = partnership_settings(root, REFERENCE).landing_dir / XLSX_PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(xlsx_bytes(("training", XLSX_ROWS)))
    os.utime(path, (received("2025-06-01 10:00"),) * 2)
    return ingest_and_build(root, REFERENCE, RETURNS + [REDROP, RESPELT] + NOT_EXACT)


def test_every_current_accepted_return_is_counted_in_the_mart(built):
    current = assert_current_returns_counted(built.settings)
    keys = {(r["return_type"], r["partner_code"], r["period"]) for r in current}
    # The catalogue's current returns, the respelt contacts return and the XLSX training return.
    assert ("contacts", "LAA", "2025-05") in keys
    assert ("training", "HBB", "2025-05") in keys
    assert len(current) == len(built.ingest.accepted) - 2  # two accepted files were superseded
    assert all(r["period"].isascii() and r["period"] == r["period"].strip() for r in current)


def test_a_respelt_folder_is_stored_under_its_canonical_names(built):
    (outcome,) = [o for o in built.ingest.outcomes if o.file_name == "laa_contacts_may.csv"]
    assert outcome.status == "accepted"
    assert (outcome.return_type, outcome.partner_code, outcome.period) == ("contacts", "LAA", "2025-05")
    archived = built.settings.data_dir / outcome.stored_path
    assert archived.is_relative_to(built.settings.archive_dir / "contacts" / "LAA" / "2025-05")


def test_periods_not_written_in_ascii_digits_are_refused(built):
    outcomes = {o.file_name: o for o in built.ingest.outcomes}
    for f in NOT_EXACT:
        outcome = outcomes[f.path.rsplit("/", 1)[-1]]
        assert outcome.status == "rejected"
        assert [p.rule for p in outcome.problems] == ["period_format"]
        assert "\n" not in outcome.problems[0].message


def test_the_invariant_fails_when_a_return_vanishes(built, tmp_path):
    """The check is not vacuous: a current return whose rows are gone from the mart, or a load
    accepted under a period the mart cannot read, is named."""
    copy = tmp_path / "warehouse.duckdb"
    shutil.copy(built.settings.warehouse_path, copy)
    con = duckdb.connect(str(copy))
    try:
        assert uncounted_returns(con) == []
        victim = next(r for r in current_returns(con) if r["return_type"] == "contacts" and r["row_count"])
        con.execute("DELETE FROM mart.fct_contacts WHERE load_id = ?", [victim["load_id"]])
        problems = uncounted_returns(con)
        assert any(victim["load_id"] in p and "mart.fct_contacts" in p for p in problems), problems

        # What an inexact period check once let through: accepted, loaded to raw, never counted.
        con.execute("""INSERT INTO audit.loads (load_id, return_type, partner_code, period, file_name,
                           landing_path, checksum_sha256, size_bytes, received_at, validated_at, status,
                           row_count, is_nil, stored_path, error_count, message)
                       VALUES ('inexact', 'contacts', 'PFF', '2025-05' || chr(10), 'x.csv', 'x', 'x', 1,
                               TIMESTAMP '2025-06-01 09:00', TIMESTAMP '2025-06-01 09:00', 'accepted',
                               1, false, 'x', 0, '')""")
        con.execute("INSERT INTO raw.contacts (load_id, source_row, contact_id) VALUES ('inexact', 2, 'q1')")
        assert any("inexact" in p for p in uncounted_returns(con))
    finally:
        con.close()
