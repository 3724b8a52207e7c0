"""Landing holds plain files only, and a hostile name never breaks the run or the notice.

One real ``pkpi ingest`` run (module fixture) over a landing folder an attacker or a careless
partner prepared: symbolic links to a secret file outside landing, to a folder, a dangling link,
a symlinked partner folder, a named pipe (the run must not hang), a unix socket, and files
whose names carry newlines, escape sequences, bidi overrides and bytes that are not UTF-8.
Each entry must get exactly one audit row, be removed from landing (the link, never its
target), and no byte of the secret may reach the data folder, the raw tables, the audit, an
email in the outbox, a log line or the printed summary.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import io
import logging
import os
import socket
import stat
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import pytest

from pkpi import landing
from pkpi.cli import main
from pkpi.ingest import UNREAD_CHECKSUM, ingest_landing
from pkpi.landing import safe_name
from pkpi.settings import Settings
from pkpi.warehouse import connect
from support.logs import LogCapture
from support.returns import CONTACT_PARTNERS, MONTH, csv_bytes, drop_file, make_reference, table

pytestmark = pytest.mark.timeout(300)  # a FIFO that is opened for reading would hang forever

MARKER = b"SECRET7731"
SECRET_RETURN = csv_bytes(table("contacts", {(2, "child_id"): "K-SECRET7731", (3, "contact_id"): "C-SECRET7731"}))
C = f"contacts/NCT/{MONTH}"

LINK_TO_FILE = f"{C}/link.csv"
DANGLING_LINK = f"{C}/dangling.csv"
LINK_TO_FOLDER = f"{C}/folder.csv"
LINKED_PERIOD = "contacts/NCT/2025-02"
LINKED_PARTNER = "child_deaths/ICB"
FIFO = f"{C}/pipe.csv"
SOCKET = f"{C}/socket.csv"
UNREAD = (LINK_TO_FILE, DANGLING_LINK, LINK_TO_FOLDER, LINKED_PERIOD, LINKED_PARTNER, FIFO, SOCKET)

CONTROL_NAME = "march\r\nBcc: attacker@evil.example\x1b[2J\u202egpj.csv"  # header injection, ESC, bidi
NON_UTF8_NAME = b"caf\xe9\x85.csv"  # Latin-1 bytes, and a C1 control (NEL) once decoded as Latin-1
CONTROL_FOLDER = f"contacts/NCT/{MONTH}\n\t/x.csv"
GOOD = f"{C}/zz-good.csv"


@dataclass
class Run:
    settings: Settings
    exit_status: int
    printed: str
    logs: str
    audit: list[dict]
    emails: list[email.message.EmailMessage]
    eml_bytes: list[bytes]
    secret_dir: Path


def _bad_contacts(tag: str) -> bytes:
    return csv_bytes(table("contacts", {(2, "sex"): "f", (3, "contact_id"): tag}))


def _make_socket(path: Path) -> None:
    # AF_UNIX paths are limited to ~108 bytes: bind by a relative name from inside the folder.
    here = os.getcwd()
    os.chdir(path.parent)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.bind(path.name)
    finally:
        os.chdir(here)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Run:
    base = tmp_path_factory.mktemp("hostile")
    settings = Settings.from_env({"PKPI_DATA_DIR": str(base / "data"),
                                  "PKPI_REFERENCE_DIR": str(make_reference(base / "reference"))})
    secret_dir = base / "outside"
    (secret_dir / MONTH).mkdir(parents=True)
    (secret_dir / "secret.csv").write_bytes(SECRET_RETURN)
    (secret_dir / MONTH / "secret.csv").write_bytes(SECRET_RETURN)
    root = settings.landing_dir
    folder = root / C
    folder.mkdir(parents=True)
    (root / "child_deaths").mkdir()
    os.symlink(secret_dir / "secret.csv", root / LINK_TO_FILE)
    os.symlink(secret_dir / "nowhere.csv", root / DANGLING_LINK)
    os.symlink(secret_dir, root / LINK_TO_FOLDER)
    os.symlink(secret_dir, root / LINKED_PERIOD)
    os.symlink(secret_dir, root / LINKED_PARTNER)  # a whole partner folder pointing elsewhere
    os.mkfifo(root / FIFO)
    _make_socket(root / SOCKET)
    drop_file(root, f"{C}/{CONTROL_NAME}", _bad_contacts("C-CTRL"))
    with open(os.fsencode(folder) + b"/" + NON_UTF8_NAME, "wb") as handle:
        handle.write(_bad_contacts("C-BYTES"))
    drop_file(root, CONTROL_FOLDER, _bad_contacts("C-FOLDER"))
    drop_file(root, GOOD, csv_bytes(table("contacts")))

    capture, printed = LogCapture(), io.StringIO()
    root_logger, pkpi_logger = logging.getLogger(), logging.getLogger("pkpi")
    old_level = pkpi_logger.level
    root_logger.addHandler(capture)
    pkpi_logger.setLevel(logging.DEBUG)
    env = {"PKPI_DATA_DIR": str(settings.data_dir), "PKPI_REFERENCE_DIR": str(settings.reference_dir)}
    try:
        with mock.patch.dict(os.environ, env), contextlib.redirect_stdout(printed):
            status = main(["-v", "ingest"])
    finally:
        root_logger.removeHandler(capture)
        pkpi_logger.setLevel(old_level)

    with connect(settings, read_only=True) as con:
        cur = con.execute("SELECT * FROM audit.loads")
        names = [d[0] for d in cur.description]
        audit = [dict(zip(names, row)) for row in cur.fetchall()]
    emls = sorted(settings.outbox_dir.glob("*.eml")) if settings.outbox_dir.exists() else []
    raw = [p.read_bytes() for p in emls]
    emails = [email.message_from_bytes(b, policy=email.policy.default) for b in raw]
    return Run(settings, status, printed.getvalue(), "\n".join(capture.lines), audit, emails, raw, secret_dir)


def _rows_for(run: Run, relative: str) -> list[dict]:
    return [a for a in run.audit if a["landing_path"] == relative]


def _notices_naming(run: Run, name: str) -> list[email.message.EmailMessage]:
    return [m for m in run.emails if f"({name})" in str(m["Subject"])]


def _all_files(folder: Path):
    """Every file below ``folder``, looked at without following links."""
    for here, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = Path(here) / name
            mode = os.lstat(path).st_mode
            assert not stat.S_ISLNK(mode), f"{path} is a link: nothing in the data folder may point elsewhere"
            if stat.S_ISREG(mode):
                yield path


# --- item 2: landing holds plain files only -------------------------------------------------


def test_the_run_finishes_with_exit_0_and_prints_its_summary(run):
    assert run.exit_status == 0
    first = run.printed.splitlines()[0]
    assert first.startswith(f"{len(run.audit)} file(s):"), run.printed
    assert len(run.audit) == len(UNREAD) + 4


@pytest.mark.parametrize("relative", UNREAD)
def test_an_entry_that_is_not_a_plain_file_is_refused_unread_with_its_own_rule(run, relative):
    (row,) = _rows_for(run, relative)
    assert row["status"] == "rejected"
    assert row["message"] == "1 problem(s): not_regular_file x1"
    assert (row["checksum_sha256"], row["size_bytes"]) == (UNREAD_CHECKSUM, 0)  # nothing was read
    # The link (or pipe, socket) itself is gone from landing...
    assert not os.path.lexists(run.settings.landing_dir / relative)
    # ...and quarantine holds what the partner needs (the rule and what to do), no bytes at all.
    folder = (run.settings.data_dir / row["stored_path"]).parent
    assert sorted(p.name for p in folder.iterdir()) == ["errors.csv", "report.html", "validation.json"]
    errors = (folder / "errors.csv").read_text(encoding="utf-8")
    assert "not_regular_file" in errors and "Upload the file itself" in errors


def test_the_targets_of_links_are_untouched(run):
    assert (run.secret_dir / "secret.csv").read_bytes() == SECRET_RETURN
    assert (run.secret_dir / MONTH / "secret.csv").read_bytes() == SECRET_RETURN
    assert not (run.secret_dir / "nowhere.csv").exists()


def test_no_byte_of_a_link_target_leaves_it(run):
    """Data folder (quarantine, archive, outbox, warehouse), raw tables, audit, emails, logs, stdout."""
    for path in _all_files(run.settings.data_dir):
        assert MARKER not in path.read_bytes(), path
    with connect(run.settings, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM raw.contacts WHERE child_id LIKE '%SECRET%' "
                           "OR contact_id LIKE '%SECRET%'").fetchone() == (0,)
    assert MARKER.decode() not in repr(run.audit)
    assert not any(MARKER in raw for raw in run.eml_bytes)
    assert MARKER.decode() not in run.logs
    assert MARKER.decode() not in run.printed


def test_the_partner_named_by_the_folders_is_told_what_to_do(run):
    (notice,) = _notices_naming(run, "link.csv")
    assert notice["To"] == CONTACT_PARTNERS["NCT"]
    body = notice.get_body(("plain",)).get_content()
    assert "not_regular_file" in body and "Upload the file itself" in body
    # A symlinked partner folder names its partner: ICB is told, and what the link pointed at is not.
    (row,) = _rows_for(run, LINKED_PARTNER)
    assert (row["return_type"], row["partner_code"], row["period"]) == ("child_deaths", "ICB", None)
    (icb,) = _notices_naming(run, "ICB")
    assert icb["To"] == CONTACT_PARTNERS["ICB"]
    (period,) = _rows_for(run, LINKED_PERIOD)
    assert (period["return_type"], period["partner_code"], period["period"]) == ("contacts", "NCT", "2025-02")


def test_a_good_file_beside_them_is_still_accepted(run):
    (row,) = _rows_for(run, GOOD)
    assert row["status"] == "accepted"
    assert not (run.settings.landing_dir / GOOD).exists()


def test_a_folder_swapped_for_a_link_after_the_scan_is_refused(settings, tmp_path):
    """The read opens every folder on the way without following links: no TOCTOU window."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "r.csv").write_bytes(SECRET_RETURN)
    drop_file(settings.landing_dir, f"{C}/r.csv", csv_bytes(table("contacts")))
    (entry,) = landing.scan(settings.landing_dir)
    assert entry.kind == landing.RETURN
    real = settings.landing_dir / C
    real.rename(tmp_path / "moved")
    os.symlink(outside, real)  # the partner swaps the period folder for a link to elsewhere
    with pytest.raises(landing.NotRegularFile) as caught:
        landing.read_regular(entry, 10_000_000)
    assert caught.value.outside
    # And the ingest of that entry records it as outside landing, without reading the target.
    from pkpi.ingest import _ingest_entry
    from pkpi.reference import load_reference

    outcome = _ingest_entry(settings, entry, load_reference(settings), None)
    assert outcome.status == "rejected" and [p.rule for p in outcome.problems] == ["outside_landing"]
    # The next run refuses the linked folder itself and removes the link.
    (linked,) = ingest_landing(settings).outcomes
    assert (linked.file_name, [p.rule for p in linked.problems]) == (MONTH, ["not_regular_file"])
    assert (outside / "r.csv").read_bytes() == SECRET_RETURN
    for path in _all_files(settings.data_dir):
        assert MARKER not in path.read_bytes(), path


