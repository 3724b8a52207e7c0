"""Judging many files in one Great Expectations run gives each file exactly its own verdict.

``pkpi.gate.judge_many`` validates the waiting files of one return type together,
so GX's cost per run (building its metric graph for every expectation) is paid once, not once
per file. A partner relies on that never showing: the same rules, rows, columns, messages,
values and order as the file judged alone, the same GX results kept in its validation.json,
and nothing of another partner's file (a contact id another partner also used is not a duplicate).
"""

from __future__ import annotations

import pandas as pd
import pytest

import pkpi.gate as gate
from pkpi.contracts import return_types
from pkpi.gate import judge, judge_many
from pkpi.reference import load_reference
from pkpi.settings import Settings
from support.returns import MONTH, TODAY, csv_bytes, drop_file, make_reference, table
from test_gate_corpus import CASES


@pytest.fixture(scope="module")
def place(tmp_path_factory):
    base = tmp_path_factory.mktemp("batch")
    settings = Settings.from_env({"PKPI_DATA_DIR": str(base / "data"),
                                  "PKPI_REFERENCE_DIR": str(make_reference(base / "reference"))})
    return settings, load_reference(settings)


def _files(settings, cases: list[tuple[str, bytes]]):
    return [(drop_file(settings.landing_dir, relative, content), content) for relative, content in cases]


def _same(batched, alone) -> None:
    assert not isinstance(batched, Exception), batched
    assert batched.key == alone.key
    assert batched.problems == alone.problems  # rule, message, row, column, value, in order
    assert batched.notes == alone.notes
    assert batched.row_count == alone.row_count
    assert batched.suites == alone.suites  # each file's own GX results (pkpi.gx_results)
    if alone.rows is None:
        assert batched.rows is None
    else:
        pd.testing.assert_frame_equal(batched.rows, alone.rows)


@pytest.fixture(scope="module")
def corpus(place):
    """The whole corpus judged together (as ingest runs the gate, so on pandas): its files, their
    verdicts and the size of each GX run; shared by the tests that compare it with other runs."""
    settings, reference = place
    files = _files(settings, [(c.path, c.content) for c in CASES])
    runs = []
    real_validate = gate._validate
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(gate, "_validate", lambda batch, ref: runs.append(len(batch)) or real_validate(batch, ref))
        batched = judge_many(files, settings.landing_dir, reference, today=TODAY, limits=settings.limits)
    return files, batched, runs


def test_the_whole_corpus_judged_together_gets_the_verdicts_judged_alone(place, corpus):
    settings, reference = place
    files, batched, together = corpus
    alone = [judge(path, content, settings.landing_dir, reference, today=TODAY, limits=settings.limits)
             for path, content in files]
    assert len(batched) == len(files)
    for case, b, a in zip(CASES, batched, alone):
        assert bool(a.accepted) == case.accepted, case.id
        _same(b, a)
    # The corpus's files reuse the same contact ids, and still share one run per return type.
    assert len(together) <= len(return_types()) < sum(together)


def test_both_engines_give_every_file_of_the_corpus_the_same_verdict(place, corpus, monkeypatch):
    """Small runs validate on GX's pandas engine, large ones on its SQL engine on DuckDB
    (gate.DUCKDB_FROM_ROWS): a partner's verdict must not depend on which one ran."""
    settings, reference = place
    files, on_pandas, _ = corpus
    monkeypatch.setattr(gate, "DUCKDB_FROM_ROWS", 0)
    on_duckdb = judge_many(files, settings.landing_dir, reference, today=TODAY, limits=settings.limits)
    for case, duck, pandas_verdict in zip(CASES, on_duckdb, on_pandas):
        assert bool(pandas_verdict.accepted) == case.accepted, case.id
        _same(duck, pandas_verdict)
    assert gate._pandas_runner.cache_info().currsize == gate._duckdb_runner.cache_info().currsize == 1


