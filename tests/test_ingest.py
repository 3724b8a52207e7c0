"""Ingest: what happens to each file in landing (docs/returns/README.md) and the commands
an engineer uses around it (`pkpi ingest`, `pkpi templates`, `pkpi status`).

Real DuckDB warehouses in tmp folders, real files; the only stand-ins are the two failures the
atomicity tests inject, because a disk or database failure cannot be produced on demand.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
from datetime import date, datetime
from pathlib import Path

import duckdb
import pytest

import pkpi.ingest
import pkpi.settling
from pkpi.contracts import get_contract
from pkpi.cli import main
from pkpi.ingest import IngestIncomplete, ingest_landing
from pkpi.settings import Settings
from pkpi.warehouse import connect
from support.smtp import smtp_server, smtp_settings  # noqa: F401 - fixture
from support.returns import (
    FINANCIAL_YEAR, HEADERS, MONTH, TODAY, csv_bytes, drop_file, make_reference, table,
)

CONTACTS = f"contacts/NCT/{MONTH}"
UPLOADED = datetime(2025, 4, 5, 10, 30).timestamp()  # before every due date in the schedule


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings.from_env({"PKPI_DATA_DIR": str(tmp_path / "data"),
                              "PKPI_REFERENCE_DIR": str(make_reference(tmp_path / "reference"))})


def contacts_v1() -> bytes:
    return csv_bytes(table("contacts"))


def contacts_v2() -> bytes:
    """A corrected resubmission: one contact withdrawn, one age fixed."""
    rows = table("contacts", {(3, "child_age_years"): "13"})
    return csv_bytes(rows[:-1])


def bad_contacts() -> bytes:
    return csv_bytes(table("contacts", {(2, "sex"): "f", (4, "child_age_years"): "18"}))


def audit_rows(settings: Settings) -> list[dict]:
    with connect(settings, read_only=True) as con:
        cur = con.execute("SELECT * FROM audit.loads ORDER BY received_at, validated_at, load_id")
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]


def raw_rows(settings: Settings, return_type: str = "contacts") -> list[tuple]:
    with connect(settings, read_only=True) as con:
        return con.execute(f"SELECT load_id, source_row FROM raw.{return_type} ORDER BY load_id, source_row").fetchall()


def latest_accepted(settings: Settings, return_type: str, partner: str, period: str) -> str:
    """The load the mart counts: the latest accepted one (section 'Warehouse layout' of the brief)."""
    with connect(settings, read_only=True) as con:
        return con.execute(
            """SELECT load_id FROM audit.loads WHERE status = 'accepted' AND return_type = ?
               AND partner_code = ? AND period = ?
               ORDER BY arrival_seq DESC LIMIT 1""",
            [return_type, partner, period],
        ).fetchone()[0]


def landing_files(settings: Settings) -> list[Path]:
    return [p for p in settings.landing_dir.rglob("*") if p.is_file()]


def test_accepted_file_is_archived_byte_for_byte_and_loaded_with_its_load_id(settings):
    content = contacts_v1()
    drop_file(settings.landing_dir, f"{CONTACTS}/march.csv", content, UPLOADED)

    report = ingest_landing(settings, today=TODAY)

    (outcome,) = report.outcomes
    assert outcome.status == "accepted" and outcome.row_count == 4
    (audit,) = audit_rows(settings)
    assert audit["load_id"] == outcome.load_id
    assert (audit["return_type"], audit["partner_code"], audit["period"]) == ("contacts", "NCT", MONTH)
    assert audit["file_name"] == "march.csv"
    assert audit["landing_path"] == f"{CONTACTS}/march.csv"
    assert audit["checksum_sha256"] == hashlib.sha256(content).hexdigest()
    assert audit["size_bytes"] == len(content)
    assert (audit["row_count"], audit["is_nil"], audit["error_count"]) == (4, False, 0)
    assert audit["received_at"] == datetime.fromtimestamp(UPLOADED)
    assert audit["validated_at"] >= audit["received_at"]
    archived = settings.data_dir / audit["stored_path"]
    assert archived == settings.archive_dir / CONTACTS / outcome.load_id / "march.csv"
    assert archived.read_bytes() == content
    assert landing_files(settings) == []
    assert raw_rows(settings) == [(outcome.load_id, n) for n in (2, 3, 4, 5)]
    with connect(settings, read_only=True) as con:
        first = con.execute("SELECT contact_id, contact_date, child_age_years, outcome, referral_date "
                            "FROM raw.contacts WHERE source_row = 3").fetchone()
    assert first == ("C002", date(2025, 3, 10), 12, "referral", date(2025, 3, 11))


def test_resubmission_supersedes_and_history_is_kept(settings):
    drop_file(settings.landing_dir, f"{CONTACTS}/march.csv", contacts_v1(), UPLOADED)
    first = ingest_landing(settings, today=TODAY).accepted[0]
    drop_file(settings.landing_dir, f"{CONTACTS}/march-corrected.csv", contacts_v2(), UPLOADED + 86400)
    second = ingest_landing(settings, today=TODAY).accepted[0]

    statuses = [(a["load_id"], a["status"]) for a in audit_rows(settings)]
    assert statuses == [(first.load_id, "accepted"), (second.load_id, "accepted")]
    assert latest_accepted(settings, "contacts", "NCT", MONTH) == second.load_id
    loads = [load_id for load_id, _ in raw_rows(settings)]
    assert loads.count(first.load_id) == 4 and loads.count(second.load_id) == 3  # history stays


def test_the_latest_is_the_file_taken_last_not_the_later_timestamp(settings):
    """Issue 11 item 6: a file taken later supersedes, whatever modification time it carries
    (a partner's tool can set one in the past); see tests/test_arrival_order.py."""
    drop_file(settings.landing_dir, f"{CONTACTS}/newer.csv", contacts_v2(), UPLOADED + 3600)
    first = ingest_landing(settings, today=TODAY).accepted[0]
    drop_file(settings.landing_dir, f"{CONTACTS}/older.csv", contacts_v1(), UPLOADED)
    taken_last = ingest_landing(settings, today=TODAY).accepted[0]
    assert taken_last.status == "accepted" and first.load_id != taken_last.load_id
    assert latest_accepted(settings, "contacts", "NCT", MONTH) == taken_last.load_id


def test_two_versions_in_one_run_are_processed_oldest_first(settings):
    drop_file(settings.landing_dir, f"{CONTACTS}/b-later.csv", contacts_v2(), UPLOADED + 60)
    drop_file(settings.landing_dir, f"{CONTACTS}/z-earlier.csv", contacts_v1(), UPLOADED)
    report = ingest_landing(settings, today=TODAY)
    assert [o.file_name for o in report.outcomes] == ["z-earlier.csv", "b-later.csv"]
    assert latest_accepted(settings, "contacts", "NCT", MONTH) == report.outcomes[1].load_id


def test_same_bytes_dropped_twice_is_a_duplicate_and_not_loaded_again(settings):
    drop_file(settings.landing_dir, f"{CONTACTS}/march.csv", contacts_v1(), UPLOADED)
    first = ingest_landing(settings, today=TODAY).outcomes[0]
    drop_file(settings.landing_dir, f"{CONTACTS}/march (1).csv", contacts_v1(), UPLOADED + 600)

    report = ingest_landing(settings, today=TODAY)

    (again,) = report.outcomes
    assert again.status == "duplicate"
    assert report.duplicates == [again] and report.accepted == []
    audit = audit_rows(settings)
    assert [a["status"] for a in audit] == ["accepted", "duplicate"]
    assert audit[1]["duplicate_of"] == first.load_id
    assert audit[1]["checksum_sha256"] == audit[0]["checksum_sha256"]
    assert len(raw_rows(settings)) == 4
    assert latest_accepted(settings, "contacts", "NCT", MONTH) == first.load_id
    assert landing_files(settings) == []


def test_mixed_batch_loads_the_good_and_quarantines_the_bad(settings):
    drop_file(settings.landing_dir, f"{CONTACTS}/march.csv", contacts_v1(), UPLOADED)
    drop_file(settings.landing_dir, f"training/NNC/{MONTH}/training.csv",
              csv_bytes(table("training", {(2, "course_code"): "NOT-A-COURSE"})), UPLOADED + 1)
    drop_file(settings.landing_dir, f"child_deaths/ICB/{MONTH}/cdop.csv",
              csv_bytes(table("child_deaths")), UPLOADED + 2)
    drop_file(settings.landing_dir, f"finance/WNC/{FINANCIAL_YEAR}/finance.csv", b"", UPLOADED + 3)

    report = ingest_landing(settings, today=TODAY)

    assert report.summary() == "4 file(s): 2 accepted, 2 rejected, 0 duplicate(s)"
    assert {o.return_type for o in report.accepted} == {"contacts", "child_deaths"}
    assert report.changed_return_types == {"contacts", "child_deaths"}
    assert {(o.return_type, o.problems[0].rule) for o in report.rejected} == {
        ("training", "reference"), ("finance", "file_empty")}
    assert len(raw_rows(settings, "contacts")) == 4
    assert len(raw_rows(settings, "child_deaths")) == 3
    assert raw_rows(settings, "training") == [] and raw_rows(settings, "finance") == []
    assert landing_files(settings) == []


def test_a_failure_half_way_through_a_load_leaves_nothing_and_the_file_waits(settings, monkeypatch):
    """The rows and the audit row are one transaction: if the audit insert fails, no rows stay."""
    drop_file(settings.landing_dir, f"{CONTACTS}/march.csv", contacts_v1(), UPLOADED)
    calls = []
    real_load_rows = pkpi.ingest._load_rows

    def load_rows(con, *args):
        real_load_rows(con, *args)
        # The rows are in, inside the open transaction, when the audit insert fails.
        calls.append(con.execute("SELECT count(*) FROM raw.contacts").fetchone()[0])

    def broken_audit(*args, **kwargs):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(pkpi.ingest, "_load_rows", load_rows)
    monkeypatch.setattr(pkpi.ingest, "_audit", broken_audit)
    with pytest.raises(IngestIncomplete, match="simulated") as failed:
        ingest_landing(settings, today=TODAY)

    assert isinstance(failed.value.__cause__, OSError)
    assert calls == [4]
    assert raw_rows(settings) == []
    assert audit_rows(settings) == []
    assert [p.name for p in landing_files(settings)] == ["march.csv"]
    assert not settings.archive_dir.exists() or not any(settings.archive_dir.rglob("*.csv"))

    monkeypatch.undo()
    report = ingest_landing(settings, today=TODAY)
    assert [o.status for o in report.outcomes] == ["accepted"]
    assert len(raw_rows(settings)) == 4


def test_a_raw_table_that_refuses_the_rows_rolls_the_load_back(settings):
    """A real database failure: raw.contacts gained a NOT NULL column that the load never fills."""
    ddl = get_contract("contacts").raw_table_ddl()
    with connect(settings) as con:
        con.execute("DROP TABLE raw.contacts")
        con.execute(ddl.replace("\n)", ",\n  reviewed_by VARCHAR NOT NULL\n)"))
    drop_file(settings.landing_dir, f"{CONTACTS}/march.csv", contacts_v1(), UPLOADED)

    with pytest.raises(IngestIncomplete, match="reviewed_by") as failed:
        ingest_landing(settings, today=TODAY)
    assert isinstance(failed.value.__cause__, duckdb.ConstraintException)

    assert audit_rows(settings) == []
    assert landing_files(settings) != []
    with connect(settings) as con:
        assert con.execute("SELECT count(*) FROM raw.contacts").fetchone()[0] == 0
        con.execute("DROP TABLE raw.contacts")  # repaired: ensure_schema recreates it
    assert [o.status for o in ingest_landing(settings, today=TODAY).outcomes] == ["accepted"]


def test_a_system_failure_on_one_file_does_not_stop_the_others(settings, monkeypatch):
    """The broken file waits in landing; the other partner's file is loaded in the same run."""
    drop_file(settings.landing_dir, f"{CONTACTS}/march.csv", contacts_v1(), UPLOADED)
    drop_file(settings.landing_dir, f"child_deaths/ICB/{MONTH}/nil.csv", csv_bytes([HEADERS["child_deaths"]]),
              UPLOADED + 1)
    real_load_rows = pkpi.ingest._load_rows

    def load_rows(con, return_type, *args):
        if return_type == "contacts":
            raise OSError("disk full (simulated)")
        real_load_rows(con, return_type, *args)

    monkeypatch.setattr(pkpi.ingest, "_load_rows", load_rows)
    with pytest.raises(IngestIncomplete) as failed:
        ingest_landing(settings, today=TODAY)
    assert [o.status for o in failed.value.report.outcomes] == ["accepted"]
    assert [p.name for p, _ in failed.value.failures] == ["march.csv"]
    assert [p.name for p in landing_files(settings)] == ["march.csv"]
    assert [(r["return_type"], r["status"]) for r in audit_rows(settings)] == [("child_deaths", "accepted")]


def test_running_ingest_again_is_harmless(settings):
    drop_file(settings.landing_dir, f"{CONTACTS}/march.csv", contacts_v1(), UPLOADED)
    drop_file(settings.landing_dir, f"{CONTACTS}/bad.csv", bad_contacts(), UPLOADED + 1)
    ingest_landing(settings, today=TODAY)
    before = audit_rows(settings), raw_rows(settings)

    report = ingest_landing(settings, today=TODAY)

    assert report.outcomes == []
    assert (audit_rows(settings), raw_rows(settings)) == before


def test_a_file_left_in_landing_after_its_load_committed_is_finished_not_loaded_twice(settings, monkeypatch):
    """A failure between the commit and removing the file: the next run finishes that outcome
    (the file leaves landing) instead of judging the same bytes again as a duplicate of itself."""
    drop_file(settings.landing_dir, f"{CONTACTS}/march.csv", contacts_v1(), UPLOADED)

    def stopped(*args):
        raise OSError("stopped before leaving landing (simulated)")

    monkeypatch.setattr(pkpi.settling, "_leave_landing", stopped)
    with pytest.raises(IngestIncomplete):
        ingest_landing(settings, today=TODAY)
    monkeypatch.undo()
    assert len(landing_files(settings)) == 1
    assert [r["status"] for r in audit_rows(settings)] == ["accepted"]

    report = ingest_landing(settings, today=TODAY)

    assert report.outcomes == []  # the outcome was the first run's; this one only finished it
    assert [r["status"] for r in audit_rows(settings)] == ["accepted"]
    assert len(raw_rows(settings)) == 4
    assert landing_files(settings) == []
    (stored,) = [r["stored_path"] for r in audit_rows(settings)]
    assert (settings.data_dir / stored).read_bytes() == contacts_v1()


def test_files_still_uploading_are_left_alone(settings):
    drop_file(settings.landing_dir, f"{CONTACTS}/march.csv.part", contacts_v1())
    drop_file(settings.landing_dir, f"{CONTACTS}/~$march.xlsx", b"lock")
    assert ingest_landing(settings, today=TODAY).outcomes == []
    assert len(landing_files(settings)) == 2


def test_rejection_notice_goes_to_the_outbox_once(settings):
    """No SMTP configured: the partner's notice is written as .eml and recorded in the ledger."""
    drop_file(settings.landing_dir, f"{CONTACTS}/march.csv", bad_contacts(), UPLOADED)
    rejected = ingest_landing(settings, today=TODAY).rejected[0]

    (eml,) = settings.outbox_dir.glob("*.eml")
    message = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    assert message["To"] == "data@nct.example"
    assert "march.csv" in message["Subject"] and "not accepted" in message["Subject"]
    body = message.get_body(("plain",)).get_content()
    assert "enum (column sex)" in body and "range (column child_age_years)" in body
    assert rejected.load_id in body
    with connect(settings, read_only=True) as con:
        ledger = con.execute("SELECT kind, status, partner_code, period, recipients FROM audit.emails").fetchall()
    assert ledger == [("rejection", "written_to_outbox", "NCT", MONTH, "data@nct.example")]

    # The same bad bytes again: rejected again (and audited), but the partner is not told twice.
    drop_file(settings.landing_dir, f"{CONTACTS}/march.csv", bad_contacts(), UPLOADED + 60)
    assert [o.status for o in ingest_landing(settings, today=TODAY).outcomes] == ["rejected"]
    assert len(list(settings.outbox_dir.glob("*.eml"))) == 1
    assert [a["status"] for a in audit_rows(settings)] == ["rejected", "rejected"]


def test_a_notice_left_in_the_outbox_goes_out_once_when_smtp_is_configured(settings, smtp_server):
    """A notice written while no mail server was set is sent by the next ingest that has one, once."""
    drop_file(settings.landing_dir, f"{CONTACTS}/march.csv", bad_contacts(), UPLOADED)
    ingest_landing(settings, today=TODAY)
    assert smtp_server.received == []
    with_smtp = smtp_settings(settings, smtp_server.port, retries=0)
    assert ingest_landing(with_smtp, today=TODAY).outcomes == []  # nothing new in landing
    [received] = smtp_server.received
    assert received.rcpt_tos == ["data@nct.example"] and "march.csv" in received.message["Subject"]
    ingest_landing(with_smtp, today=TODAY)
    assert len(smtp_server.received) == 1


def test_no_notice_when_the_partner_has_no_data_contact(settings):
    drop_file(settings.landing_dir, f"training/NNC/{MONTH}/t.csv",
              csv_bytes(table("training", {(2, "delivery_mode"): "?"})), UPLOADED)
    assert len(ingest_landing(settings, today=TODAY).rejected) == 1
    assert not settings.outbox_dir.exists() or not list(settings.outbox_dir.glob("*.eml"))


# --- the command line ------------------------------------------------------------------------


@pytest.fixture
def cli_env(settings, monkeypatch):
    monkeypatch.setenv("PKPI_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("PKPI_REFERENCE_DIR", str(settings.reference_dir))
    return settings


def test_pkpi_ingest_exits_0_when_returns_are_rejected(cli_env, capsys):
    settings = cli_env
    drop_file(settings.landing_dir, f"training/NNC/{MONTH}/t.csv", b"", UPLOADED)
    drop_file(settings.landing_dir, f"child_deaths/ICB/{MONTH}/nil.csv", csv_bytes([HEADERS["child_deaths"]]), UPLOADED)

    assert main(["ingest"]) == 0

    out = capsys.readouterr().out
    assert "2 file(s): 1 accepted, 1 rejected" in out
    assert f"rejected training/NNC/{MONTH}/t.csv" in out
    assert "quarantine/training/NNC/" in out


def test_a_file_outside_the_layout_is_named_by_what_is_known_never_none(cli_env, capsys, caplog):
    settings = cli_env
    drop_file(settings.landing_dir, "training/NCT/oops.csv", csv_bytes([HEADERS["training"]]), UPLOADED)

    with caplog.at_level("INFO", logger="pkpi.ingest"):
        assert main(["ingest"]) == 0
    out = capsys.readouterr().out
    assert "rejected training/NCT/oops.csv: 1 problem(s), rules path_layout (see quarantine/" in out
    assert "rejected training/NCT/oops.csv: " in caplog.text
    [notice] = list(settings.outbox_dir.glob("*.eml"))
    assert "training_NCT_" in notice.name
    subject = email.message_from_bytes(notice.read_bytes(), policy=email.policy.default)["Subject"]
    assert "an unknown period (oops.csv)" in subject
    with connect(settings, read_only=True) as con:
        [(key,)] = con.execute("SELECT idempotency_key FROM audit.outbox").fetchall()
    assert key.startswith("rejection:training:NCT:")
    for text in (out, caplog.text, notice.name, subject, key):
        assert "None" not in text, text


def test_pkpi_usage_error_exits_2(cli_env, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["status", "--period", "2025-13"])
    assert exit_.value.code == 2


def test_pkpi_templates_writes_csv_and_xlsx_per_return_type(cli_env, tmp_path, capsys):
    from openpyxl import load_workbook

    folder = tmp_path / "templates"
    assert main(["templates", str(folder)]) == 0
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted(f"{rt}.{ext}" for rt in HEADERS for ext in ("csv", "xlsx"))
    for rt, header in HEADERS.items():
        assert (folder / f"{rt}.csv").read_text(encoding="utf-8").strip() == ",".join(header)
        workbook = load_workbook(folder / f"{rt}.xlsx")
        sheet = workbook[rt]
        assert workbook.sheetnames[0] == rt
        assert [c.value for c in sheet[1]] == header
        validated = {str(rule.sqref).split(":")[0].rstrip("0123456789") for rule in sheet.data_validations.dataValidation}
        coded_letters = {chr(ord("A") + i) for i, c in enumerate(get_contract(rt).columns) if c.is_coded}
        assert validated == coded_letters, rt  # the lists themselves: tests/test_partner_pages.py
        assert all(rule.type == "list" for rule in sheet.data_validations.dataValidation)
        notes = workbook["notes"]
        assert [c.value for c in notes[1]] == ["column", "required", "type", "rule"]
        assert [notes.cell(row=i + 2, column=1).value for i in range(len(header))] == header


def test_untouched_templates_are_accepted_as_nil_returns(cli_env, tmp_path, capsys):
    settings = cli_env
    folder = tmp_path / "templates"
    main(["templates", str(folder)])
    drop_file(settings.landing_dir, f"child_deaths/ICB/{MONTH}/nil.csv", (folder / "child_deaths.csv").read_bytes())
    drop_file(settings.landing_dir, f"finance/NNC/{FINANCIAL_YEAR}/nil.xlsx", (folder / "finance.xlsx").read_bytes())

    report = ingest_landing(settings, today=TODAY)

    assert [(o.return_type, o.status, o.row_count) for o in report.outcomes] in (
        [("child_deaths", "accepted", 0), ("finance", "accepted", 0)],
        [("finance", "accepted", 0), ("child_deaths", "accepted", 0)],
    )
    assert all(a["is_nil"] for a in audit_rows(settings))


def test_pkpi_status_reports_received_late_missing_and_rejected(cli_env, capsys):
    settings = cli_env
    due_contacts = datetime(2025, 4, 10, 12).timestamp()  # contacts are due 10 days after the month
    drop_file(settings.landing_dir, f"{CONTACTS}/march.csv", contacts_v1(), due_contacts - 86400)
    drop_file(settings.landing_dir, f"training/NNC/{MONTH}/t.csv", b"", UPLOADED)
    drop_file(settings.landing_dir, f"training/WNC/{MONTH}/t.csv", csv_bytes(table("training")),
              datetime(2025, 4, 20, 9).timestamp())  # due 2025-04-15
    ingest_landing(settings, today=TODAY)
    capsys.readouterr()

    assert main(["status", "--period", MONTH]) == 0

    lines = capsys.readouterr().out.splitlines()

    def state(return_type: str, partner: str) -> str:
        (line,) = [l for l in lines if l.split()[:3] == [return_type, partner, MONTH]]
        return line.split()[4]

    assert state("contacts", "NCT") == "received_on_time"
    assert state("training", "NNC") == "rejected"
    assert state("training", "WNC") == "received_late"
    assert state("training", "NPOL") == "missing"
    assert state("child_deaths", "ICB") == "missing"
