"""The gate: decides whether one partner file is an acceptable return, and says why not.

Checks run in the order a partner would fix them: the file's place in landing (return type,
partner, period), whether it can be read at all, its header, and then every cell and row
through the Great Expectations suites derived from the contract (see :mod:`pkpi.suites`).
The gate never writes anything; :mod:`pkpi.ingest` acts on its verdict.

Great Expectations' cost is mostly per run (it builds a metric graph for every expectation),
not per row: :func:`judge_many` validates many waiting files in one run, each file's rows one
after another, and gives every file exactly the verdict :func:`judge` gives it alone.
"""

from __future__ import annotations

import logging
import re
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from itertools import accumulate
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from .landing import IN_PROGRESS_SUFFIXES, is_in_progress  # noqa: F401  (shared with the sensor)
from .contracts import Contract, get_contract, looks_like_identifier, return_types
from .gx_duckdb import close_source, fresh_run
from .gx_results import per_file
from .identifiers import ID_KINDS, identifier_kind
from .periods import Period, PeriodError, as_written, parse_period
from .reading import FileProblem, TextTable, read_table
from .reference import Reference
from .settings import FileLimits
from .rules import IDENTIFIER_RULE, PERIOD_COLUMNS, TYPE_REGEX, in_file_column, reference_parameter, suite_names

log = logging.getLogger(__name__)

MAX_SHOWN_VALUE = 80


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a file: a line of the errors file."""

    rule: str
    message: str
    row: int | None = None
    column: str | None = None
    value: str | None = None


@dataclass(frozen=True)
class ReturnKey:
    """Which return a landing file claims to be, from its folder names."""

    return_type: str | None
    partner_code: str | None
    period: str | None


@dataclass
class Verdict:
    """The gate's decision on one file."""

    key: ReturnKey
    problems: list[Problem] = field(default_factory=list)
    rows: pd.DataFrame | None = None  # typed rows ready to load, when accepted
    row_count: int | None = None
    notes: list[str] = field(default_factory=list)
    suites: list[dict] | None = None  # each GX suite's result on the file's cells (pkpi.gx_results)

    @property
    def accepted(self) -> bool:
        return not self.problems

    @property
    def is_nil(self) -> bool:
        return self.accepted and self.row_count == 0


# A folder name is taken exactly as written: ASCII letters, digits, - and _ only. Surrounding
# spaces, control characters or look-alike letters (full-width, Kelvin sign K) would make two
# folders that read the same to a person mean different returns, or break a notice; refusing
# them costs the partner one rename.
FOLDER_NAME = re.compile(r"[A-Za-z0-9_-]+")


def _canonical_partner(reference: Reference, code: str) -> str | None:
    """The directory's spelling of a partner code, matched ignoring ASCII case; None when unknown."""
    if not FOLDER_NAME.fullmatch(code):
        return None
    for partner in reference.partners:
        if partner.code.lower() == code.lower():
            return partner.code
    return None


def reference_codes(reference: Reference, table: str, column: str) -> dict[str, str]:
    """A reference list's codes keyed by their lower-case form (codes match ignoring case)."""
    return {str(getattr(row, column)).lower(): str(getattr(row, column)) for row in getattr(reference, table)}


