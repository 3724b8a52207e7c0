"""Years of history in a warehouse, by replicating a real ingest's loads back in time (issue 13).

Not a test. :mod:`bench` uses it; by hand, after ``pkpi ingest`` of one generated year
(benchmarks/national_data.py, March 2025 to February 2026 say) into ``$PKPI_DATA_DIR``:

    .venv/bin/python benchmarks/history.py DATA_DIR --first 2025-03 --last 2026-02 --years 10
    .venv/bin/python benchmarks/history.py DATA_DIR --compare REAL_DATA_DIR --period 2024-03

Ingesting ten national years for real would take hours; replicating one year takes a minute. Each
accepted load of the year (``--first`` .. ``--last``) is copied ``k`` years back, for ``k`` = 1 ..
``years - 1``, in the shape :mod:`pkpi.ingest` writes, so the copy is what a real ingest of the
file :mod:`national_data` writes for that earlier month (``--history-from``) would leave:

* ``raw.<return_type>``: the load's rows, every date column and record id moved back ``k`` years
  (``national_data.shift_records``, here in SQL), ``source_row`` and every other value as they are;
* ``audit.loads``: the period, file name and landing path of the earlier month; the checksum and
  size of that earlier file, computed in DuckDB from the copied rows written as the demo's CSV
  writer writes them (so a byte of difference shows in the check); ``received_at``,
  ``modified_at`` and ``validated_at`` ``k`` years earlier; the load id made from those as ingest
  makes it (validation time and checksum); ``arrival_seq`` from the sequence, as ingest's default;
  the stored path that load's archive copy would have. The archive itself is not copied: neither
  ``pkpi build`` nor ``pkpi scorecard`` reads it.

Ingest writes nothing else for an accepted file (no notice, no deletion; ``audit.unsettled_loads``
is empty again once it is settled). Everything is set-based (``INSERT ... SELECT``), one
transaction a year.

:func:`compare` is the check: for a month both ingested for real (from national_data's files)
and replicated, every table holds the same rows, except the values a real ingest takes from its
own clock (``validated_at``, hence the load id's time, ``arrival_seq``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "include"))

import duckdb  # noqa: E402

from pkpi.contracts import get_contract  # noqa: E402
from pkpi.settings import Settings  # noqa: E402
from pkpi.warehouse import connect, transaction  # noqa: E402

RETURN_TYPES = ("contacts", "training", "child_deaths")
"""The national returns (national_data.RETURN_TYPES)."""

_ID_PATTERN = "^[A-Z]{3}-[A-Z][0-9]{4}-[0-9]+$"  # national_data._RECORD_ID
# Columns ingest takes from its own clock: never equal between two ingests of the same file.
_CLOCK_COLUMNS = ("load_id", "validated_at", "arrival_seq")


def _shifted(column, years: int) -> str:
    """The SQL of ``column`` ``years`` earlier, as national_data.shift_records moves it."""
    name = column.name
    if column.type == "date":
        return f"CAST({name} - INTERVAL {years} YEAR AS DATE)"
    if column.is_id:
        return (f"CASE WHEN regexp_matches({name}, '{_ID_PATTERN}') THEN substr({name}, 1, 5) || "
                f"lpad(CAST((CAST(substr({name}, 6, 2) AS INTEGER) - {years % 100} + 100) % 100 AS VARCHAR), 2, '0')"
                f" || substr({name}, 8) ELSE {name} END")
    return name


def _cell(column) -> str:
    """The SQL of the CSV cell the demo's writer (csv.writer, pkpi.demo._cell) writes."""
    name = column.name
    if column.type == "date":
        text = f"strftime({name}, '%Y-%m-%d')"
    elif column.type == "decimal":
        text = f"printf('%.2f', {name})"
    elif column.type == "integer":
        text = f"CAST({name} AS VARCHAR)"
    else:  # text and enum, quoted only when they must be (csv.QUOTE_MINIMAL)
        text = (f"CASE WHEN regexp_matches({name}, '[,\"\\r\\n]') "
                f"THEN '\"' || replace({name}, '\"', '\"\"') || '\"' ELSE {name} END")
    return f"coalesce({text}, '')"


