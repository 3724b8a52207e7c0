"""Which version of a return counts is decided by the order of arrival (issue 11, item 6).

A partner's tool can set a file's modification time to anything: in the past (a copy that keeps
the source's time, or a backdated file) or in the future (a wrong clock). Supersession must not
follow it: the platform numbers every audit row in the order it took the files
(``audit.loads.arrival_seq``, a sequence), and the duplicate check, ``pkpi status`` and the mart
pick the current version by that number. received_at stays the basis of on time, but never
later than when the platform took the file: a future time is replaced and noted.

Real files, real ingest runs, a real DuckDB warehouse and a real dbt build.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import duckdb
import pytest

from pkpi.build import build_mart
from pkpi.ingest import ingest_landing
from pkpi.settings import Settings
from pkpi.status import return_states
from pkpi.warehouse import connect
from support.returns import MONTH, TODAY, csv_bytes, drop_file, make_reference, table

CONTACTS = f"contacts/NCT/{MONTH}"
TRAINING = f"training/ICB/{MONTH}"
ON_TIME = datetime(2025, 4, 5, 10, 30).timestamp()  # before the contacts due date, 2025-04-10
LATE = datetime(2025, 4, 12, 10, 30).timestamp()  # after it


def _settings(root) -> Settings:
    return Settings.from_env({"PKPI_DATA_DIR": str(root / "data"),
                              "PKPI_REFERENCE_DIR": str(make_reference(root / "reference"))})


def contacts_first() -> bytes:
    return csv_bytes(table("contacts"))


def contacts_corrected() -> bytes:
    """The resubmission: one contact withdrawn."""
    return csv_bytes(table("contacts")[:-1])


def training(version: str) -> bytes:
    return csv_bytes(table("training", {(2, "record_id"): f"T-{version}"}))


def _audit(settings: Settings, where: str = "TRUE") -> list[dict]:
    with connect(settings, read_only=True) as con:
        cur = con.execute(f"SELECT * FROM audit.loads WHERE {where} ORDER BY arrival_seq")
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]


def _ingest_one(settings: Settings, relative: str, content: bytes, mtime: float):
    drop_file(settings.landing_dir, relative, content, mtime)
    (outcome,) = ingest_landing(settings, today=TODAY).outcomes
    return outcome


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    """Two returns with a history that timestamps would get wrong, ingested and built once.

    contacts: the corrected resubmission carries an *older* modification time than the first
    version. training: A, then B, then A's bytes again (a partner reverting), then A once more.
    """
    settings = _settings(tmp_path_factory.mktemp("arrival"))
    first = _ingest_one(settings, f"{CONTACTS}/march.csv", contacts_first(), LATE)
    corrected = _ingest_one(settings, f"{CONTACTS}/march-corrected.csv", contacts_corrected(), ON_TIME)
    a1 = _ingest_one(settings, f"{TRAINING}/march.csv", training("A"), ON_TIME)
    b = _ingest_one(settings, f"{TRAINING}/march-b.csv", training("B"), ON_TIME + 3600)
    a2 = _ingest_one(settings, f"{TRAINING}/march.csv", training("A"), ON_TIME)  # same bytes, same time
    a3 = _ingest_one(settings, f"{TRAINING}/march.csv", training("A"), ON_TIME)
    build = build_mart(settings)
    return dict(settings=settings, first=first, corrected=corrected, a1=a1, b=b, a2=a2, a3=a3, build=build)


def _mart(settings: Settings, sql: str) -> list[tuple]:
    with connect(settings, read_only=True) as con:
        return con.execute(sql).fetchall()


def test_a_resubmission_with_an_older_modification_time_supersedes(history):
    settings, first, corrected = history["settings"], history["first"], history["corrected"]
    assert (first.status, corrected.status) == ("accepted", "accepted")
    rows = _audit(settings, "return_type = 'contacts'")
    assert [r["load_id"] for r in rows] == [first.load_id, corrected.load_id]  # taken in this order
    assert rows[0]["arrival_seq"] < rows[1]["arrival_seq"]
    assert rows[1]["received_at"] < rows[0]["received_at"]  # although its file says it is older
    # The mart counts the version taken last: its rows only, nothing of the first version.
    loads = _mart(settings, "SELECT DISTINCT load_id FROM mart.fct_contacts")
    assert loads == [(corrected.load_id,)]
    (count,) = _mart(settings, "SELECT count(*) FROM mart.fct_contacts")[0]
    assert count == corrected.row_count == first.row_count - 1
    # On time still follows received_at (the upload's own time, not in the future): the
    # resubmission says 2025-04-05, before the due date.
    (status,) = _mart(settings, "SELECT status FROM mart.fct_return_submissions "
                                f"WHERE return_type = 'contacts' AND partner_code = 'NCT' AND period = '{MONTH}'")[0]
    assert status == "received_on_time"
    # pkpi status agrees with the mart.
    (state,) = [s for s in return_states(settings, MONTH, today=TODAY) if s.expected.return_type == "contacts"]
    assert state.state == "received_on_time" and "march-corrected.csv" in state.detail


def test_a_re_drop_of_an_earlier_version_makes_it_current_again(history):
    """A, B, A: the third file is A's bytes, but the current version was B, so it is loaded
    again and counts; a fourth drop of the same bytes is then a duplicate of the third."""
    settings, a1, b, a2, a3 = (history[k] for k in ("settings", "a1", "b", "a2", "a3"))
    assert [o.status for o in (a1, b, a2, a3)] == ["accepted", "accepted", "accepted", "duplicate"]
    assert a3.message == f"duplicate of {a2.load_id}"
    loads = _mart(settings, "SELECT DISTINCT load_id FROM mart.fct_training_events WHERE partner_code = 'ICB'")
    assert loads == [(a2.load_id,)]
    seqs = [r["arrival_seq"] for r in _audit(settings, "return_type = 'training'")]
    assert seqs == sorted(seqs) and len(set(seqs)) == 4


def test_a_modification_time_in_the_future_is_clamped_and_noted(tmp_path):
    settings = _settings(tmp_path)
    future = time.time() + 400 * 86400  # a partner's clock a year and more ahead
    before = datetime.utcnow()
    outcome = _ingest_one(settings, f"{CONTACTS}/march.csv", contacts_first(), future)
    assert outcome.status == "accepted"
    (row,) = _audit(settings)
    assert before - timedelta(seconds=1) <= row["received_at"] <= row["validated_at"]
    assert row["modified_at"] == datetime.utcfromtimestamp(future)
    assert "in the future" in row["message"] and f"{row['modified_at']:%Y-%m-%d}" in row["message"]
    # A future-dated first version cannot win forever: a resubmission taken later supersedes.
    later = _ingest_one(settings, f"{CONTACTS}/march-corrected.csv", contacts_corrected(), ON_TIME)
    with connect(settings, read_only=True) as con:
        (current,) = con.execute(
            "SELECT load_id FROM audit.loads WHERE status = 'accepted' ORDER BY arrival_seq DESC LIMIT 1").fetchone()
    assert current == later.load_id


def test_a_warehouse_from_before_arrival_order_is_upgraded_in_its_old_order(tmp_path):
    """Old rows are numbered by the order "latest" meant before (received_at, validated_at,
    load_id), whatever order they were written in; new files are numbered after them."""
    settings = _settings(tmp_path)
    settings.data_dir.mkdir(parents=True)
    con = duckdb.connect(str(settings.warehouse_path))
    con.execute("CREATE SCHEMA audit")
    con.execute("""CREATE TABLE audit.loads (load_id VARCHAR PRIMARY KEY, return_type VARCHAR,
        partner_code VARCHAR, period VARCHAR, file_name VARCHAR NOT NULL, landing_path VARCHAR NOT NULL,
        stored_path VARCHAR, checksum_sha256 VARCHAR NOT NULL, size_bytes BIGINT NOT NULL, row_count INTEGER,
        is_nil BOOLEAN NOT NULL DEFAULT FALSE, received_at TIMESTAMP NOT NULL, validated_at TIMESTAMP NOT NULL,
        status VARCHAR NOT NULL, error_count INTEGER NOT NULL DEFAULT 0, duplicate_of VARCHAR, message VARCHAR)""")
    for load_id, received in (("old-later", "2025-04-08 09:00"), ("old-earlier", "2025-04-01 09:00")):
        con.execute("INSERT INTO audit.loads (load_id, return_type, partner_code, period, file_name, landing_path, "
                    "checksum_sha256, size_bytes, received_at, validated_at, status) "
                    "VALUES (?, 'contacts', 'NCT', ?, 'x.csv', 'x.csv', ?, 1, ?, ?, 'accepted')",
                    [load_id, MONTH, load_id.ljust(64, "0"), received, received])
    con.close()
    new = _ingest_one(settings, f"{CONTACTS}/march.csv", contacts_first(), ON_TIME - 86400 * 30)
    order = [(r["load_id"], r["arrival_seq"]) for r in _audit(settings)]
    assert order == [("old-earlier", 1), ("old-later", 2), (new.load_id, 3)]