def locate(path: Path, landing_dir: Path, reference: Reference) -> tuple[ReturnKey, Period | None, list[Problem]]:
    """Read return type, partner and period from a file's place under landing/ and check them.

    Accepted names are stored in their canonical form: the return type in lower case, the
    partner code as the partner directory spells it, the period as ``parse_period`` writes it.
    """
    parts = PurePosixPath(path.relative_to(landing_dir).as_posix()).parts
    layout = "landing/<return_type>/<partner_code>/<period>/<file>.csv"
    if len(parts) != 4:
        key = ReturnKey(*(list(parts[:-1]) + [None, None, None])[:3])
        return key, None, [Problem(
            "path_layout",
            f"The file is not in the agreed folder layout {layout}. Move it into the folder for "
            "its return type, partner and period.",
        )]
    rt_raw, partner_raw, period_raw, _ = parts
    rt = rt_raw.lower() if FOLDER_NAME.fullmatch(rt_raw) else None
    problems: list[Problem] = []
    partner = _canonical_partner(reference, partner_raw)
    known_type = rt in return_types()
    key = ReturnKey(rt if known_type else rt_raw, partner or partner_raw, period_raw)
    if not known_type:
        problems.append(Problem(
            "return_type_known",
            f"'{as_written(rt_raw)}' is not a return type. Name the folder exactly one of: "
            f"{', '.join(return_types())} (no spaces).",
        ))
        return key, None, problems
    contract = get_contract(rt)
    period: Period | None = None
    try:
        period = parse_period(period_raw, contract.period_kind)
        key = ReturnKey(key.return_type, key.partner_code, period.label)
    except PeriodError as exc:
        problems.append(Problem("period_format", f"{exc} ({rt} returns are "
                                f"{'monthly' if contract.period_kind == 'month' else 'by financial year'}.)"))
    if partner is None:
        problems.append(Problem(
            "partner_known",
            f"'{as_written(partner_raw)}' is not a partner code in the partner directory. Name "
            "the folder exactly the code the partnership gave you (no spaces).",
        ))
    elif period is not None and not reference.partner_active(partner, period.start, period.end):
        problems.append(Problem(
            "partner_active",
            f"Partner {partner} is not active in the partnership for {period.label}. Check the "
            "period, or ask the partnership to update the partner directory.",
        ))
    return key, period, problems


def _header_problems(table: TextTable, contract: Contract) -> tuple[dict[str, int], list[Problem]]:
    """Map contract columns to file columns; name every unknown, duplicate or missing column."""
    problems: list[Problem] = []
    positions: dict[str, int] = {}
    known = set(contract.column_names)
    for index, raw_name in enumerate(table.header):
        name = raw_name.strip().lower()
        if not name:
            if any(value is not None for value in table.column(index)):
                problems.append(Problem("header_blank", f"Column {index + 1} has values but no "
                                        "header. Give it its contract name or delete it.", row=1))
            continue
        if name in positions:
            problems.append(Problem("header_duplicate", f"The column '{raw_name}' appears more "
                                    "than once. Keep one.", row=1, column=name))
        elif name in known:
            positions[name] = index
        elif looks_like_identifier(raw_name):
            # The header is the partner's own text and names no child; values are never shown.
            problems.append(Problem(
                "column_identifier",
                f"The column '{raw_name}' looks like a direct identifier (a name, NHS number, date "
                "of birth, address, postcode, phone or email). The warehouse does not accept "
                "identifiers: delete the column and send the file again.",
                row=1, column=raw_name,
            ))
        else:
            problems.append(Problem(
                "column_unknown",
                f"The column '{raw_name}' is not in the {contract.return_type} contract. Delete it "
                f"or rename it; the columns are: {', '.join(contract.column_names)}.",
                row=1, column=raw_name,
            ))
    for c in contract.columns:
        if c.required and c.name not in positions:
            problems.append(Problem("column_missing", f"The required column '{c.name}' is "
                                    "missing. Add it (see the blank template).", row=1, column=c.name))
    return positions, problems


def _normalise_date(text: pd.Series) -> pd.Series:
    """DD/MM/YYYY -> YYYY-MM-DD where it is a real date; everything else left as written."""
    uk = text.str.fullmatch(r"[0-9]{2}/[0-9]{2}/[0-9]{4}", na=False)
    if uk.any():
        parsed = pd.to_datetime(text[uk], format="%d/%m/%Y", errors="coerce")
        text = text.copy()
        ok = parsed.notna()
        text.loc[parsed.index[ok]] = parsed[ok].dt.strftime("%Y-%m-%d")
    return text


def _contract_columns(table: TextTable, contract: Contract, positions: dict[str, int]) -> dict[str, list]:
    """The file's values of each contract column, in the contract's order (None where absent)."""
    if table.columns is None:  # read row by row: one pass over the rows, not one per column
        by_position = [list(values) for values in zip(*table.rows)] if table.rows else []
    else:
        by_position = table.columns
    columns = {}
    for c in contract.columns:
        idx = positions.get(c.name)
        columns[c.name] = list(by_position[idx]) if idx is not None and by_position else [None] * len(table.rows)
    return columns