def replicate(settings: Settings, first: str, last: str, years: int) -> dict[str, int]:
    """Copy the accepted loads of ``first`` .. ``last`` (one year) back 1 .. ``years - 1`` years;
    returns the rows added per table."""
    added: dict[str, int] = {}
    with connect(settings) as con:
        base = con.execute(
            "SELECT count(*), count(DISTINCT period), count(*) FILTER (WHERE load_id <> strftime(validated_at, "
            "'%Y%m%dT%H%M%S%f') || '-' || checksum_sha256[1:10]) FROM audit.loads WHERE status = 'accepted' "
            "AND period BETWEEN ? AND ?", [first, last]).fetchone()
        if base[0] == 0 or base[1] != 12:
            raise SystemExit(f"Replicating needs one whole ingested year: {first} .. {last} has {base[0]} "
                             f"accepted loads in {base[1]} months. Ingest national_data's year first.")
        if base[2]:
            raise SystemExit(f"{base[2]} load ids are not made as this tool makes them (validation time and "
                             "checksum): pkpi.ingest changed; update benchmarks/history.py to match.")
        columns = [c for (c,) in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'audit' AND "
            "table_name = 'loads' ORDER BY ordinal_position").fetchall() if c != "arrival_seq"]
        for k in range(1, years):
            with transaction(con):
                for table, count in _replicate_year(con, first, last, k, columns).items():
                    added[table] = added.get(table, 0) + count
    return added


