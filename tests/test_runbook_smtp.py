"""The runbook's SMTP test, run as printed: with no engineers configured it says what to set."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

RUNBOOK = Path(__file__).resolve().parents[1] / "docs" / "runbook.md"


def _smtp_test_snippet() -> str:
    text = RUNBOOK.read_text(encoding="utf-8")
    [snippet] = re.findall(r"python - <<'EOF'\n(.*?\"\[pkpi\] SMTP test\".*?)\nEOF\n", text, re.S)
    return snippet


def test_the_smtp_test_without_engineers_explains_instead_of_a_traceback(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PKPI_", "AIRFLOW"))}
    env.update(PKPI_DATA_DIR=str(tmp_path / "data"), AIRFLOW_HOME=str(tmp_path / "airflow"))
    run = subprocess.run([sys.executable, "-"], input=_smtp_test_snippet(), text=True,
                         capture_output=True, env=env, timeout=120)
    assert run.returncode == 1
    assert "PKPI_ENGINEER_EMAILS is empty" in run.stderr
    assert "Traceback" not in run.stderr