def _column_text(c, series: pd.Series, reference: Reference) -> pd.Series:
    """One column's normalised text, as the values suite sees it."""
    if c.type == "date":
        return _normalise_date(series)
    present = series.notna()
    if c.type == "enum":
        return series.where(~present, series.str.lower())
    if c.reference:
        lookup = reference_codes(reference, *c.reference)
        lowered = series.str.lower()
        return series.where(~present, lowered.map(lookup).fillna(series))
    return series


def _per_distinct(column: pd.Series, convert) -> pd.Series:
    """``convert`` applied to each distinct value of ``column`` once, spread back over its rows
    (null where the value is blank): the value alone decides, and dates, numbers and
    enumerations repeat a great deal."""
    codes, uniques = pd.factorize(column)
    converted = convert(pd.Series(uniques, dtype=object)).to_numpy()
    blank = np.array([None], dtype=converted.dtype)  # None, NaN or NaT, as the type has it
    return pd.Series(np.append(converted, blank)[codes], index=column.index, dtype=converted.dtype)


def _frames_of(columns: dict[str, list], contract: Contract,
               reference: Reference) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The original text, the normalised text (values suite) and typed values of the number and
    date columns (ranges suite).

    Every value is treated on its own (nothing depends on the other rows), so the frames of
    several files' rows one after another are those files' frames one after another.
    """
    original = pd.DataFrame(columns, dtype=object)
    text = original.copy()
    typed = pd.DataFrame(index=original.index)
    for c in contract.columns:
        if c.type in ("date", "enum") or c.reference:
            text[c.name] = _per_distinct(original[c.name], lambda v: _column_text(c, v, reference))
        if c.type in TYPE_REGEX:  # the ranges suite checks these columns only
            typed[c.name] = _per_distinct(text[c.name], lambda v: _typed(c, v))
    return original, text, typed


def _typed(c, text: pd.Series) -> pd.Series:
    """A number or date column's values converted (null where they fail the type's rule)."""
    # Only text that meets the column's type rule (the same regex, here in Python re; in the
    # suite also in DuckDB's RE2, where tests/test_gx_duckdb.py checks it means the same) is
    # converted; the rest is null in the typed frame, so the ranges suite never reports a second
    # problem for it and nothing a lenient parser accepts ("1e3", "18.0", "inf", "2025-4-5") can
    # slip through.
    well_formed = text.str.contains(TYPE_REGEX[c.type], regex=True, na=False).astype(bool)
    candidates = text.where(well_formed, None)
    if c.type == "date":
        return pd.to_datetime(candidates, format="%Y-%m-%d", errors="coerce")
    return pd.to_numeric(candidates, errors="coerce").astype("float64")


def _frames(table: TextTable, contract: Contract, positions: dict[str, int],
            reference: Reference) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The original text, the normalised text (values suite) and typed values (ranges suite)."""
    return _frames_of(_contract_columns(table, contract, positions), contract, reference)


DUCKDB_FROM_ROWS = 20_000
"""The fewest rows a GX run validates on DuckDB; a run of fewer rows validates on pandas.

Both engines give the same verdicts (tests/test_gate_batch.py); what differs is the cost. GX's
pandas engine costs little to start and a great deal per row; its SQL engine on DuckDB the
reverse (a table written and queries compiled per run, then DuckDB's speed per row). They cost
the same at about this many rows (docs/performance.md)."""

ROW_INDEX = "pkpi_row"
"""The column, added to each frame validated on DuckDB, that names a failing row (its position
in the frame); GX's pandas engine names rows by the frame's index."""


@lru_cache(maxsize=1)
def _gx_context():
    """One ephemeral GX context per process, with each contract's suites registered once; both
    runners validate with them, with GX reading each expectation's arguments once per call
    (pkpi.gx_expectations). GX is imported here, when a file first needs validating."""
    from .gx_expectations import read_configuration_once
    from .suites import suites_context

    read_configuration_once()
    return suites_context()


@lru_cache(maxsize=1)
def _pandas_runner() -> "_PandasRunner":
    return _PandasRunner()


