"""Invariants any test can check on a warehouse after ingest and build.

:func:`assert_current_returns_counted`: no accepted file vanishes between raw and the mart. For
every current return (the latest accepted load of each return type, partner and period in
``audit.loads``), worked out here from the audit table alone rather than from the mart's own
models:

* raw holds exactly its ``row_count`` rows under its load id;
* the mart fact of its return type holds the same rows under that load id, with the return's
  partner and period (and no fact row comes from a load that is not current);
* when the schedule expects the return, ``mart.fct_return_submissions`` shows it received
  (on time or late) with that load as the accepted one.
"""

from __future__ import annotations

import duckdb

from pkpi.settings import Settings
from pkpi.warehouse import connect

FACTS = {
    "contacts": "fct_contacts",
    "training": "fct_training_events",
    "child_deaths": "fct_child_death_notifications",
    "finance": "fct_finance_contributions",
}
RECEIVED = ("received_on_time", "received_late")


def current_returns(con: duckdb.DuckDBPyConnection) -> list[dict]:
    """The latest accepted load of each (return type, partner, period), as ingest orders them."""
    cur = con.execute("""
        SELECT load_id, return_type, partner_code, period, row_count, landing_path
        FROM (
            SELECT *, row_number() OVER (
                PARTITION BY return_type, partner_code, period
                ORDER BY arrival_seq DESC) AS version
            FROM audit.loads WHERE status = 'accepted'
        ) WHERE version = 1
        ORDER BY return_type, partner_code, period
    """)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def uncounted_returns(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Every way a current accepted return is missing from (or miscounted in) the mart."""
    problems: list[str] = []
    current = current_returns(con)
    expected = {
        (rt, partner, period): (status, load_id)
        for rt, partner, period, status, load_id in con.execute(
            "SELECT return_type, partner_code, period, status, accepted_load_id FROM mart.fct_return_submissions"
        ).fetchall()
    }
    for ret in current:
        rt, load_id, rows = ret["return_type"], ret["load_id"], ret["row_count"]
        what = f"{rt}/{ret['partner_code']}/{ret['period']} ({ret['landing_path']}, load {load_id})"
        if rt not in FACTS:
            problems.append(f"{what}: accepted with a return type the mart does not know")
            continue
        (in_raw,) = con.execute(f"SELECT count(*) FROM raw.{rt} WHERE load_id = ?", [load_id]).fetchone()
        if in_raw != rows:
            problems.append(f"{what}: {rows} row(s) accepted but {in_raw} in raw.{rt}")
        (in_fact, wrong_place) = con.execute(
            f"SELECT count(*), count(*) FILTER (WHERE partner_code IS DISTINCT FROM ? "
            f"OR return_period IS DISTINCT FROM ?) FROM mart.{FACTS[rt]} WHERE load_id = ?",
            [ret["partner_code"], ret["period"], load_id],
        ).fetchone()
        if in_fact != rows:
            problems.append(f"{what}: {rows} row(s) accepted but {in_fact} in mart.{FACTS[rt]}")
        if wrong_place:
            problems.append(f"{what}: {wrong_place} row(s) in mart.{FACTS[rt]} under another partner or period")
        key = (rt, ret["partner_code"], ret["period"])
        if key in expected:
            status, counted = expected[key]
            if status not in RECEIVED or counted != load_id:
                problems.append(f"{what}: expected return shows as {status} (accepted load {counted}) "
                                "in mart.fct_return_submissions")
    current_ids = {r["load_id"] for r in current}
    for rt, fact in FACTS.items():
        for (load_id,) in con.execute(f"SELECT DISTINCT load_id FROM mart.{fact}").fetchall():
            if load_id not in current_ids:
                problems.append(f"mart.{fact} holds rows of load {load_id}, which is not a current return")
    return problems


def assert_current_returns_counted(settings: Settings) -> list[dict]:
    """Fail, naming each return, unless every current accepted return is counted in the mart.

    Returns the current returns it checked, so a caller can also assert there were some.
    """
    with connect(settings, read_only=True) as con:
        problems = uncounted_returns(con)
        current = current_returns(con)
    assert not problems, "accepted returns missing from the mart:\n  " + "\n  ".join(problems)
    return current
