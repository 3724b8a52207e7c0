"""Least privilege on disk (issue 10, item 9): what the platform keeps is readable by its own
user (and the deployment's group) only; what it publishes is as open as the deployment chooses.

Real runs of `pkpi` (ingest of a good and a bad file, build with publish, scorecard with its
email) in tmp data folders, then every folder and file under the data folder is checked. The
test process's own umask is the lax 022 throughout, as a careless shell's would be, so the
platform's modes come from the platform. As root, modes are not enforced on us; they are
checked as numbers, which is what another user on the machine would meet.
"""

from __future__ import annotations

import grp
import os
import stat
from pathlib import Path

import duckdb
import pytest

from pkpi.cli import main
from pkpi.files import PUBLISHED_AREAS, internal_access, published_access
from pkpi.ingest import ingest_landing
from pkpi.settings import Settings
from pkpi.warehouse import connect
from support.returns import MONTH, TODAY, csv_bytes, drop_file, make_reference, table


def a_group_of_this_user() -> int:
    """Another group the user belongs to (so the chgrp is real), else the primary one."""
    primary = os.getegid()
    others = sorted(g for g in os.getgroups() if g != primary)
    if others:
        return others[0]
    if os.geteuid() == 0:  # root may give files to any group: use one that is not its own
        for group in grp.getgrall():
            if group.gr_gid != primary:
                return group.gr_gid
    return primary


@pytest.fixture(autouse=True)
def lax_umask():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"PKPI_DATA_DIR": str(tmp_path / "data"),
            "PKPI_REFERENCE_DIR": str(make_reference(tmp_path / "reference")), **extra}


def use(monkeypatch, env: dict[str, str]) -> Settings:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings.from_env(env)


def drop_good_and_bad(settings: Settings) -> None:
    """As a partner's upload tool would leave them (0644 under the test's umask)."""
    drop_file(settings.landing_dir, f"contacts/NCT/{MONTH}/contacts.csv", csv_bytes(table("contacts")))
    drop_file(settings.landing_dir, f"training/NCT/{MONTH}/training.csv",
              csv_bytes(table("training", {(2, "delivery_mode"): "carrier pigeon"})))


def everything(root: Path) -> list[Path]:
    return [root, *sorted(root.rglob("*"))]


def wrong_modes(settings: Settings, data_dir_mode: int, internal: tuple[int, int],
                published: tuple[int, int], gid: int | None) -> list[str]:
    """Every entry under the data folder whose mode (or group) is not what it should be."""
    wrong = []
    for path in everything(settings.data_dir):
        st = path.lstat()
        relative = path.relative_to(settings.data_dir)
        if stat.S_ISLNK(st.st_mode):
            # Only the published release links, and only to a place inside published/.
            assert relative.parent == Path("published"), path
            assert relative.name in ("current", "kpi_mart.duckdb", "parquet"), path
            target = os.readlink(path)
            assert not os.path.isabs(target) and ".." not in Path(target).parts, path
            continue
        if not relative.parts:
            want = data_dir_mode
        else:
            dirs, files = published if relative.parts[0] in PUBLISHED_AREAS else internal
            want = dirs if stat.S_ISDIR(st.st_mode) else files
        if stat.S_IMODE(st.st_mode) != want:
            wrong.append(f"{relative or '.'}: {oct(stat.S_IMODE(st.st_mode))}, not {oct(want)}")
        if gid is not None and st.st_gid != gid:
            wrong.append(f"{relative or '.'}: group {st.st_gid}, not {gid}")
    return wrong