@lru_cache(maxsize=1)
def _duckdb_runner() -> "_DuckDBRunner":
    return _DuckDBRunner()


def _runner(rows: int) -> "_PandasRunner | _DuckDBRunner":
    """The runner for a GX run of ``rows`` rows (see :data:`DUCKDB_FROM_ROWS`)."""
    return _duckdb_runner() if rows >= DUCKDB_FROM_ROWS else _pandas_runner()


def _as_nanoseconds(dates: pd.Series) -> pd.Series:
    """``dates`` at nanosecond resolution when every date fits it (years 1678 to 2261).

    GX's pandas engine compares a datetime64[ns] column with its bounds in one vectorised step,
    but any other resolution (pandas parses to microseconds) one value at a time in Python. A
    date outside that span (a typing slip such as 0202-03-05) keeps its resolution and so its
    verdict.
    """
    low, high = dates.min(), dates.max()
    if pd.isna(low) or (low >= pd.Timestamp.min and high <= pd.Timestamp.max):
        return dates.astype("datetime64[ns]")
    return dates


class _PandasRunner:
    """Validates on the frame itself through GX's pandas engine: cheap to start, dear per row."""

    def __init__(self) -> None:
        import great_expectations as gx

        from .gx_pandas import skip_batch_fingerprints

        skip_batch_fingerprints()
        context, suites = _gx_context()
        asset = context.data_sources.add_pandas("partner_returns").add_dataframe_asset("return")
        batch_definition = asset.add_batch_definition_whole_dataframe("whole_file")
        self.definitions = {name: context.validation_definitions.add(
            gx.ValidationDefinition(name=f"{name}.pandas", data=batch_definition, suite=suite))
            for name, suite in suites.items()}

    def run(self, suite_name: str, frame: pd.DataFrame, parameters: dict) -> list:
        """One suite's expectation results, with every failing cell's index when any failed."""
        frame = frame.assign(**{n: _as_nanoseconds(frame[n]) for n in frame.columns if frame[n].dtype.kind == "M"})
        return _results(self.definitions[suite_name],
                        {"result_format": "COMPLETE", "unexpected_index_column_names": None},
                        batch_parameters={"dataframe": frame}, expectation_parameters=parameters)


def _results(definition, complete_format: dict, **run) -> list:
    """A validation definition's results: most files are clean, so it first runs in GX's
    cheapest mode (pass or fail only, roughly half the cost of listing cells); only a suite that
    failed runs again, in ``complete_format``, to list them."""
    quick = definition.run(result_format={"result_format": "BOOLEAN_ONLY"}, **run)
    if quick.success:
        return list(quick.results)
    return list(definition.run(result_format=complete_format, **run).results)


