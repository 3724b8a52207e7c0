"""The names an Airflow deployment of pkpi knows: DAG ids, the owner, the writer pool, the clock.

A leaf module (no pkpi imports) so that every other module of the package can use it.
"""

from __future__ import annotations

MONTHLY_DAG_ID = "partnership_monthly"
INGEST_DAG_ID = "partner_returns_ingest"
MART_DAG_ID = "partnership_mart_build"
REMINDERS_DAG_ID = "partner_return_reminders"
RETENTION_DAG_ID = "partner_returns_retention"

OWNER = "partnership-data-team"
TIMEZONE = "Europe/London"
"""The partnership's clock: the schedules run on it and months begin and end on it."""
INGEST_SCHEDULE = "0 * * * *"
"""When partner_returns_ingest looks at landing (cron, on TIMEZONE): what partners are told too."""
WRITER_POOL = "duckdb_writer"
"""One-slot Airflow pool: DuckDB allows one writing process, so writer tasks queue here."""
WRITER_POOL_DESCRIPTION = "DuckDB warehouse writers (ingest, build, delivery ledger): one at a time"


def start_date():
    """The date every DAG starts from, on the partnership's clock (aware, so the UI shows the zone)."""
    import pendulum  # Airflow's own dependency; imported here so the names stay importable without it

    return pendulum.datetime(2024, 4, 1, tz=TIMEZONE)


def ingest_frequency() -> str:
    """How often landing is checked, in words, as Airflow describes INGEST_SCHEDULE ("every hour")."""
    from cron_descriptor import CasingTypeEnum, ExpressionDescriptor  # Airflow's own describer

    words = ExpressionDescriptor(INGEST_SCHEDULE, casing_type=CasingTypeEnum.Sentence,
                                 use_24hour_time_format=True).get_description()
    return words[:1].lower() + words[1:]