def test_a_file_swapped_for_a_fifo_after_the_scan_is_refused_without_hanging(settings):
    drop_file(settings.landing_dir, f"{C}/r.csv", csv_bytes(table("contacts")))
    (entry,) = landing.scan(settings.landing_dir)
    (settings.landing_dir / f"{C}/r.csv").unlink()
    os.mkfifo(settings.landing_dir / f"{C}/r.csv")
    with pytest.raises(landing.NotRegularFile):
        landing.read_regular(entry, 10_000_000)


def test_an_oversized_file_is_refused_without_being_read_whole(tmp_path):
    settings = Settings.from_env({"PKPI_DATA_DIR": str(tmp_path / "data"),
                                  "PKPI_REFERENCE_DIR": str(make_reference(tmp_path / "reference")),
                                  "PKPI_MAX_FILE_MB": "1"})
    content = csv_bytes(table("contacts")) + b"C9,K-9,2025-03-03,police,7,female,white,nfa,\r\n" * 30_000
    assert len(content) > settings.limits.max_file_bytes
    drop_file(settings.landing_dir, f"{C}/big.csv", content)
    (entry,) = landing.scan(settings.landing_dir)
    with pytest.raises(landing.FileTooLarge):
        landing.read_regular(entry, settings.limits.max_file_bytes)

    (outcome,) = ingest_landing(settings).outcomes
    assert outcome.status == "rejected" and [p.rule for p in outcome.problems] == ["file_too_large"]
    kept = settings.data_dir / outcome.stored_path
    assert kept.read_bytes() == content  # copied in chunks, byte for byte: nothing is lost
    with connect(settings, read_only=True) as con:
        (checksum, size), = con.execute("SELECT checksum_sha256, size_bytes FROM audit.loads").fetchall()
    import hashlib

    assert (checksum, size) == (hashlib.sha256(content).hexdigest(), len(content))
    assert not (settings.landing_dir / f"{C}/big.csv").exists()