class _DuckDBRunner:
    """Validates on an in-memory DuckDB through GX's SQL engine: dearer to start and per run,
    far cheaper per row.

    Each suite reads one table of that DuckDB: :meth:`run` puts the frame to validate there, so
    GX's metrics run as DuckDB queries over it (at DuckDB's speed, not pandas' per-cell Python).
    sqlalchemy's DuckDB dialect is imported here, so a process of small files never loads it.
    """

    def __init__(self) -> None:
        import duckdb
        import duckdb_engine
        import great_expectations as gx

        from .gx_duckdb import close_at_exit, install
        from .suites import register_sql_functions

        install()
        # In memory: the frames live only while validated. This connection writes them (each
        # statement committed at once); GX reads through connections of its own to the same
        # database (and its identifier function).
        self.connection = duckdb.connect()
        register_sql_functions(self.connection)

        def gx_connection():
            return duckdb_engine.ConnectionWrapper(self.connection.cursor())

        context, suites = _gx_context()
        self.source = context.data_sources.add_sql(
            "partner_returns_duckdb", connection_string="duckdb:///:memory:", kwargs={"creator": gx_connection})
        self.definitions: dict[str, object] = {}
        self.tables: dict[str, str] = {}
        for name, suite in suites.items():
            table = name.replace(".", "_")
            self.tables[name] = table
            self.connection.execute(f"create table {table} ({ROW_INDEX} bigint)")  # replaced by each run
            batch = self.source.add_table_asset(table, table_name=table).add_batch_definition_whole_table("whole_file")
            self.definitions[name] = context.validation_definitions.add(
                gx.ValidationDefinition(name=f"{name}.duckdb", data=batch, suite=suite))
        close_at_exit(self.close)

    def close(self) -> None:
        """Close GX's connections and the DuckDB (see pkpi.gx_duckdb.close_source)."""
        close_source(self.source, self.connection)

    def run(self, suite_name: str, frame: pd.DataFrame, parameters: dict) -> list:
        """One suite's expectation results on ``frame``, with every failing cell's row (its
        :data:`ROW_INDEX`) when any failed."""
        definition = self.definitions[suite_name]
        table = self.tables[suite_name]
        fresh_run(self.source.get_execution_engine())
        # Copied into DuckDB's own storage once: every query GX makes then reads native columns,
        # not the frame's Python strings again.
        self.connection.register("pkpi_frame", frame.assign(**{ROW_INDEX: np.arange(len(frame))}))
        try:
            self.connection.execute(f"create or replace table {table} as select * from pkpi_frame")
        finally:
            self.connection.unregister("pkpi_frame")
        try:
            # Every failing row: GX's SQL engine otherwise stops listing at partial_unexpected_count.
            return _results(definition, {"result_format": "COMPLETE", "unexpected_index_column_names": [ROW_INDEX],
                                         "partial_unexpected_count": max(len(frame), 1),
                                         "return_unexpected_index_query": False},
                            expectation_parameters=parameters)
        finally:
            self.connection.execute(f"delete from {table}")  # nothing of a file outlives its run


# Rules whose failing value is never repeated: it is, or may be, a direct identifier (an id
# that is not a code can be a name or an address the value checks do not recognise).
UNSHOWN_RULES = frozenset({IDENTIFIER_RULE, "id_format"})

# One bad cell is one problem: when several rules fail on the same cell, only the first of
# these is reported (a value that is not a whole number is not also out of range; an email
# address in contact_id is not also too long). Rules not listed come last.
CELL_RULE_ORDER = (
    IDENTIFIER_RULE, "no_formula", "type_date", "type_integer", "type_decimal", "id_format",
    "enum", "reference", "decimal_places", "max_length", "required", "required_when",
    "blank_otherwise", "blank_unless", "values_when", "range", "in_period", "not_in_future",
    "not_before", "unique",
)
_RULE_RANK = {rule: rank for rank, rule in enumerate(CELL_RULE_ORDER)}


def _shown(value: object, rule: str) -> str | None:
    """The value as the errors file shows it; None when it must not be repeated."""
    if value is None or (isinstance(value, float) and pd.isna(value)) or rule in UNSHOWN_RULES:
        return None
    text = str(value)
    if identifier_kind(text, ID_KINDS):  # whatever rule failed, an identifier is never echoed
        return None
    return text if len(text) <= MAX_SHOWN_VALUE else text[:MAX_SHOWN_VALUE] + f"... ({len(text)} characters)"


def one_problem_per_cell(problems: list[Problem]) -> list[Problem]:
    """Keep, for each cell (row and column), only its first problem by :data:`CELL_RULE_ORDER`."""
    best: dict[tuple[int, str], Problem] = {}
    out: list[Problem | tuple[int, str]] = []
    for p in problems:
        if p.row is None or p.column is None:
            out.append(p)
            continue
        cell = (p.row, p.column)
        if cell not in best:
            out.append(cell)
            best[cell] = p
        elif _RULE_RANK.get(p.rule, len(_RULE_RANK)) < _RULE_RANK.get(best[cell].rule, len(_RULE_RANK)):
            best[cell] = p
    return [best[p] if isinstance(p, tuple) else p for p in out]


def _exception_message(info: dict | None) -> str | None:
    """The message of the exception GX caught evaluating an expectation, if it caught one.

    GX reports it either flat or, from the SQL engine, once per metric that raised."""
    if not info:
        return None
    if info.get("raised_exception"):
        return str(info.get("exception_message"))
    for value in info.values():
        if isinstance(value, dict) and value.get("raised_exception"):
            return str(value.get("exception_message"))
    return None