# One bad cell per file, each breaking a different rule of the contacts contract.
BAD_CELLS = [
    {(3, "child_age_years"): "19"}, {(3, "child_age_years"): "seven"}, {(4, "contact_date"): "2025-04-02"},
    {(2, "contact_date"): "31/02/2025"}, {(5, "contact_source"): "postman"},
    {(3, "referral_date"): ""}, {(3, "referral_date"): "2025-03-09"}, {(4, "child_id"): "Jemima"},
    {(2, "child_id"): "=SUM(A1)"}, {(2, "outcome"): "referral"}, {(5, "referral_date"): "2025-04-20"},
    {(2, "contact_id"): "D-1", (4, "contact_id"): "D-1"}, {(4, "child_id"): "943 476 5919"}, {(5, "sex"): "F"},
    {(3, "child_age_years"): "9434765919"},  # a rejected file's values need not fit the typed rows
]


def _own_ids(number: int, cells: dict) -> bytes:
    """A contacts return with ids no other file uses, then ``cells`` edited."""
    ids = {(row, "contact_id"): f"F{number}-C{row}" for row in range(2, 6)}
    ids.update({(row, "child_id"): f"K-{number}-{row}" for row in range(2, 6)})
    return csv_bytes(table("contacts", {**ids, **cells}))


def test_files_of_many_partners_share_one_run_and_keep_their_own_verdicts(place, monkeypatch):
    settings, reference = place
    cases = [(f"contacts/NCT/{MONTH}/many-{n}.csv", _own_ids(n, cells)) for n, cells in enumerate(BAD_CELLS)]
    cases += [(f"contacts/WNC/{MONTH}/clean-{n}.csv", _own_ids(100 + n, {})) for n in range(6)]
    files = _files(settings, cases)
    runs = []
    real_validate = gate._validate
    monkeypatch.setattr(gate, "_validate", lambda batch, ref: runs.append(len(batch)) or real_validate(batch, ref))
    batched = judge_many(files, settings.landing_dir, reference, today=TODAY)
    assert runs == [len(files)]  # one GX run for all of them
    monkeypatch.undo()
    for (path, content), verdict in zip(files, batched):
        _same(verdict, judge(path, content, settings.landing_dir, reference, today=TODAY))
    rejected = [v for v in batched if not v.accepted]
    assert len(rejected) == len(BAD_CELLS) and all(v.accepted for v in batched[len(BAD_CELLS):])
    assert len({p.rule for v in rejected for p in v.problems}) >= 10


def test_a_value_two_partners_share_is_not_a_duplicate_but_one_within_a_file_still_is(place, monkeypatch):
    settings, reference = place
    clean_nct = csv_bytes(table("contacts"))
    clean_other = csv_bytes(table("contacts"))  # the very same contact ids, from another partner
    twice = csv_bytes(table("contacts", {(3, "contact_id"): "C001"}))
    files = _files(settings, [(f"contacts/NCT/{MONTH}/shared-a.csv", clean_nct),
                              (f"contacts/ICB/{MONTH}/shared-b.csv", clean_other),
                              (f"contacts/NNC/{MONTH}/twice.csv", twice)])
    runs = []
    real_validate = gate._validate
    monkeypatch.setattr(gate, "_validate", lambda batch, ref: runs.append(len(batch)) or real_validate(batch, ref))
    a, b, c = judge_many(files, settings.landing_dir, reference, today=TODAY)
    assert runs == [3]  # together (uniqueness is keyed by file, rules.in_file_column)
    monkeypatch.undo()
    assert a.accepted and b.accepted and a.row_count == b.row_count == 4
    assert [(p.rule, p.row, p.column) for p in c.problems] == [("unique", 2, "contact_id"), ("unique", 3, "contact_id")]
    for (path, content), verdict in zip(files, (a, b, c)):
        _same(verdict, judge(path, content, settings.landing_dir, reference, today=TODAY))