# --- item 8: hostile names never break the notice, the report, the log or the run -----------


def test_a_name_with_control_characters_gets_a_safe_notice(run):
    shown = safe_name(CONTROL_NAME)
    assert "\r" not in shown and "\n" not in shown and "\x1b" not in shown and "\u202e" not in shown
    (row,) = [a for a in run.audit if a["file_name"] == shown]
    assert row["status"] == "rejected"
    (notice,) = _notices_naming(run, shown)
    assert notice["To"] == CONTACT_PARTNERS["NCT"]
    assert notice["Bcc"] is None and len(notice.get_all("Subject")) == 1  # no injected header
    subject = str(notice["Subject"])
    assert not any(ch in subject for ch in "\r\n\x1b\u202e")
    assert "march\\r\\nBcc: attacker@evil.example\\x1b[2J\\u202egpj.csv" in subject
    assert not (run.settings.landing_dir / C / CONTROL_NAME).exists()


def test_a_name_that_is_not_utf8_is_recorded_and_reported(run):
    shown = safe_name(os.fsdecode(NON_UTF8_NAME))
    assert shown == "caf\\xe9\\x85.csv"
    (row,) = [a for a in run.audit if a["file_name"] == shown]
    assert row["status"] == "rejected"
    assert row["landing_path"] == f"{C}/{shown}"
    (notice,) = _notices_naming(run, shown)
    assert notice["To"] == CONTACT_PARTNERS["NCT"]
    assert not os.path.lexists(os.fsencode(run.settings.landing_dir / C) + b"/" + NON_UTF8_NAME)


