"""The light commands start without the heavy libraries they do not use.

``pkpi --help``, ``pkpi status`` and ``pkpi query`` are what an analyst or an engineer on call
types many times a day; each heavy library (dbt, Great Expectations, Airflow, matplotlib, the
workbook and PDF writers, pandas and numpy) adds a fraction of a second to a few seconds before
anything happens. Each command is run for real, in a fresh Python process, over a real warehouse
and published copy (the hand-made partnership of tests/support/catalogue.py, shared with
tests/test_published.py), and the test reads which packages that process had imported by the
end: a top-level import added anywhere on these commands' path (``import pandas`` in a module
``pkpi.query`` reaches, say) fails it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from support.catalogue import built_catalogue, copy_of

# What none of the light commands needs.
HEAVY = ("dbt", "great_expectations", "airflow", "matplotlib", "openpyxl", "reportlab", "pandas",
         "numpy", "scipy", "pyarrow", "sqlalchemy", "jinja2", "cosmos")

# Runs the command as the console script would, then records every top-level package imported.
_RUN = """
import json, sys
from pkpi.cli import main
status = main(sys.argv[2:])
with open(sys.argv[1], "w", encoding="utf-8") as out:
    json.dump({"status": status, "modules": sorted({m.partition(".")[0] for m in sys.modules})}, out)
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return built_catalogue(tmp_path_factory)


def _imported_by(built, tmp_path: Path, *argv: str, settings=None) -> set[str]:
    """The top-level packages a fresh ``pkpi <argv>`` process has imported when it ends (over
    ``settings``' folders, by default the built partnership's)."""
    settings = settings or built.settings
    record = tmp_path / "modules.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PKPI_")}
    env |= {"PKPI_DATA_DIR": str(settings.data_dir), "PKPI_REFERENCE_DIR": str(settings.reference_dir)}
    done = subprocess.run([sys.executable, "-c", _RUN, str(record), *argv], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    outcome = json.loads(record.read_text(encoding="utf-8"))
    assert outcome["status"] == 0, done.stderr
    return set(outcome["modules"])


def test_help_imports_nothing_heavy_not_even_duckdb(built, tmp_path):
    # argparse exits after printing the help: record what was imported by then.
    record = tmp_path / "modules.json"
    code = _RUN.replace("status = main(sys.argv[2:])",
                        "try:\n    main(['--help'])\nexcept SystemExit as exit:\n    status = exit.code")
    done = subprocess.run([sys.executable, "-c", code, str(record)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "usage: pkpi" in done.stdout
    modules = set(json.loads(record.read_text(encoding="utf-8"))["modules"])
    assert {"pkpi", "argparse"} <= modules
    assert modules.isdisjoint({*HEAVY, "duckdb", "yaml"}), sorted(modules & {*HEAVY, "duckdb", "yaml"})


def test_status_imports_nothing_heavy(built, tmp_path):
    modules = _imported_by(built, tmp_path, "status", "--period", "2025-03")
    assert "pkpi" in modules and "duckdb" in modules  # it did read the warehouse
    assert modules.isdisjoint(HEAVY), sorted(modules & set(HEAVY))


def test_query_imports_nothing_heavy(built, tmp_path):
    modules = _imported_by(built, tmp_path, "query", "select count(*) as figures from kpi_values")
    assert "pkpi" in modules and "duckdb" in modules
    assert modules.isdisjoint(HEAVY), sorted(modules & set(HEAVY))


def test_query_as_csv_imports_nothing_heavy(built, tmp_path):
    modules = _imported_by(built, tmp_path, "query", "--csv", "select kpi_code, period, value from kpi_values limit 5")
    assert modules.isdisjoint(HEAVY), sorted(modules & set(HEAVY))


def test_an_ingest_with_nothing_waiting_does_not_start_great_expectations(built, tmp_path):
    """The ingest runs whenever Airflow's sensor or `pkpi run` starts it, mostly with nothing
    new: GX (and scipy, dbt) take seconds to import and are only needed to validate a file."""
    settings = copy_of(built, tmp_path / "copy")
    assert not any(p.is_file() for p in settings.landing_dir.rglob("*"))
    modules = _imported_by(built, tmp_path, "ingest", settings=settings)
    assert "pkpi" in modules and "duckdb" in modules
    assert modules.isdisjoint({"great_expectations", "scipy", "dbt", "airflow"}), sorted(modules)



def test_a_scorecard_already_drawn_is_not_drawn_again(built, tmp_path):
    """`pkpi run` and the monthly DAG produce the month's scorecard every time; when nothing it
    shows has changed, the files on disk are kept and the drawing libraries never load."""
    from pkpi.scorecard import produce_scorecard

    settings = copy_of(built, tmp_path / "copy")
    drawn = produce_scorecard(settings, "2025-03")
    modules = _imported_by(built, tmp_path, "scorecard", "--period", "2025-03", settings=settings)
    assert "pkpi" in modules and "duckdb" in modules
    assert modules.isdisjoint({"matplotlib", "openpyxl", "fpdf", "PIL"}), sorted(modules)
    assert produce_scorecard(settings, "2025-03") == dataclasses.replace(drawn, up_to_date=True)
