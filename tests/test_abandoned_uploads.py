"""Every file in landing has an outcome: uploads still arriving are shown, abandoned ones recorded.

Temporary, hidden and lock-file names (``.part``, ``.tmp``, ``~$``, ``.name``) are left alone
while fresh and listed by ``pkpi status``; once older than ``PKPI_ABANDONED_AFTER_HOURS`` the
next ingest records each (one audit row, rule ``upload_abandoned``) and quarantines its bytes.
Operating-system files (``.DS_Store``, ``Thumbs.db``) follow the same age rule under rule
``system_file``, without a partner notice. Ages are set with ``os.utime``, never waited for.
"""

from __future__ import annotations

import email
import email.policy
import os
import time

import pytest

from pkpi import landing
from pkpi.cli import main
from pkpi.ingest import ingest_landing
from pkpi.settings import Settings
from pkpi.status import landing_entries
from pkpi.warehouse import connect
from support.returns import CONTACT_PARTNERS, MONTH, TODAY, csv_bytes, drop_file, make_reference, table

C = f"contacts/NCT/{MONTH}"
HOUR = 3600


def _settings(tmp_path, **env) -> Settings:
    return Settings.from_env({"PKPI_DATA_DIR": str(tmp_path / "data"),
                              "PKPI_REFERENCE_DIR": str(make_reference(tmp_path / "reference")), **env})


@pytest.fixture
def settings(tmp_path) -> Settings:
    return _settings(tmp_path)


def _drop(settings: Settings, relative: str, content: bytes, hours_old: float) -> None:
    drop_file(settings.landing_dir, relative, content, time.time() - hours_old * HOUR)


def _audit(settings: Settings) -> dict[str, dict]:
    with connect(settings, read_only=True) as con:
        cur = con.execute("SELECT * FROM audit.loads")
        names = [d[0] for d in cur.description]
        return {r["landing_path"]: r for r in (dict(zip(names, row)) for row in cur.fetchall())}


def _emails(settings: Settings) -> list[email.message.EmailMessage]:
    if not settings.outbox_dir.exists():
        return []
    return [email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
            for p in sorted(settings.outbox_dir.glob("*.eml"))]


OLD = {  # landing path -> rule, for uploads older than the default 24 hours
    f"{C}/march.csv.part": "upload_abandoned",
    f"{C}/april.TMP": "upload_abandoned",
    f"{C}/~$march.xlsx": "upload_abandoned",
    f"{C}/.march.csv": "upload_abandoned",
    f"{C}/.rsync-partial/march.csv": "upload_abandoned",
    f"{C}/.DS_Store": "system_file",
    f"{C}/Thumbs.db": "system_file",
}
FRESH = (f"{C}/may.csv.part", f"{C}/~$may.xlsx", f"{C}/.DS_Store-fresh/.DS_Store", "contacts/Thumbs.db")


def test_abandoned_uploads_are_recorded_and_quarantined_and_fresh_ones_left_alone(settings):
    contents = {path: f"partial upload {i}\n".encode() * 10 for i, path in enumerate(OLD)}
    for path, content in contents.items():
        _drop(settings, path, content, hours_old=30)
    for path in FRESH:
        _drop(settings, path, b"still arriving", hours_old=0.5)

    report = ingest_landing(settings, today=TODAY)

    audit = _audit(settings)
    assert set(audit) == set(OLD)  # one row each, and none for a fresh upload
    assert len(report.outcomes) == len(OLD) and all(o.status == "rejected" for o in report.outcomes)
    for path, rule in OLD.items():
        row = audit[path]
        assert (row["status"], row["message"]) == ("rejected", f"1 problem(s): {rule} x1"), path
        assert (row["return_type"], row["partner_code"], row["period"]) == ("contacts", "NCT", MONTH)
        kept = settings.data_dir / row["stored_path"]
        assert kept.read_bytes() == contents[path]  # the original bytes are kept, not lost
        assert (kept.parent / "errors.csv").read_text(encoding="utf-8").count(rule) == 1
        assert not (settings.landing_dir / path).exists()
    for path in FRESH:
        assert (settings.landing_dir / path).read_bytes() == b"still arriving"

    # The partner hears about an upload that never finished; never about its computer's own files.
    notices = _emails(settings)
    subjects = [str(m["Subject"]) for m in notices]
    assert len(notices) == 5 and all(m["To"] == CONTACT_PARTNERS["NCT"] for m in notices)
    assert not [s for s in subjects if "DS_Store" in s or "Thumbs.db" in s]
    part = next(m for m in notices if "(march.csv.part)" in str(m["Subject"]))
    body = part.get_body(("plain",)).get_content()
    assert "upload_abandoned" in body and "upload the whole file again" in body

    # Running again changes nothing: fresh uploads still wait, nothing is recorded twice.
    assert ingest_landing(settings, today=TODAY).outcomes == []


