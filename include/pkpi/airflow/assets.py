"""The warehouse tables as Airflow Assets, and which of them an ingest run changed.

One Asset per raw table, derived from the return contracts (a fifth return type gets its asset
without new code), plus one for the built mart and one for its published copy:

========================================  ===================================  ===========================
asset name                                URI                                  updated by
========================================  ===================================  ===========================
``raw.contacts`` (one per return type)    ``duckdb://warehouse/raw/contacts``  partner_returns_ingest
``mart``                                  ``duckdb://warehouse/mart``          partnership_mart_build
``published.kpi_mart``                    ``duckdb://published/kpi_mart``      partnership_mart_build
``scorecard``                             ``pkpi://exports/scorecard``         partnership_monthly
========================================  ===================================  ===========================

partnership_monthly's build task updates ``mart`` and ``published.kpi_mart`` too (its build
publishes); the mart build DAG is scheduled on the raw tables only, so these events start nothing
and show in the UI which run made the mart, the published copy and each month's scorecard.

The URIs name the table inside the platform's own data folder, not a path on one machine, so
they stay the same in every deployment. Airflow 3.3 ships no handler for the ``duckdb`` or
``pkpi`` schemes, so it keeps these URIs exactly as written (checked in tests/test_dags_assets.py).

:func:`raw_table_changes` reads the load audit for the accepted loads of a time window (an
ingest DAG run), grouped by return type: the ingest DAG emits an asset event for exactly those
return types, with a summary of what changed as the event's extra. It is read from the audit,
not from the ingest task's return value, so loads committed by an attempt that later failed
(or by an earlier try of a retried task) are still announced.

Imported when DAG files are parsed: nothing heavy at the top (the warehouse is opened inside
the function that needs it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from airflow.sdk import Asset

from ..contracts import return_types
from ..settings import Settings

ASSET_GROUP = "pkpi"
RAW_URI = "duckdb://warehouse/raw/{return_type}"

MART_ASSET = Asset(name="mart", uri="duckdb://warehouse/mart", group=ASSET_GROUP)
"""The KPI mart in the warehouse (schema ``mart``), rebuilt and tested by dbt."""
PUBLISHED_ASSET = Asset(name="published.kpi_mart", uri="duckdb://published/kpi_mart", group=ASSET_GROUP)
"""The disclosure-controlled published copy (``published/kpi_mart.duckdb`` and Parquet)."""
SCORECARD_ASSET = Asset(name="scorecard", uri="pkpi://exports/scorecard", group=ASSET_GROUP)
"""The monthly scorecard files (``exports/<YYYY-MM>/``); each event's extra names the month."""


def raw_asset(return_type: str) -> Asset:
    """The Asset of a return type's raw table (``raw.<return_type>``)."""
    return Asset(name=f"raw.{return_type}", uri=RAW_URI.format(return_type=return_type), group=ASSET_GROUP)


RAW_ASSETS: dict[str, Asset] = {rt: raw_asset(rt) for rt in return_types()}
"""Every raw table's Asset, by return type, in the contracts' order."""


@dataclass(frozen=True)
class RawTableChange:
    """What one ingest window added to a return type's raw table."""

    return_type: str
    files: int
    rows: int
    nil_returns: int
    partners: tuple[str, ...]
    periods: tuple[str, ...]

    def as_event_extra(self) -> dict[str, Any]:
        """The asset event's extra: counts, partner codes and periods (never a row's values)."""
        return {
            "table": f"raw.{self.return_type}",
            "accepted_files": self.files,
            "rows": self.rows,
            "nil_returns": self.nil_returns,
            "partners": list(self.partners),
            "periods": list(self.periods),
        }

    def __str__(self) -> str:
        return (
            f"raw.{self.return_type} gained {self.files} accepted return(s) ({self.rows} row(s), "
            f"{self.nil_returns} nil) for {', '.join(self.periods)} from {', '.join(self.partners)}"
        )


def _naive_utc(moment: datetime) -> datetime:
    """The audit's timestamps are naive UTC; Airflow's are aware."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment


def raw_table_changes(settings: Settings, since: datetime, until: datetime | None = None) -> dict[str, RawTableChange]:
    """Accepted loads validated from ``since`` (up to ``until``), per return type.

    A nil return counts: it replaces whatever the partner sent before for that period, so the
    mart changes too. Duplicates and rejections do not: nothing reached the raw tables.
    Returns an empty dict when there is no warehouse yet.
    """
    if not settings.warehouse_path.exists():
        return {}
    from ..warehouse import connect  # DuckDB: imported only when a task runs

    sql = (
        "SELECT return_type, count(*), coalesce(sum(row_count), 0), count(*) FILTER (WHERE is_nil), "
        "list(DISTINCT partner_code ORDER BY partner_code), list(DISTINCT period ORDER BY period) "
        "FROM audit.loads WHERE status = 'accepted' AND validated_at >= ?"
    )
    params: list[Any] = [_naive_utc(since)]
    if until is not None:
        sql += " AND validated_at <= ?"
        params.append(_naive_utc(until))
    sql += " GROUP BY return_type ORDER BY return_type"
    with connect(settings, read_only=True) as con:
        rows = con.execute(sql, params).fetchall()
    return {
        rt: RawTableChange(rt, int(files), int(total), int(nil), tuple(partners), tuple(periods))
        for rt, files, total, nil, partners, periods in rows
    }
