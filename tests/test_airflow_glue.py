"""The Airflow glue lives in pkpi.airflow alone: no other pkpi module imports Airflow (the command
line and the stage modules run without it), each DAG's UI documentation is its file's docstring,
and the one decision that moved out of a DAG file (retention's cut-off) is pinned down here."""

from __future__ import annotations

import ast
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest

from conftest import REPO

PACKAGE_ROOT = REPO / "include" / "pkpi"
GLUE = PACKAGE_ROOT / "airflow"


def _imported_names(path):
    """Every module name ``path`` imports (top level or inside a function), relative ones included."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            # Outside the glue package a relative import of "airflow" can only mean pkpi.airflow.
            yield ("." * node.level) + (node.module or "")
            yield from (("." * node.level) + (node.module + "." if node.module else "") + a.name for a in node.names)


def test_no_pkpi_module_outside_the_glue_package_imports_airflow():
    offenders = {}
    for path in sorted(PACKAGE_ROOT.rglob("*.py")):
        if GLUE in path.parents:
            continue
        bad = sorted({name for name in _imported_names(path)
                      if name.split(".")[0] == "airflow" or name.lstrip(".").split(".")[0] == "airflow"
                      or name.startswith("pkpi.airflow")})
        if bad:
            offenders[str(path.relative_to(REPO))] = bad
    assert offenders == {}, (
        f"These modules import Airflow or pkpi.airflow: {offenders}. Airflow glue belongs in "
        "include/pkpi/airflow/; the rest of pkpi must run without Airflow."
    )


def test_every_dags_ui_documentation_is_its_files_docstring():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert bag.import_errors == {}
    for dag_id, dag in bag.dags.items():
        source = Path(dag.fileloc).read_text(encoding="utf-8")
        docstring = ast.get_docstring(ast.parse(source), clean=False)
        assert docstring and dag.doc_md == docstring, f"{dag_id}: doc_md is not the module docstring"


def test_retention_is_measured_to_the_runs_date_never_later_than_now():
    from pkpi.airflow.params import retention_moment

    old_run = datetime(2026, 1, 5, 2, 30, tzinfo=timezone.utc)
    assert retention_moment({"logical_date": old_run}) == datetime(2026, 1, 5, 2, 30)  # naive UTC
    future = datetime.now(timezone.utc) + timedelta(days=400)
    assert retention_moment({"logical_date": future}) <= datetime.now(timezone.utc).replace(tzinfo=None)
    triggered = SimpleNamespace(run_after=old_run)
    assert retention_moment({"logical_date": None, "dag_run": triggered}) == datetime(2026, 1, 5, 2, 30)


@pytest.mark.parametrize("name", ["pkpi.mailer", "pkpi.cli"])
def test_stage_modules_import_without_loading_airflow(name, tmp_path):
    import subprocess
    import sys

    probe = (f"import sys, {name}; "
             "print(sorted(m for m in sys.modules if m.split('.')[0] == 'airflow' or m.startswith('pkpi.airflow')))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "AIRFLOW_HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]", f"importing {name} loads {done.stdout.strip()}"