def test_the_age_is_a_setting(tmp_path):
    strict = _settings(tmp_path, PKPI_ABANDONED_AFTER_HOURS="1")
    assert strict.abandoned_after_hours == 1
    _drop(strict, f"{C}/march.csv.part", b"two hours old", hours_old=2)
    default = strict.with_overrides(abandoned_after_hours=Settings.abandoned_after_hours)
    assert ingest_landing(default, today=TODAY).outcomes == []  # 2 h is not abandoned after 24 h
    (outcome,) = ingest_landing(strict, today=TODAY).outcomes
    assert [p.rule for p in outcome.problems] == ["upload_abandoned"]


def test_the_sensor_wakes_for_everything_that_needs_an_outcome(settings, tmp_path):
    root = settings.landing_dir
    _drop(settings, f"{C}/fresh.csv.part", b"x", hours_old=1)
    _drop(settings, f"{C}/.DS_Store", b"x", hours_old=1)
    assert landing.waiting_returns(root) == []  # only fresh in-progress names: nothing to do yet
    os.symlink(tmp_path, root / C / "link.csv")
    assert [p.name for p in landing.waiting_returns(root)] == ["link.csv"]
    os.unlink(root / C / "link.csv")
    os.mkfifo(root / C / "pipe.csv")
    assert [p.name for p in landing.waiting_returns(root)] == ["pipe.csv"]
    os.unlink(root / C / "pipe.csv")
    _drop(settings, f"{C}/old.csv.part", b"x", hours_old=25)
    assert [p.name for p in landing.waiting_returns(root)] == ["old.csv.part"]
    assert landing.waiting_returns(root, abandoned_after_hours=48) == []


def test_pkpi_status_lists_what_is_arriving_with_its_age(settings, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PKPI_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("PKPI_REFERENCE_DIR", str(settings.reference_dir))
    _drop(settings, f"{C}/march.csv.part", b"arriving", hours_old=0.25)
    _drop(settings, f"{C}/~$march.xlsx", b"lock", hours_old=3)
    _drop(settings, f"{C}/old.csv.part", b"abandoned", hours_old=50)
    _drop(settings, f"{C}/ready.csv", csv_bytes(table("contacts")), hours_old=1)
    _drop(settings, f"{C}/bad\nname\x1b[31m.csv.part", b"arriving", hours_old=2)
    os.symlink(tmp_path, settings.landing_dir / C / "link.csv")

    assert main(["status", "--period", MONTH]) == 0
    out = capsys.readouterr().out

    def line_for(path: str) -> str:
        (line,) = [l for l in out.splitlines() if l.endswith(f"  {path}")]
        return line

    def state_and_age(path: str) -> tuple[str, str]:
        state, age, _size, _path = [part.strip() for part in line_for(path).split("  ") if part.strip()]
        return state, age

    assert state_and_age(f"{C}/march.csv.part") == ("in progress", "15 min")
    assert state_and_age(f"{C}/~$march.xlsx") == ("in progress", "3.0 h")
    assert state_and_age(f"{C}/old.csv.part") == ("abandoned", "2.1 days")
    assert line_for(f"{C}/ready.csv").startswith("waiting")
    assert line_for(f"{C}/link.csv").startswith("not a plain file")
    assert line_for(f"{C}/bad\\nname\\x1b[31m.csv.part").startswith("in progress")
    assert "\x1b" not in out
    assert "abandoned after 24 h" in out

    ingest_landing(settings, today=TODAY)
    states = {i.path: i.state for i in landing_entries(settings)}
    assert states == {f"{C}/march.csv.part": "in progress", f"{C}/~$march.xlsx": "in progress",
                      f"{C}/bad\\nname\\x1b[31m.csv.part": "in progress"}


def test_pkpi_status_says_when_landing_is_empty(settings, monkeypatch, capsys):
    monkeypatch.setenv("PKPI_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("PKPI_REFERENCE_DIR", str(settings.reference_dir))
    assert main(["status", "--period", MONTH]) == 0
    assert "Landing is empty" in capsys.readouterr().out