def _positions(result) -> list[int]:
    """The positions in the validated frame of the rows an expectation result names as failing."""
    # GX's pandas engine names a row by its index, the SQL engine by a dict of its index columns.
    return [row[ROW_INDEX] if isinstance(row, dict) else row
            for row in (result.result or {}).get("unexpected_index_list") or ()]


def _problems_from(results: list, original: pd.DataFrame, source_rows: list[int]) -> list[tuple[int, Problem]]:
    """Each failing cell's problem, with its position in ``original`` (which file it is in, when
    several files were validated together)."""
    problems: list[tuple[int, Problem]] = []
    for r in results:
        meta = r.expectation_config.meta or {}
        failure = _exception_message(r.exception_info)
        if failure is None and not r.success and not r.result.get("unexpected_index_list"):
            failure = "it failed without naming a row"  # never let a failed rule pass unreported
        if failure is not None:
            raise RuntimeError(
                f"The gate could not evaluate rule {meta.get('rule')} on {meta.get('column')}: {failure}"
            )
        if r.success:
            continue
        column = meta.get("column")
        for index in _positions(r):
            value = original.at[index, column] if column in original.columns else None
            problems.append((index, Problem(meta["rule"], meta["message"], row=source_rows[index],
                                            column=column, value=_shown(value, meta["rule"]))))
    return problems


def _typed_rows(contract: Contract, text: pd.DataFrame, typed: pd.DataFrame,
                source_rows: list[int]) -> pd.DataFrame:
    out = pd.DataFrame({"source_row": pd.Series(source_rows, dtype="int32")})
    for c in contract.columns:
        if c.type == "date":
            out[c.name] = typed[c.name].dt.date.astype(object).where(typed[c.name].notna(), None)
        elif c.type == "integer":
            out[c.name] = typed[c.name].astype("Int32")
        elif c.type == "decimal":
            out[c.name] = typed[c.name]
        else:
            out[c.name] = text[c.name].astype(object)
    return out


@dataclass
class _Checked:
    """A file that passed every whole-file check and now waits for its cells to be validated."""

    verdict: Verdict
    contract: Contract
    source_rows: list[int]
    columns: dict[str, list]  # see _contract_columns
    parameters: dict  # the suites' parameters: the same for every file of one ingest run
    period: Period  # its rows' bounds reach the ranges suite as PERIOD_COLUMNS


def _check_file(path: Path, content: bytes, landing_dir: Path, reference: Reference,
                today: date, limits: FileLimits | None) -> Verdict | _Checked:
    """Everything up to the cell checks: a finished verdict when the file fails before them."""
    key, period, problems = locate(path, landing_dir, reference)
    verdict = Verdict(key=key, problems=problems)
    if problems or period is None:
        return verdict
    contract = get_contract(key.return_type)
    try:
        table = read_table(path, content, sheet_hint=contract.return_type, limits=limits or FileLimits())
    except FileProblem as exc:
        verdict.problems.append(Problem(exc.rule, exc.message, row=exc.row))
        return verdict
    verdict.notes.extend(table.notes)
    positions, header_problems = _header_problems(table, contract)
    if header_problems:
        verdict.problems.extend(header_problems)
        return verdict
    parameters = {"today": pd.Timestamp(today)}
    for c in contract.columns:
        if c.reference:
            parameters[reference_parameter(*c.reference)] = sorted(reference_codes(reference, *c.reference).values())
    verdict.row_count = len(table.rows)
    return _Checked(verdict, contract, table.source_rows, _contract_columns(table, contract, positions), parameters,
                    period)


BATCH_MAX_ROWS = 250_000
"""The most rows validated in one Great Expectations run (a larger file runs alone)."""

