"""The partnership's clock and when landing is checked: what the DAGs schedule by and what
partners are told, without importing Airflow (pkpi.airflow.names re-exports them for the DAGs).

A leaf module (no pkpi imports).
"""

from __future__ import annotations

TIMEZONE = "Europe/London"
"""The partnership's clock: the schedules run on it and months begin and end on it."""
INGEST_SCHEDULE = "0 * * * *"
"""When partner_returns_ingest looks at landing (cron, on TIMEZONE): what partners are told too."""


def ingest_frequency() -> str:
    """How often landing is checked, in words, as Airflow describes INGEST_SCHEDULE ("every hour")."""
    from cron_descriptor import CasingTypeEnum, ExpressionDescriptor  # Airflow's own describer

    words = ExpressionDescriptor(INGEST_SCHEDULE, casing_type=CasingTypeEnum.Sentence,
                                 use_24hour_time_format=True).get_description()
    return words[:1].lower() + words[1:]
