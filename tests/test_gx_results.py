"""Every file keeps its Great Expectations validation result beside its stored copy
(``validation.json``, pkpi.gx_results), with its outcome, and the result holds no value of the
file: counts and row numbers only, never more than the partner's own errors file shows.

tests/test_gate_batch.py checks that a file judged with others gets the results it gets alone;
tests/test_crash_ingest.py that a crash at any step leaves validation.json beside every copy.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict

import pytest

from pkpi.gx_results import PARTIAL_ROWS, VALIDATION_FILE
from pkpi.ingest import ingest_landing
from pkpi.settings import Settings
from support.returns import MONTH, SEEDS, TODAY, csv_bytes, drop_file, table

EMAIL = "jane.doe@example.com"
NHS_NUMBER = "943 476 5919"
NOT_AN_IDENTIFIER = "zebra-crossing"  # a bad value the errors file does show
BAD = csv_bytes(table("contacts", {(2, "sex"): NOT_AN_IDENTIFIER, (3, "contact_id"): EMAIL,
                                   (4, "child_id"): NHS_NUMBER, (5, "child_age_years"): "18"}))


@pytest.fixture(scope="module")
def ingested(tmp_path_factory):
    root = tmp_path_factory.mktemp("gx-results")
    settings = Settings.from_env({"PKPI_DATA_DIR": str(root / "data"), "PKPI_REFERENCE_DIR": str(SEEDS)})
    drop_file(settings.landing_dir, f"contacts/NCT/{MONTH}/good.csv", csv_bytes(table("contacts")))
    drop_file(settings.landing_dir, f"contacts/WNC/{MONTH}/bad.csv", BAD)
    drop_file(settings.landing_dir, f"contacts/NNC/{MONTH}/header.csv", b"contact_id,surname\nC1,Smith\n")
    drop_file(settings.landing_dir, f"training/NCT/{MONTH}/{VALIDATION_FILE}", csv_bytes(table("training")))
    report = ingest_landing(settings, today=TODAY)
    return settings, {o.file_name: o for o in report.outcomes}


def _result(settings, outcome) -> tuple[dict, str]:
    path = (settings.data_dir / outcome.stored_path).parent / VALIDATION_FILE
    text = path.read_text(encoding="utf-8")
    return json.loads(text), text


def test_an_accepted_file_keeps_its_validation_result_beside_its_archived_copy(ingested):
    settings, outcomes = ingested
    good = outcomes["good.csv"]
    assert good.status == "accepted" and good.stored_path.startswith("archive/")
    doc, _ = _result(settings, good)
    assert (doc["outcome"], doc["load_id"], doc["file_name"]) == ("accepted", good.load_id, "good.csv")
    assert (doc["return_type"], doc["partner_code"], doc["period"]) == ("contacts", "NCT", MONTH)
    assert doc["problem_count"] == 0 and doc["rules"] == {}
    assert [s["suite_name"] for s in doc["suites"]] == ["contacts.values", "contacts.ranges"]
    for suite in doc["suites"]:
        assert suite["success"] and suite["statistics"]["unsuccessful_expectations"] == 0
        assert all(r["result"]["element_count"] == 4 and r["result"]["unexpected_count"] == 0
                   for r in suite["results"])


def test_a_rejected_file_keeps_its_result_with_the_rows_its_errors_file_names(ingested):
    settings, outcomes = ingested
    bad = outcomes["bad.csv"]
    assert bad.status == "rejected" and bad.stored_path.startswith("quarantine/")
    doc, _ = _result(settings, bad)
    assert (doc["outcome"], doc["load_id"]) == ("rejected", bad.load_id)
    with ((settings.data_dir / bad.stored_path).parent / "errors.csv").open(newline="", encoding="utf-8") as handle:
        errors = list(csv.DictReader(handle))
    assert doc["problem_count"] == len(errors) == bad.error_count
    named = defaultdict(set)
    for e in errors:
        named[e["rule"], e["column"]].add(int(e["row"]))
    assert doc["rules"] == {rule: sum(1 for e in errors if e["rule"] == rule) for rule in {e["rule"] for e in errors}}
    failed = [r for suite in doc["suites"] for r in suite["results"] if not r["success"]]
    for r in failed:
        rows = set(r["result"]["partial_unexpected_rows"])
        assert len(rows) == min(r["result"]["unexpected_count"], PARTIAL_ROWS)
        assert rows <= {int(e["row"]) for e in errors}  # a row GX names is a row the errors file names
    # Every problem the errors file reports is a failed expectation at that row.
    for (rule, column), rows in named.items():
        meta = {"rule": rule, "column": column}
        assert any(meta.items() <= r["expectation_config"]["meta"].items()
                   and rows <= set(r["result"]["partial_unexpected_rows"]) for r in failed), (rule, column)
    assert not doc["suites"][0]["success"] and not doc["suites"][1]["success"]  # 18 is out of range


def test_no_value_of_the_file_is_in_its_validation_result(ingested):
    settings, outcomes = ingested
    bad = outcomes["bad.csv"]
    _, text = _result(settings, bad)
    errors = ((settings.data_dir / bad.stored_path).parent / "errors.csv").read_text(encoding="utf-8")
    for identifier in (EMAIL, NHS_NUMBER, NHS_NUMBER.replace(" ", "")):
        assert identifier not in errors and identifier not in text
    assert NOT_AN_IDENTIFIER in errors  # shown to the partner, who sent it...
    assert NOT_AN_IDENTIFIER not in text  # ...and still not kept in the result
    for key in ("unexpected_list", "partial_unexpected_list", "partial_unexpected_counts", "unexpected_index_list"):
        assert f'"{key}"' not in text


def test_a_file_refused_before_its_cells_were_checked_has_its_outcome_and_no_suite_results(ingested):
    settings, outcomes = ingested
    header = outcomes["header.csv"]
    doc, text = _result(settings, header)
    assert (doc["outcome"], doc["suites"]) == ("rejected", [])
    assert doc["rules"] == {"column_identifier": 1, "column_missing": 7}
    assert "Smith" not in text


def test_a_return_named_like_the_result_is_kept_apart_from_it(ingested):
    settings, outcomes = ingested
    named = outcomes[VALIDATION_FILE]  # refused for its type, and quarantined like any other
    assert named.status == "rejected"
    stored = settings.data_dir / named.stored_path
    assert stored.name == f"original-{VALIDATION_FILE}"
    assert stored.read_bytes() == csv_bytes(table("training"))
    assert _result(settings, named)[0]["outcome"] == "rejected"
