"""One error hierarchy (pkpi.errors): every error pkpi raises derives from PkpiError, and the
command line's exit codes and Airflow's retry decisions follow from its classes, not names.
"""

from __future__ import annotations

import errno
import importlib
import inspect
import os
import pkgutil
import smtplib

import duckdb
import pytest

import pkpi
from pkpi import errors
from pkpi.build import BuildFailed
from pkpi.cli import UsageError, main
from pkpi.contracts import ContractError
from pkpi.errors import DiskFull, PermanentError, PkpiError, TransientError, UserError, classify, is_transient
from pkpi.mailer import DeliveryUncertain, MailDeliveryError
from pkpi.periods import PeriodError
from pkpi.query import QueryRefused
from pkpi.settings import SettingsError
from pkpi.warehouse import WarehouseBusy


def _pkpi_modules():
    for info in pkgutil.walk_packages(pkpi.__path__, "pkpi."):
        yield importlib.import_module(info.name)


def test_every_error_pkpi_defines_derives_from_the_one_base_class():
    defined = {}
    for module in _pkpi_modules():
        for name, value in vars(module).items():
            if (inspect.isclass(value) and issubclass(value, BaseException)
                    and value.__module__.startswith("pkpi.")):
                defined[f"{value.__module__}.{name}"] = value
    assert len(defined) > 20
    strays = sorted(name for name, cls in defined.items() if not issubclass(cls, PkpiError))
    assert strays == []


@pytest.mark.parametrize("error, code", [
    (UsageError("use --send"), 2),
    (SettingsError("PKPI_X is wrong"), 2),
    (PeriodError("2025-13 is not a month"), 2),
    (QueryRefused("only SELECT"), 2),
    (ContractError("bad contract"), 1),
    (BuildFailed("a test failed"), 1),
    (WarehouseBusy("locked"), 1),
    (DeliveryUncertain("may have been sent", None), 1),
])
def test_the_exit_code_follows_from_the_class(error, code):
    assert errors.exit_code(error) == code
    assert isinstance(error, UserError) == (code == 2)


def test_transient_and_permanent_follow_from_the_class_and_its_cause():
    assert is_transient(WarehouseBusy("locked")) and isinstance(WarehouseBusy("x"), TransientError)
    assert not is_transient(BuildFailed("a test failed")) and isinstance(BuildFailed("x"), PermanentError)
    # An error that is neither lets its cause decide: an outage is retried, a refusal is not.
    for cause, transient in ((ConnectionRefusedError("refused"), True),
                             (smtplib.SMTPAuthenticationError(535, b"bad credentials"), False)):
        try:
            try:
                raise cause
            except Exception as exc:
                raise MailDeliveryError("could not send") from exc
        except MailDeliveryError as wrapped:
            assert is_transient(wrapped) is transient
    assert not is_transient(RuntimeError("a bug"))


def test_a_full_disk_is_recognised_from_an_errno_and_from_duckdbs_text(tmp_path):
    enospc = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "x.csv"))
    full = classify(enospc, tmp_path)
    assert isinstance(full, DiskFull) and full.path == tmp_path / "x.csv" and full.exit_code == 1
    assert is_transient(enospc)  # once space is freed, the same command completes
    assert "The disk is full" in str(full) and str(tmp_path) in str(full)

    duck = duckdb.TransactionException(
        f'TransactionContext Error: Failed to commit: Could not write file "{tmp_path}/w.duckdb.wal": '
        "No space left on device")
    assert classify(duck).path == tmp_path / "w.duckdb.wal"
    # dbt's node messages reach pkpi inside BuildFailed, which quotes them.
    assert isinstance(classify(BuildFailed("model x: No space left on device")), DiskFull)
    # A partner's file name saying so is not a full disk.
    assert classify(PkpiError("training_No space left on device.csv was rejected")) is not None
    assert not errors.is_disk_full(PkpiError("training_No space left on device.csv was rejected"))
    assert not errors.is_disk_full(duckdb.IOException("Cannot open file: permission denied"))


def test_the_command_line_says_a_settings_error_in_a_sentence_and_exits_2(monkeypatch, capsys):
    monkeypatch.setenv("PKPI_LANDING_QUIET_SECONDS", "soon")
    assert main(["status", "--period", "2025-03"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pkpi: ") and "PKPI_LANDING_QUIET_SECONDS" in err and "Traceback" not in err