# Expectations whose verdict on a row depends on that row alone, so running them over several
# files' rows at once gives each file the verdict it gets alone. Uniqueness is the one rule
# that looks across rows: it runs on the value keyed by its file (rules.in_file_column), so a
# value two files share is no duplicate.
PER_ROW_EXPECTATIONS = frozenset({
    "expect_column_values_to_not_look_like_identifiers", "expect_column_values_to_not_be_null",
    "expect_column_values_to_be_null", "expect_column_values_to_match_regex",
    "expect_column_values_to_not_match_regex", "expect_column_values_to_be_in_set",
    "expect_column_value_lengths_to_be_between", "expect_column_values_to_be_between",
    "expect_column_pair_values_a_to_be_greater_than_b",
})
UNIQUE_EXPECTATION = "expect_column_values_to_be_unique"


@lru_cache(maxsize=None)
def batchable(return_type: str) -> bool:
    """Whether files of ``return_type`` may share a GX run: every expectation of its suites is
    per row (or uniqueness of a column the contract marks unique, keyed by file), none tolerates
    failures (``mostly``); otherwise each file runs alone, as before."""
    from .suites import build_suites

    contract = get_contract(return_type)
    unique = {in_file_column(c.name) for c in contract.columns if c.unique}
    for suite in build_suites(contract):
        for expectation in suite.expectations:
            kind = expectation.expectation_type
            if getattr(expectation, "mostly", 1) not in (None, 1):
                return False
            if kind == UNIQUE_EXPECTATION:
                if getattr(expectation, "column", None) not in unique:
                    return False
            elif kind not in PER_ROW_EXPECTATIONS:
                return False
    return True


def _batches(checked: list[_Checked]) -> list[list[_Checked]]:
    """Files that can be validated together in one GX run without changing any verdict.

    Together means the same suites with the same parameters (return type, today, reference
    lists). What belongs to each file travels with its rows (its period, PERIOD_COLUMNS; its
    unique values keyed by file, in_file_column), and a run holds at most BATCH_MAX_ROWS rows.
    """
    if len(checked) == 1:
        return [checked]
    open_batches: dict[tuple, tuple[list[_Checked], list[int]]] = {}
    out: list[list[_Checked]] = []
    for item in checked:
        group = (item.contract.return_type,
                 tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in sorted(item.parameters.items())))
        if not batchable(item.contract.return_type):
            out.append([item])
            continue
        rows = len(item.source_rows)
        members, size = open_batches.get(group, ([], [BATCH_MAX_ROWS]))
        if not members or size[0] + rows > BATCH_MAX_ROWS:
            members, size = [], [0]
            open_batches[group] = (members, size)
            out.append(members)
        members.append(item)
        size[0] += rows
    return out


def _keyed_by_file(values: pd.Series, file_of_row: np.ndarray) -> pd.Series:
    """One whole number per (file, value), null where the value is blank: equal only for the
    same value in the same file."""
    codes, distinct = pd.factorize(values)  # a blank is -1
    keys = file_of_row * max(len(distinct), 1) + codes
    return pd.Series(pd.arrays.IntegerArray(keys, codes < 0), index=values.index)


def _validate(batch: list[_Checked], reference: Reference) -> list[tuple[list[Problem], pd.DataFrame | None, list[dict]]]:
    """Run both suites once over the rows of every file of ``batch``, one file after another;
    each file's problems (in the order judging it alone gives them), typed rows and suite results."""
    first = batch[0]
    contract = first.contract
    if len(batch) == 1:
        columns, source_rows = first.columns, first.source_rows
    else:
        columns = {c.name: [v for b in batch for v in b.columns[c.name]] for c in contract.columns}
        source_rows = [row for b in batch for row in b.source_rows]
    original, text, typed = _frames_of(columns, contract, reference)
    sizes = [len(b.source_rows) for b in batch]
    for column, bound in zip(PERIOD_COLUMNS, ("start", "end")):
        typed[column] = np.repeat(np.array([pd.Timestamp(getattr(b.period, bound)) for b in batch], dtype="datetime64[ns]"),
                                  sizes)
    file_of_row = np.repeat(np.arange(len(batch), dtype=np.int64), sizes)
    for c in contract.columns:
        if c.unique:
            text[in_file_column(c.name)] = _keyed_by_file(text[c.name], file_of_row)
    values_suite, ranges_suite = suite_names(contract)
    runner = _runner(len(original))
    ends = list(accumulate(len(b.source_rows) for b in batch))
    found: list[tuple[int, Problem]] = []
    suites: list[list[dict]] = [[] for _ in batch]
    for name, frame in ((values_suite, text), (ranges_suite, typed)):
        results = runner.run(name, frame, first.parameters)
        found += _problems_from(results, original, source_rows)
        for n, result in enumerate(per_file(name, results, [_positions(r) for r in results], ends, source_rows)):
            suites[n].append(result)
    problems: list[list[Problem]] = [[] for _ in batch]
    for index, problem in found:
        problems[bisect_right(ends, index)].append(problem)
    # Typed rows only for the files accepted (a rejected file's values need not fit the types).
    starts = [0] + ends[:-1]
    clean = [n for n in range(len(batch)) if not problems[n]]
    rows: list[pd.DataFrame | None] = [None] * len(batch)
    if len(clean) == len(batch) == 1:
        rows[0] = _typed_rows(contract, text, typed, source_rows)
    elif clean:
        keep = [i for n in clean for i in range(starts[n], ends[n])]
        together = _typed_rows(contract, text.iloc[keep].reset_index(drop=True),
                               typed.iloc[keep].reset_index(drop=True), [source_rows[i] for i in keep])
        offset = 0
        for n in clean:
            size = ends[n] - starts[n]
            rows[n] = together.iloc[offset:offset + size].reset_index(drop=True)
            offset += size
    return list(zip(problems, rows, suites))