def _replicate_year(con, first: str, last: str, k: int, columns: list[str]) -> dict[str, int]:
    """One year back (``k``): the shifted rows, their files' checksums, the loads, the rows."""
    period = f"CAST(CAST(substr(period, 1, 4) AS INTEGER) - {k} AS VARCHAR) || substr(period, 5)"
    con.execute("CREATE OR REPLACE TEMP TABLE replica_files (base_load_id VARCHAR, checksum VARCHAR, bytes BIGINT)")
    for return_type in RETURN_TYPES:
        contract = get_contract(return_type)
        shifted = ", ".join(f"{_shifted(c, k)} AS {c.name}" for c in contract.columns)
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE replica_{return_type} AS
            SELECT r.load_id AS base_load_id, r.source_row, {shifted}
            FROM raw.{return_type} AS r
            WHERE r.load_id IN (SELECT load_id FROM audit.loads WHERE status = 'accepted'
                                AND return_type = '{return_type}' AND period BETWEEN '{first}' AND '{last}')""")
        line = " || ',' || ".join(_cell(c) for c in contract.columns)
        header = ",".join(contract.column_names) + "\n"
        # The file national_data writes for that month: the header, then one line a row, "\n" each.
        con.execute(f"""
            INSERT INTO replica_files
            SELECT load_id, sha256(content), octet_length(encode(content))
            FROM (SELECT l.load_id, '{header[:-1]}' || chr(10) || coalesce(b.body, '') AS content
                  FROM audit.loads AS l
                  LEFT JOIN (SELECT base_load_id, string_agg({line} || chr(10), '' ORDER BY source_row) AS body
                             FROM replica_{return_type} GROUP BY base_load_id) AS b ON b.base_load_id = l.load_id
                  WHERE l.status = 'accepted' AND l.return_type = '{return_type}'
                    AND l.period BETWEEN '{first}' AND '{last}')""")
    validated = f"validated_at - INTERVAL {k} YEAR"
    new_id = f"strftime({validated}, '%Y%m%dT%H%M%S%f') || '-' || f.checksum[1:10]"
    values = {
        "load_id": new_id,
        "period": period,
        "file_name": f"replace(file_name, period, {period})",
        "landing_path": f"replace(landing_path, period, {period})",
        "stored_path": f"replace(replace(stored_path, load_id, {new_id}), period, {period})",
        "checksum_sha256": "f.checksum",
        "size_bytes": "f.bytes",
        "received_at": f"received_at - INTERVAL {k} YEAR",
        "modified_at": f"modified_at - INTERVAL {k} YEAR",
        "validated_at": validated,
    }
    selected = ", ".join(values.get(c, c) for c in columns)
    con.execute("CREATE OR REPLACE TEMP TABLE replica_loads AS SELECT f.base_load_id, "
                f"{new_id} AS load_id FROM audit.loads JOIN replica_files AS f ON f.base_load_id = load_id")
    added = {"audit.loads": con.execute(
        f"INSERT INTO audit.loads ({', '.join(columns)}) SELECT {selected} FROM audit.loads "
        "JOIN replica_files AS f ON f.base_load_id = load_id ORDER BY arrival_seq").fetchone()[0]}
    for return_type in RETURN_TYPES:
        names = ", ".join(get_contract(return_type).column_names)
        added[f"raw.{return_type}"] = con.execute(
            f"INSERT INTO raw.{return_type} (load_id, source_row, {names}) SELECT m.load_id, r.source_row, {names} "
            f"FROM replica_{return_type} AS r JOIN replica_loads AS m USING (base_load_id)").fetchone()[0]
        con.execute(f"DROP TABLE replica_{return_type}")
    con.execute("DROP TABLE replica_files")
    con.execute("DROP TABLE replica_loads")
    return added


def compare(real: Path, replicated: Path, period: str) -> list[str]:
    """How ``period``'s rows differ between two warehouses, table by table (empty: they are equal).

    Every column is compared except those a real ingest takes from its own clock; the stored
    path is compared with each warehouse's own load id in it, and the raw rows by the return
    they belong to (return type, partner, period) and their row number."""
    con = duckdb.connect(str(replicated), read_only=True)
    try:
        con.execute(f"ATTACH '{real}' AS real_ingest (READ_ONLY)")
        differences = []
        columns = [c for (c,) in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_catalog = 'real_ingest' AND "
            "table_schema = 'audit' AND table_name = 'loads' ORDER BY ordinal_position").fetchall()
            if c not in _CLOCK_COLUMNS]
        loads = ", ".join("replace(stored_path, load_id, '<load>')" if c == "stored_path" else c for c in columns)
        for label, query in [("audit.loads", f"SELECT {loads} FROM {{db}}.audit.loads WHERE period = '{period}'")] + [
            (f"raw.{rt}", f"SELECT l.return_type, l.partner_code, l.period, r.* EXCLUDE (load_id) "
                          f"FROM {{db}}.raw.{rt} AS r JOIN {{db}}.audit.loads AS l USING (load_id) "
                          f"WHERE l.period = '{period}'") for rt in RETURN_TYPES]:
            mine, theirs = query.format(db=_catalog(con)), query.format(db="real_ingest")
            counts = con.execute(f"SELECT (SELECT count(*) FROM ({mine})), (SELECT count(*) FROM ({theirs})), "
                                 f"(SELECT count(*) FROM ({mine} EXCEPT ALL {theirs})), "
                                 f"(SELECT count(*) FROM ({theirs} EXCEPT ALL {mine}))").fetchone()
            if counts[0] == 0 or counts[2] or counts[3]:
                sample = con.execute(f"({mine} EXCEPT ALL {theirs}) LIMIT 1").fetchall()
                differences.append(f"{label} {period}: {counts[0]} replicated rows, {counts[1]} ingested, "
                                   f"{counts[2]} only replicated, {counts[3]} only ingested; e.g. {sample}")
        of_period = f"(SELECT load_id FROM {{db}}.audit.loads WHERE period = '{period}')"
        others = {  # what ingest writes beside loads for a file (nothing, for an accepted one)
            "deletions": f"SELECT count(*) FROM {{db}}.audit.deletions WHERE load_id IN {of_period}",
            "unsettled_loads": f"SELECT count(*) FROM {{db}}.audit.unsettled_loads WHERE load_id IN {of_period}",
            "outbox": f"SELECT count(*) FROM {{db}}.audit.outbox WHERE load_id IN {of_period}",
            "emails": f"SELECT count(*) FROM {{db}}.audit.emails WHERE period = '{period}'",
            "email_recipients": f"SELECT count(*) FROM {{db}}.audit.email_recipients WHERE email_id IN "
                                f"(SELECT email_id FROM {{db}}.audit.emails WHERE period = '{period}')",
        }
        for table, query in others.items():
            mine, theirs = (con.execute(query.format(db=db)).fetchone()[0] for db in (_catalog(con), "real_ingest"))
            if mine != theirs:
                differences.append(f"audit.{table} {period}: {mine} rows replicated, {theirs} ingested")
        return differences
    finally:
        con.close()


def _catalog(con) -> str:
    """The name DuckDB gave the replicated warehouse (its file's stem)."""
    return con.execute("SELECT current_database()").fetchone()[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path, help="the PKPI_DATA_DIR whose warehouse holds the ingested year")
    parser.add_argument("--first", help="the ingested year's first month, YYYY-MM")
    parser.add_argument("--last", help="its last month (11 months on)")
    parser.add_argument("--years", type=int, default=10, help="years of history wanted (the ingested one included)")
    parser.add_argument("--compare", type=Path, metavar="REAL_DATA_DIR",
                        help="instead: compare --period with the warehouse of a real ingest")
    parser.add_argument("--period")
    args = parser.parse_args()
    settings = Settings.from_env({"PKPI_DATA_DIR": str(args.data_dir)})
    if args.compare:
        real = Settings.from_env({"PKPI_DATA_DIR": str(args.compare)}).warehouse_path
        differences = compare(real, settings.warehouse_path, args.period)
        print("\n".join(differences) or f"{args.period}: the replicated rows equal the ingested ones, table by table")
        return 1 if differences else 0
    print(replicate(settings, args.first, args.last, args.years))
    return 0


if __name__ == "__main__":
    sys.exit(main())