@pytest.mark.parametrize("engine", ["pandas", "duckdb"])
def test_files_for_different_periods_share_one_run_and_are_each_checked_against_their_own(place, monkeypatch,
                                                                                           engine):
    """Each row carries its own file's period (rules.PERIOD_COLUMNS), so one run serves them all."""
    if engine == "duckdb":
        monkeypatch.setattr(gate, "DUCKDB_FROM_ROWS", 0)
    settings, reference = place
    edges = ["2025-01-31", "2025-02-01", "2025-02-28", "2025-03-01", "2025-03-31", "2025-04-01"]

    def dated(prefix: str) -> bytes:
        return csv_bytes(table("contacts", rows=[[f"{prefix}{n}", f"K-{prefix}{n}", day, "police", "7", "female",
                                                  "white", "nfa", ""] for n, day in enumerate(edges)]))

    files = _files(settings, [(f"contacts/NCT/{MONTH}/march.csv", dated("M")),
                              ("contacts/NCT/2025-02/february.csv", dated("F")),
                              ("contacts/NCT/2024-04/april-last-year.csv", dated("A"))])
    runs = []
    real_validate = gate._validate
    monkeypatch.setattr(gate, "_validate", lambda batch, ref: runs.append(len(batch)) or real_validate(batch, ref))
    in_march, in_february, in_april = judge_many(files, settings.landing_dir, reference, today=TODAY)
    assert runs == [3]
    monkeypatch.undo()
    # Rows 2 to 7 hold the dates above: each file keeps the two inside its own month.
    assert [(p.rule, p.row) for p in in_march.problems] == [("in_period", r) for r in (2, 3, 4, 7)]
    assert [(p.rule, p.row) for p in in_february.problems] == [("in_period", r) for r in (2, 5, 6, 7)]
    assert [(p.rule, p.row) for p in in_april.problems] == [("in_period", r) for r in range(2, 8)]
    for (path, content), verdict in zip(files, (in_march, in_february, in_april)):
        _same(verdict, judge(path, content, settings.landing_dir, reference, today=TODAY))


@pytest.mark.parametrize("engine", ["pandas", "duckdb"])
def test_every_failing_row_is_reported_not_only_the_first_twenty(place, monkeypatch, engine):
    """GX's SQL engine lists at most partial_unexpected_count failing rows unless told otherwise."""
    if engine == "duckdb":
        monkeypatch.setattr(gate, "DUCKDB_FROM_ROWS", 0)
    settings, reference = place
    rows = [[f"C{n:03d}", f"K-{n:04d}", "2025-04-02", "police", "x", "female", "white", "nfa", ""]
            for n in range(30)]
    files = _files(settings, [(f"contacts/NCT/{MONTH}/thirty.csv", csv_bytes(table("contacts", rows=rows)))])
    verdict = judge(files[0][0], files[0][1], settings.landing_dir, reference, today=TODAY)
    for rule in ("type_integer", "in_period"):
        assert [p.row for p in verdict.problems if p.rule == rule] == list(range(2, 32))


def test_a_file_the_gate_fails_on_does_not_take_the_others_with_it(place, monkeypatch):
    settings, reference = place
    good = csv_bytes(table("contacts"))
    files = _files(settings, [(f"contacts/NCT/{MONTH}/fine.csv", good),
                              (f"contacts/ICB/{MONTH}/breaks.csv", csv_bytes(table("contacts")))])
    real_validate = gate._validate

    def failing(batch, ref):
        if any(item.verdict.key.partner_code == "ICB" for item in batch):
            raise RuntimeError("GX failed")
        return real_validate(batch, ref)

    monkeypatch.setattr(gate, "_validate", failing)
    fine, broken = judge_many(files, settings.landing_dir, reference, today=TODAY)
    assert fine.accepted and fine.row_count == 4
    assert isinstance(broken, RuntimeError)


def test_every_shipped_suite_may_share_a_run():
    """Fails loudly when a contract or GX change adds an expectation that looks across rows
    (or tolerates failures): such files silently fall back to one GX run each, so the gate
    would be correct but slow. Decide whether the new expectation is per row, then list it."""
    assert all(gate.batchable(rt) for rt in return_types())


def test_a_suite_with_an_expectation_across_rows_runs_file_by_file(place, monkeypatch):
    settings, reference = place
    monkeypatch.setattr(gate, "PER_ROW_EXPECTATIONS", gate.PER_ROW_EXPECTATIONS - {"expect_column_values_to_be_in_set"})
    gate.batchable.cache_clear()
    try:
        files = _files(settings, [(f"contacts/NCT/{MONTH}/apart-{n}.csv", _own_ids(200 + n, {})) for n in range(3)])
        runs = []
        real_validate = gate._validate
        monkeypatch.setattr(gate, "_validate", lambda batch, ref: runs.append(len(batch)) or real_validate(batch, ref))
        verdicts = judge_many(files, settings.landing_dir, reference, today=TODAY)
        assert runs == [1, 1, 1] and all(v.accepted for v in verdicts)
    finally:
        gate.batchable.cache_clear()