def test_a_folder_name_with_control_characters_never_breaks_anything(run):
    rows = [a for a in run.audit if a["landing_path"].startswith(f"contacts/NCT/{MONTH}\\n")]
    assert len(rows) == 1 and rows[0]["status"] == "rejected"
    assert not (run.settings.landing_dir / CONTROL_FOLDER).exists()


def test_no_control_character_reaches_the_audit_logs_summary_or_quarantine_paths(run):
    def clean(text: str) -> bool:
        return safe_name(text, limit=None) == text

    for row in run.audit:
        for column in ("file_name", "landing_path", "stored_path", "return_type", "partner_code", "period"):
            assert row[column] is None or clean(row[column]), (column, row[column])
    for line in run.printed.splitlines():
        assert clean(line), line
    for line in run.logs.splitlines():
        assert clean(line), line
    for path in _all_files(run.settings.data_dir):
        assert clean(str(path.relative_to(run.settings.data_dir))), path
    for message in run.emails:
        assert clean(str(message["Subject"]))


def test_the_landing_is_empty_after_the_run(run):
    assert landing.scan(run.settings.landing_dir) == []


def test_safe_name_escapes_every_kind_of_control_and_keeps_real_text():
    assert safe_name("Zoë’s return – März.csv") == "Zoë’s return – März.csv"
    assert safe_name("a\tb\x00c\x7fd\x85e\u2028f\u200bg\ufeffh") == "a\\tb\\x00c\\x7fd\\x85e\\u2028f\\u200bg\\ufeffh"
    assert safe_name("x" * 500, limit=50).startswith("x" * 29) and len(safe_name("x" * 500, limit=50)) == 50
