"""Each file's Great Expectations validation result, kept with its outcome.

Every file the ingest gives an outcome gets ``validation.json`` beside its archived or
quarantined copy: the gate's outcome, the rules it broke and how often, and the result of each
GX suite run on the file's cells, in GX's own JSON form (``ExpectationSuiteValidationResult``),
so GX renders it in Data Docs (:mod:`pkpi.gx_docs`). A file refused before its cells were
checked (folder layout, header, unreadable, a link, too large) has no suite results.

The gate validates many files in one GX run (:func:`pkpi.gate.judge_many`), so GX's own result
is the batch's: :func:`per_file` cuts it into each file's, counting only that file's rows.

A result keeps **no cell value**: only counts and file row numbers (header = row 1, as in the
errors file). GX would list the failing values themselves (``partial_unexpected_list``,
``unexpected_list``, ``partial_unexpected_counts``), and those may be a child's identifiers
that the errors file deliberately never repeats; row numbers and counts are a subset of what
the errors file shows.

The document is written into the load's staging folder with the copy (:mod:`pkpi.settling`),
so it reaches archive or quarantine in the same rename as the copy: a crash leaves both or
neither.
"""

from __future__ import annotations

import json
from bisect import bisect_right
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

VALIDATION_FILE = "validation.json"
FORMAT = "pkpi.validation/1"
PARTIAL_ROWS = 20
"""How many failing row numbers a result lists per expectation (GX's own partial count); the
count is always whole, and the errors file lists every row."""


def _config(result) -> dict:
    """An expectation's configuration as GX writes it, without what differs by engine or run."""
    config = result.expectation_config.to_json_dict()
    config["kwargs"].pop("batch_id", None)  # names the engine's data asset, not the file
    config.pop("id", None)
    return config


def per_file(suite_name: str, results: Sequence, positions: Sequence[Sequence[int]],
             ends: Sequence[int], source_rows: Sequence[int]) -> list[dict]:
    """Each file's result of one suite run over several files' rows one after another.

    ``results`` are GX's expectation results of the run; ``positions[i]`` the failing rows of
    ``results[i]`` as positions in the run's frame; ``ends`` where each file's rows end there;
    ``source_rows`` each position's row number in its own file.
    """
    starts = [0, *ends[:-1]]
    configs = [_config(r) for r in results]  # the same for every file of the run
    failing: list[list[list[int]]] = [[[] for _ in results] for _ in ends]
    for number, found in enumerate(positions):
        for position in sorted(found):
            failing[bisect_right(ends, position)][number].append(source_rows[position])
    out = []
    for file, (start, end) in enumerate(zip(starts, ends)):
        rows = end - start
        expectations = []
        for config, unexpected in zip(configs, failing[file]):
            expectations.append({
                "success": not unexpected,
                "expectation_config": config,
                "result": {
                    "element_count": rows,
                    "unexpected_count": len(unexpected),
                    "unexpected_percent": 100.0 * len(unexpected) / rows if rows else 0.0,
                    "partial_unexpected_rows": unexpected[:PARTIAL_ROWS],
                },
                "meta": {},
                "exception_info": {"raised_exception": False, "exception_traceback": None,
                                   "exception_message": None},
            })
        passed = sum(1 for e in expectations if e["success"])
        out.append({
            "suite_name": suite_name,
            "success": passed == len(expectations),
            "statistics": {
                "evaluated_expectations": len(expectations),
                "successful_expectations": passed,
                "unsuccessful_expectations": len(expectations) - passed,
                "success_percent": 100.0 * passed / len(expectations) if expectations else 100.0,
            },
            "results": expectations,
        })
    return out


def document(*, load_id: str, return_type: str | None, partner_code: str | None, period: str | None,
             file_name: str, validated_at: datetime, outcome: str, problems: Sequence,
             suites: Sequence[dict] | None) -> dict:
    """``validation.json`` for one file: its outcome, the rules it broke (counts, never values)
    and its suites' results (``[]`` when the gate stopped before the cells)."""
    import great_expectations as gx

    return {
        "format": FORMAT,
        "load_id": load_id,
        "return_type": return_type,
        "partner_code": partner_code,
        "period": period,
        "file_name": file_name,
        "validated_at": validated_at.isoformat() + "Z",
        "outcome": outcome,
        "problem_count": len(problems),
        "rules": dict(sorted(Counter(p.rule for p in problems).items())),
        "great_expectations_version": gx.__version__,
        "suites": list(suites or []),
    }


def write(folder: Path, doc: dict) -> Path:
    """Write ``doc`` into a load's staging folder (its rename into place is the atomic step)."""
    path = folder / VALIDATION_FILE
    path.write_text(json.dumps(doc, separators=(",", ":"), sort_keys=True) + "\n", encoding="utf-8")
    return path


def read(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))
