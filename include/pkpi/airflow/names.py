"""The names an Airflow deployment of pkpi knows: DAG ids, the owner, the writer pool, the clock.

A leaf module (it imports only pkpi.schedule, another leaf) so that every module of the glue can
use it; the clock and the ingest schedule live in pkpi.schedule, which needs no Airflow.
"""

from __future__ import annotations

from ..schedule import INGEST_SCHEDULE, TIMEZONE, ingest_frequency  # noqa: F401  (the DAGs' names)

MONTHLY_DAG_ID = "partnership_monthly"
INGEST_DAG_ID = "partner_returns_ingest"
MART_DAG_ID = "partnership_mart_build"
REMINDERS_DAG_ID = "partner_return_reminders"
RETENTION_DAG_ID = "partner_returns_retention"

OWNER = "partnership-data-team"
WRITER_POOL = "duckdb_writer"
"""One-slot Airflow pool: DuckDB allows one writing process, so writer tasks queue here."""
WRITER_POOL_DESCRIPTION = "DuckDB warehouse writers (ingest, build, delivery ledger): one at a time"


def start_date():
    """The date every DAG starts from, on the partnership's clock (aware, so the UI shows the zone)."""
    import pendulum  # Airflow's own dependency; imported here so the names stay importable without it

    return pendulum.datetime(2024, 4, 1, tz=TIMEZONE)