def _finish(item: _Checked, validated: tuple[list[Problem], pd.DataFrame | None, list[dict]]) -> Verdict:
    problems, rows, suites = validated
    problems.sort(key=lambda p: (p.row or 0, p.column or "", p.rule))
    verdict = item.verdict
    verdict.problems = one_problem_per_cell(problems)
    verdict.suites = suites
    if not verdict.problems:
        verdict.rows = rows
    return verdict


def judge(path: Path, content: bytes, landing_dir: Path, reference: Reference,
          today: date | None = None, limits: FileLimits | None = None) -> Verdict:
    """The gate's verdict on one landing file: accepted with typed rows, or its problems."""
    checked = _check_file(path, content, landing_dir, reference, today or date.today(), limits)
    if isinstance(checked, Verdict):
        return checked
    return _finish(checked, _validate([checked], reference)[0])


def judge_many(files: Sequence[tuple[Path, bytes]], landing_dir: Path, reference: Reference,
               today: date | None = None, limits: FileLimits | None = None,
               judged: Callable[[int], None] | None = None) -> list[Verdict | Exception]:
    """The gate's verdicts on several landing files, in their order: each exactly what
    :func:`judge` gives that file alone.

    Great Expectations' cost is mostly per run, not per row, so the files of one return type
    are validated in as few runs as possible (see :func:`_batches`). Where the gate
    itself fails on a file (judge would raise), its place holds the exception instead, and the
    other files' verdicts are unaffected. ``judged`` is told how many more files have their
    verdict each time some do (the ingest's progress).
    """
    judged = judged or (lambda count: None)
    today = today or date.today()
    out: list[Verdict | Exception | None] = [None] * len(files)
    waiting: list[_Checked] = []
    place: dict[int, int] = {}
    for number, (path, content) in enumerate(files):
        try:
            checked = _check_file(path, content, landing_dir, reference, today, limits)
        except Exception as exc:  # noqa: BLE001 - one file's failure is that file's, as in judge
            out[number] = exc
            continue
        if isinstance(checked, Verdict):
            out[number] = checked
        else:
            place[id(checked)] = number
            waiting.append(checked)
    judged(len(files) - len(waiting))  # refused before validation
    for batch in _batches(waiting):
        try:
            results = _validate(batch, reference)
        except Exception as exc:  # noqa: BLE001 - find out which file it was: each alone, as judge runs it
            for item in batch:
                try:
                    out[place[id(item)]] = exc if len(batch) == 1 else _finish(item, _validate([item], reference)[0])
                except Exception as own:  # noqa: BLE001
                    out[place[id(item)]] = own
            judged(len(batch))
            continue
        for item, problems in zip(batch, results):
            out[place[id(item)]] = _finish(item, problems)
        judged(len(batch))
    return out  # type: ignore[return-value]
