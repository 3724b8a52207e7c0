"""Retention (issue 10, item 10): partners' original files are deleted when their period ends,
with an audit record, without touching a figure, and never outside archive/ and quarantine/.

Real ingest runs into real DuckDB warehouses in tmp folders. Time is moved by passing
``now`` (the moment the periods are measured to), or, for the command line, by ageing the
audit's validated_at; the one stand-in is the crash between recording and deleting, injected
because a crash cannot be produced on demand.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import pkpi.retention
from pkpi.cli import main
from pkpi.ingest import ingest_landing
from pkpi.retention import IDENTIFIER_RULES, apply_retention
from pkpi.settings import Settings
from pkpi.warehouse import connect
from support.returns import MONTH, TODAY, csv_bytes, drop_file, make_reference, table

GOOD = f"contacts/NCT/{MONTH}/contacts.csv"
BAD = f"training/NCT/{MONTH}/training.csv"  # an enum problem: kept for the full period
IDENTIFIERS = f"contacts/ICB/{MONTH}/contacts.csv"  # a Surname column: the short period


def utc_now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings.from_env({"PKPI_DATA_DIR": str(tmp_path / "data"),
                              "PKPI_REFERENCE_DIR": str(make_reference(tmp_path / "reference")),
                              "PKPI_RETENTION_DAYS": "400", "PKPI_IDENTIFIER_RETENTION_DAYS": "30"})


def ingest_three(settings: Settings) -> dict[str, dict]:
    """A good file, a file with a bad code and one holding identifiers; returns their loads."""
    drop_file(settings.landing_dir, GOOD, csv_bytes(table("contacts")))
    drop_file(settings.landing_dir, BAD, csv_bytes(table("training", {(2, "delivery_mode"): "carrier pigeon"})))
    drop_file(settings.landing_dir, IDENTIFIERS,
              csv_bytes(table("contacts", add={"Surname": ["Smith", "Jones", "Brown", "Khan"]})))
    ingest_landing(settings, today=TODAY)
    with connect(settings, read_only=True) as con:
        cur = con.execute("SELECT * FROM audit.loads")
        names = [d[0] for d in cur.description]
        loads = [dict(zip(names, r)) for r in cur.fetchall()]
    by_name = {}
    for load in loads:
        key = {"accepted": GOOD, "rejected": BAD if load["return_type"] == "training" else IDENTIFIERS}[load["status"]]
        by_name[key] = load
    return by_name


def load_folder(settings: Settings, load: dict) -> Path:
    return (settings.data_dir / load["stored_path"]).parent


def deletions(settings: Settings) -> list[dict]:
    with connect(settings, read_only=True) as con:
        cur = con.execute("SELECT * FROM audit.deletions ORDER BY path")
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]


def snapshot(settings: Settings) -> dict[str, list]:
    with connect(settings, read_only=True) as con:
        return {
            "loads": con.execute("SELECT * EXCLUDE (error_rules) FROM audit.loads ORDER BY load_id").fetchall(),
            "contacts": con.execute("SELECT * FROM raw.contacts ORDER BY load_id, source_row").fetchall(),
        }


def test_identifier_files_go_after_the_short_period_and_everything_after_the_long_one(settings):
    loads = ingest_three(settings)
    folders = {name: load_folder(settings, load) for name, load in loads.items()}
    sizes = {name: {p.name: p.stat().st_size for p in folder.iterdir()} for name, folder in folders.items()}
    before = snapshot(settings)
    assert loads[IDENTIFIERS]["error_rules"] == ["column_identifier"]
    assert set(sizes[IDENTIFIERS]) == {"contacts.csv", "errors.csv", "report.html", "validation.json"}

    # Day 29: nothing is due yet.
    assert apply_retention(settings, now=utc_now() + timedelta(days=29)).deletions == []
    assert all(folder.is_dir() for folder in folders.values())

    # Day 31: the file holding identifiers goes, with its errors file and report; the others stay.
    report = apply_retention(settings, now=utc_now() + timedelta(days=31))
    assert {d.path.rsplit("/", 1)[1] for d in report.deleted} == {"contacts.csv", "errors.csv", "report.html", "validation.json"}
    assert report.loads == {loads[IDENTIFIERS]["load_id"]}
    assert not folders[IDENTIFIERS].exists()
    assert not (settings.quarantine_dir / "contacts").exists()  # emptied folders are pruned
    assert folders[GOOD].is_dir() and folders[BAD].is_dir()
    rows = deletions(settings)
    assert [(r["load_id"], r["why"], r["outcome"]) for r in rows] == [(loads[IDENTIFIERS]["load_id"], "identifiers", "deleted")] * 4
    assert {r["path"].rsplit("/", 1)[1]: r["bytes"] for r in rows} == sizes[IDENTIFIERS]
    assert all(r["path"].startswith("quarantine/contacts/ICB/") and r["deleted_at"] is not None for r in rows)
    assert "deleted 4 file(s) of 1 load(s)" in report.summary()

    # A run the next day finds nothing more to do: a deletion is recorded once.
    assert apply_retention(settings, now=utc_now() + timedelta(days=32)).deletions == []

    # After the agreement's period (400 days here) the archive and the rest of quarantine go.
    report = apply_retention(settings, now=utc_now() + timedelta(days=401))
    assert report.loads == {loads[GOOD]["load_id"], loads[BAD]["load_id"]}
    assert {d.why for d in report.deletions} == {"retention"}
    assert list(settings.archive_dir.iterdir()) == [] and list(settings.quarantine_dir.iterdir()) == []
    assert len(deletions(settings)) == 4 + 2 + 4
    # Only files went: every audit row of the loads and every raw row is still there.
    assert snapshot(settings) == before


def test_rows_from_before_error_rules_are_judged_by_their_audit_message(settings):
    loads = ingest_three(settings)
    with connect(settings) as con:  # as a warehouse made before the column existed would hold them
        con.execute("UPDATE audit.loads SET error_rules = NULL")
    assert set(IDENTIFIER_RULES) >= {"column_identifier"}
    report = apply_retention(settings, now=utc_now() + timedelta(days=31))
    assert report.loads == {loads[IDENTIFIERS]["load_id"]}


def test_the_short_period_is_a_setting(settings):
    loads = ingest_three(settings)
    shorter = settings.with_overrides(identifier_retention_days=7)
    report = apply_retention(shorter, now=utc_now() + timedelta(days=8))
    assert report.loads == {loads[IDENTIFIERS]["load_id"]}


def test_a_dry_run_lists_what_is_due_and_changes_nothing(settings):
    loads = ingest_three(settings)
    report = apply_retention(settings, now=utc_now() + timedelta(days=401), dry_run=True)
    assert report.loads == {load["load_id"] for load in loads.values()}
    assert all(d.outcome is None for d in report.deletions)
    assert "dry run, nothing deleted" in report.summary()
    assert all(load_folder(settings, load).is_dir() for load in loads.values())
    assert deletions(settings) == []


def test_a_crash_between_recording_and_deleting_is_finished_by_the_next_run(settings, monkeypatch):
    loads = ingest_three(settings)
    folder = load_folder(settings, loads[IDENTIFIERS])

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("the machine went down")

    monkeypatch.setattr(pkpi.retention, "_delete", crash)
    with pytest.raises(KeyboardInterrupt):
        apply_retention(settings, now=utc_now() + timedelta(days=31))
    # The intention was committed first: three rows, not yet done; the files are all still there.
    pending = deletions(settings)
    assert len(pending) == 4 and all(r["deleted_at"] is None and r["outcome"] is None for r in pending)
    assert folder.is_dir() and len(list(folder.iterdir())) == 4

    monkeypatch.undo()
    report = apply_retention(settings, now=utc_now() + timedelta(days=31))
    assert len(report.deleted) == 4 and not folder.exists()
    done = deletions(settings)
    assert len(done) == 4 and all(r["deleted_at"] is not None and r["outcome"] == "deleted" for r in done)


def test_deleting_never_follows_a_link_or_leaves_archive_and_quarantine(settings, tmp_path):
    loads = ingest_three(settings)
    outside = tmp_path / "outside"
    outside.mkdir()
    precious = outside / "precious.csv"
    precious.write_text("not the platform's to delete\n")

    # 1. A link planted in a load's folder: the link goes, its target stays.
    bad_folder = load_folder(settings, loads[BAD])
    (bad_folder / "planted.csv").symlink_to(precious)
    # 2. A folder on the way replaced by a link to somewhere else: refused, nothing deleted.
    good_folder = load_folder(settings, loads[GOOD])
    partner_dir = good_folder.parent.parent  # archive/contacts/NCT
    moved = outside / "NCT"
    partner_dir.rename(moved)
    partner_dir.symlink_to(moved, target_is_directory=True)
    # 3. An audit row edited to point outside the data folder: refused.
    with connect(settings) as con:
        con.execute("UPDATE audit.loads SET stored_path = ? WHERE load_id = ?",
                    [f"quarantine/../../outside/{precious.name}", loads[IDENTIFIERS]["load_id"]])

    report = apply_retention(settings, now=utc_now() + timedelta(days=401))

    assert precious.read_text() == "not the platform's to delete\n"
    assert sorted(p.name for p in outside.iterdir()) == ["NCT", "precious.csv"]
    assert len(list(moved.rglob("*.csv"))) == 1  # the archived file behind the link is untouched
    by_load = {d.load_id: d for d in report.deletions}
    assert by_load[loads[GOOD]["load_id"]].outcome == "refused"
    assert by_load[loads[IDENTIFIERS]["load_id"]].outcome == "refused"
    assert not bad_folder.exists()  # its own files and the planted link went
    planted = [d for d in report.deletions if d.path.endswith("planted.csv")]
    assert planted and planted[0].outcome == "deleted" and "target left untouched" in planted[0].detail
    refused = [r for r in deletions(settings) if r["outcome"] == "refused"]
    assert {r["load_id"] for r in refused} == {loads[GOOD]["load_id"], loads[IDENTIFIERS]["load_id"]}
    assert "refused 2" in report.summary()


def test_pkpi_retention_says_what_it_deleted(settings, monkeypatch, capsys):
    loads = ingest_three(settings)
    with connect(settings) as con:  # age the audit: the files were judged 31 days ago
        con.execute("UPDATE audit.loads SET validated_at = validated_at - INTERVAL 31 DAY")
    monkeypatch.setenv("PKPI_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("PKPI_REFERENCE_DIR", str(settings.reference_dir))
    monkeypatch.setenv("PKPI_IDENTIFIER_RETENTION_DAYS", "30")

    assert main(["retention", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "dry run, nothing deleted" in out and "4 file(s) of 1 load(s)" in out
    assert load_folder(settings, loads[IDENTIFIERS]).is_dir()

    assert main(["retention"]) == 0
    out = capsys.readouterr().out
    assert "Retention: deleted 4 file(s) of 1 load(s)" in out
    assert f"deleted quarantine/contacts/ICB/{MONTH}/{loads[IDENTIFIERS]['load_id']}/errors.csv" in out
    assert "Smith" not in out  # what is printed names files, never their contents
    assert not load_folder(settings, loads[IDENTIFIERS]).exists()


def test_an_existing_warehouse_gains_the_new_audit_columns_and_table(settings):
    import duckdb

    settings.data_dir.mkdir(parents=True)
    old = duckdb.connect(str(settings.warehouse_path))
    old.execute("CREATE SCHEMA audit")
    old.execute("CREATE TABLE audit.loads (load_id VARCHAR PRIMARY KEY, return_type VARCHAR, partner_code VARCHAR, "
                "period VARCHAR, file_name VARCHAR NOT NULL, landing_path VARCHAR NOT NULL, stored_path VARCHAR, "
                "checksum_sha256 VARCHAR NOT NULL, size_bytes BIGINT NOT NULL, row_count INTEGER, "
                "is_nil BOOLEAN NOT NULL DEFAULT FALSE, received_at TIMESTAMP NOT NULL, validated_at TIMESTAMP NOT NULL, "
                "status VARCHAR NOT NULL, error_count INTEGER NOT NULL DEFAULT 0, duplicate_of VARCHAR, message VARCHAR)")
    old.execute("INSERT INTO audit.loads (load_id, file_name, landing_path, stored_path, checksum_sha256, size_bytes, "
                "received_at, validated_at, status, error_count, message) VALUES ('old-1', 'x.csv', 'x.csv', "
                "'quarantine/_unsorted/old-1/x.csv', 'c', 1, now(), now() - INTERVAL 40 DAY, 'rejected', 1, "
                "'1 problem(s): column_identifier x1')")
    old.close()
    stored = settings.quarantine_dir / "_unsorted" / "old-1" / "x.csv"
    stored.parent.mkdir(parents=True)
    stored.write_text("name\n")
    report = apply_retention(settings)
    assert [(d.load_id, d.why, d.outcome) for d in report.deletions] == [("old-1", "identifiers", "deleted")]
    assert not stored.exists()


def test_the_retention_dag_runs_daily_in_the_writer_pool():
    from airflow.dag_processing.dagbag import DagBag

    from pkpi.airflow.names import RETENTION_DAG_ID, WRITER_POOL

    dag_file = Path(__file__).resolve().parents[1] / "dags" / "partner_returns_retention.py"
    bag = DagBag(dag_folder=str(dag_file))
    assert bag.import_errors == {}
    dag = bag.dags[RETENTION_DAG_ID]
    assert [t.pool for t in dag.tasks] == [WRITER_POOL]
    from airflow.serialization.encoders import coerce_to_core_timetable

    assert coerce_to_core_timetable(dag.timetable).summary == "30 2 * * *"
    assert "audit.deletions" in dag.doc_md


def test_the_marts_figures_and_raw_rows_are_the_same_after_retention(tmp_path):
    from pkpi.build import build_mart
    from support.catalogue import CONTACTS, REDROP, REFERENCE, RETURNS, ReturnFile, ingest_and_build

    names = ReturnFile("contacts/LAA/2025-04/with_names.csv", "2025-05-09 09:00",
                       CONTACTS.rstrip("\n") + ",surname\nz1,K1,2025-04-02,police,6,female,white,nfa,,Smith\n")
    built = ingest_and_build(tmp_path, REFERENCE, RETURNS + [REDROP, names])
    settings = built.settings
    assert any("column_identifier" in o.message for o in built.ingest.rejected)

    def figures():
        with connect(settings, read_only=True) as con:
            return {
                "kpi_values": con.execute("SELECT * FROM mart.kpi_values ORDER BY ALL").fetchall(),
                "submissions": con.execute("SELECT * FROM mart.fct_return_submissions ORDER BY ALL").fetchall(),
                "raw": [con.execute(f"SELECT * FROM raw.{t} ORDER BY ALL").fetchall()
                        for t in ("contacts", "training", "child_deaths", "finance")],
                "loads": con.execute("SELECT * FROM audit.loads ORDER BY load_id").fetchall(),
            }

    before = figures()
    assert before["kpi_values"]
    stored = [p for p in (*settings.archive_dir.rglob("*"), *settings.quarantine_dir.rglob("*")) if p.is_file()]
    report = apply_retention(settings, now=utc_now() + timedelta(days=settings.retention_days + 1))
    assert len(report.deleted) == len(stored) > 0
    assert not [p for p in (*settings.archive_dir.rglob("*"), *settings.quarantine_dir.rglob("*")) if p.is_file()]
    build_mart(settings)
    assert figures() == before


def test_a_load_folder_no_audit_row_knows_is_deleted_after_the_short_period(settings):
    ingest_three(settings)
    # As a run that stopped after writing quarantine but before its audit row would leave it.
    orphan = settings.quarantine_dir / "contacts" / "NCT" / MONTH / "20250101T000000000000-0123456789"
    orphan.mkdir(parents=True)
    (orphan / "contacts.csv").write_text("contact_id,surname\nC1,Smith\n")
    (orphan / "errors.csv").write_text("row,column,value,rule,message\n")
    assert apply_retention(settings, now=utc_now() + timedelta(days=29)).deletions == []
    report = apply_retention(settings, now=utc_now() + timedelta(days=31))
    orphaned = [d for d in report.deletions if d.why == "orphan"]
    assert {d.path.rsplit("/", 1)[1] for d in orphaned} == {"contacts.csv", "errors.csv"}
    assert all(d.load_id == orphan.name and d.outcome == "deleted" for d in orphaned)
    assert not orphan.exists()