CASES = {
    # name: (extra settings, data folder mode, internal (dir, file), published (dir, file))
    "private": ({"PKPI_PUBLISHED_ACCESS": "private"}, 0o700, (0o700, 0o600), (0o700, 0o600)),
    "group": ({"PKPI_PUBLISHED_ACCESS": "group"}, 0o2770, (0o2770, 0o660), (0o2770, 0o660)),
    "everyone": ({"PKPI_PUBLISHED_ACCESS": "everyone"}, 0o711, (0o700, 0o600), (0o755, 0o644)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_whole_run_leaves_nothing_open_beyond_what_the_deployment_chose(case, tmp_path, monkeypatch, capsys):
    extra, data_mode, internal, published = CASES[case]
    gid = None
    if case == "group":
        gid = a_group_of_this_user()
        extra = {**extra, "PKPI_FILE_GROUP": grp.getgrgid(gid).gr_name}
    settings = use(monkeypatch, environment(tmp_path, **extra))
    drop_good_and_bad(settings)

    assert main(["ingest"]) == 0
    assert "1 accepted, 1 rejected" in capsys.readouterr().out
    assert main(["build"]) == 0
    assert main(["scorecard", "--period", MONTH, "--send"]) == 0

    # Everything the run made is there: the places the modes are about.
    data = settings.data_dir
    for must in ("warehouse.duckdb", "warehouse.lock", "ingest.lock", "archive", "quarantine",
                 "outbox", "dbt/logs/dbt.log", "dbt/target", "published/kpi_mart.duckdb",
                 "published/parquet/kpi_values.parquet", f"exports/{MONTH}/scorecard.pdf",
                 f"exports/{MONTH}/charts", "landing/contacts/NCT"):
        assert (data / must).exists(), must
    assert len(list(settings.outbox_dir.glob("*.eml"))) == 2  # the partner's notice and the scorecard
    assert wrong_modes(settings, data_mode, internal, published, gid) == []
    # Files libraries create later in this process (DuckDB's .wal, dbt's logs) are private too.
    assert os.umask(0o022) == (0o007 if gid is not None else 0o077)


def test_stages_set_their_modes_even_for_a_caller_with_a_lax_umask(settings):
    # No entry point here: a library caller (a notebook, a test) with umask 022.
    drop_good_and_bad(settings)
    ingest_landing(settings, today=TODAY)
    private = internal_access(settings)
    for path in everything(settings.data_dir):
        if path == settings.landing_dir or settings.landing_dir in path.parents:
            continue  # the partner's folders: tightened by the entry points (next test)
        mode = stat.S_IMODE(path.lstat().st_mode)
        if path == settings.data_dir:
            assert mode & 0o077 in (0, 0o011), path  # traversable for published/, never listable
        else:
            assert mode == (private.dir_mode if path.is_dir() else private.file_mode), path
    assert list(settings.archive_dir.rglob("contacts.csv")) and list(settings.quarantine_dir.rglob("errors.csv"))
    assert list(settings.outbox_dir.glob("*.eml"))  # NCT's data contact was told


def test_duckdb_files_are_private_while_the_warehouse_is_open(settings):
    with connect(settings) as con:
        con.execute("CREATE TABLE audit.probe AS SELECT range AS n FROM range(100000)")
        wal = settings.warehouse_path.with_name(settings.warehouse_path.name + ".wal")
        for path in (settings.warehouse_path, wal):
            if path.exists():
                assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE(settings.warehouse_path.stat().st_mode) == 0o600


def lax_data_folder(settings: Settings, outside: Path) -> Path:
    """A data folder as an older version (umask 022) would have left it, with traps in it."""
    drop_good_and_bad(settings)
    old = settings.archive_dir / "contacts" / "NCT" / "2024-03" / "old-load"
    old.mkdir(parents=True)
    (old / "contacts.csv").write_text("contact_id\nC1\n")
    duckdb.connect(str(settings.warehouse_path)).close()
    (settings.data_dir / "dbt" / "logs").mkdir(parents=True)
    (settings.data_dir / "dbt" / "logs" / "dbt.log").write_text("log\n")
    outside.write_text("someone else's file\n")
    os.chmod(outside, 0o644)
    (settings.quarantine_dir).mkdir()
    (settings.quarantine_dir / "link-out").symlink_to(outside)
    os.mkfifo(settings.landing_dir / "a-pipe")
    for path in everything(settings.data_dir):
        if not path.is_symlink() and not stat.S_ISFIFO(path.lstat().st_mode):
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
    return old / "contacts.csv"


def test_the_next_run_tightens_a_data_folder_left_open_and_follows_no_link(settings, tmp_path, monkeypatch):
    outside = tmp_path / "outside.txt"
    old_file = lax_data_folder(settings, outside)
    use(monkeypatch, {"PKPI_DATA_DIR": str(settings.data_dir), "PKPI_REFERENCE_DIR": str(settings.reference_dir)})
    assert main(["retention", "--dry-run"]) == 0  # any command that writes the data folder

    for path in everything(settings.data_dir):
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode) or stat.S_ISFIFO(st.st_mode):
            continue  # never opened, never followed
        want = (0o711 if path == settings.data_dir else 0o700) if path.is_dir() else 0o600
        assert stat.S_IMODE(st.st_mode) == want, path
    assert stat.S_IMODE(old_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(outside.stat().st_mode) == 0o644  # the link's target was not touched
    assert outside.read_text() == "someone else's file\n"


def test_an_airflow_task_is_an_entry_point_too(settings, tmp_path, monkeypatch):
    from pkpi.airflow.tasks import task_settings

    lax_data_folder(settings, tmp_path / "outside.txt")
    use(monkeypatch, {"PKPI_DATA_DIR": str(settings.data_dir), "PKPI_REFERENCE_DIR": str(settings.reference_dir),
                      "PKPI_PUBLISHED_ACCESS": "private"})
    task_settings()
    assert os.umask(0o022) == 0o077
    assert stat.S_IMODE(settings.data_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(settings.warehouse_path.stat().st_mode) == 0o600
    assert stat.S_IMODE((settings.landing_dir / "contacts").stat().st_mode) == 0o700


def test_modes_follow_the_settings(tmp_path):
    base = {"PKPI_DATA_DIR": str(tmp_path / "data")}
    gid = a_group_of_this_user()
    for access, dirs, files in (("private", 0o700, 0o600), ("group", 0o750, 0o640), ("everyone", 0o755, 0o644)):
        settings = Settings.from_env({**base, "PKPI_PUBLISHED_ACCESS": access})
        assert internal_access(settings) == (internal_access(settings).__class__(0o700, 0o600, None))
        assert (published_access(settings).dir_mode, published_access(settings).file_mode) == (dirs, files)
        grouped = Settings.from_env({**base, "PKPI_PUBLISHED_ACCESS": access, "PKPI_FILE_GROUP": str(gid)})
        assert (internal_access(grouped).dir_mode, internal_access(grouped).file_mode) == (0o2770, 0o660)
        assert internal_access(grouped).gid == gid
        # Never writable by others, never readable by others unless the deployment said so.
        for mode in (published_access(grouped).dir_mode, published_access(grouped).file_mode):
            assert not mode & 0o002
            assert bool(mode & 0o004) == (access == "everyone")


def test_an_unknown_group_is_refused_with_a_sentence(settings, monkeypatch, capsys):
    settings.data_dir.mkdir(parents=True)
    use(monkeypatch, {"PKPI_DATA_DIR": str(settings.data_dir), "PKPI_REFERENCE_DIR": str(settings.reference_dir),
                      "PKPI_FILE_GROUP": "no-such-group-pkpi"})
    assert main(["retention"]) == 2
    err = capsys.readouterr().err
    assert "PKPI_FILE_GROUP is 'no-such-group-pkpi', which is not a group on this machine" in err
