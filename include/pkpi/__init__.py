"""pkpi: the safeguarding partnership's data platform.

Partner returns land as files, are gated against their contracts, loaded into DuckDB, modelled
by dbt into the partnership KPI mart, and turned into the scorecard the strategic leads receive.
Every stage is a plain function here, called the same way by the ``pkpi`` command line and by
the Airflow DAGs.
"""

import os

# Never phone home from a safeguarding system: set before any pkpi module imports Great Expectations.
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

__version__ = "0.1.0"
