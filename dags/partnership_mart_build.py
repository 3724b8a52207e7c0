"""The KPI mart is rebuilt, tested and republished whenever a raw table changes (and daily).

Wiring only: the build is :func:`pkpi.build.build_mart` (one in-process ``dbt build`` under the
warehouse lock), the publication :func:`pkpi.build.publish`; the assets are in
:mod:`pkpi.assets`. Why one build task and not astronomer-cosmos's task per model: measured in
docs/orchestration.md.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from airflow.sdk import AssetAny, AssetOrTimeSchedule, CronTriggerTimetable, Param, dag, get_current_context, task

from pkpi.assets import MART_ASSET, PUBLISHED_ASSET, RAW_ASSETS
from pkpi.orchestration import MART_DAG_ID, TIMEZONE, WRITER_POOL, default_task_args

log = logging.getLogger("pkpi.dags.partnership_mart_build")

DOC_MD = f"""
# Partnership KPI mart build

Rebuilds the KPI mart from the raw tables and republishes its disclosure-controlled copy, the
same work as `pkpi build`:

1. **build** (pool `{WRITER_POOL}`): one `dbt build` of `dbt_project/` (reference models, the KPI
   catalogue seed, every model, data test and unit test), in-process, holding the warehouse's
   exclusive lock. A failing model or test fails the task, and its log lists every failing
   node with dbt's message (the dbt log is in `$PKPI_DATA_DIR/dbt/logs/`). Emits the asset
   `mart` (`duckdb://warehouse/mart`). The month before the run's date is always in the mart,
   so its returns show as missing once due even before any arrive.
2. **publish**: rewrites `published/kpi_mart.duckdb` and `published/parquet/` from the mart
   (aggregate tables only, disclosure-controlled, each file swapped in atomically). It only
   reads the warehouse (shared lock), so it is not in the writer pool. Emits `published.kpi_mart`.

**Schedule**: data-aware. Any asset event for a raw table (`raw.contacts`, `raw.training`,
`raw.child_deaths`, `raw.finance`, emitted by `partner_returns_ingest` when it accepts a
return) starts a run; events that arrive during a run are collected into the next one
(`max_active_runs=1`). Also daily at 06:30 UK time, because a return's status changes from
"not yet due" to "missing" with the date alone.

**Why not a task per dbt model (astronomer-cosmos)**: measured on the demo data (24 months,
217 returns; 162 dbt nodes) under a real scheduler with the LocalExecutor on 2 cores: this
DAG's build task took 36 s; cosmos WATCHER mode (one `dbt build` plus a sensor task per model)
178 s, with ~90 task processes competing with dbt for the CPU, and a scheduler race failed one
sensor and so the run; cosmos LOCAL mode (87 dbt invocations, one at a time in the writer pool)
19 minutes. Cosmos's operators also run dbt without the warehouse lock. Details in
docs/orchestration.md.

**Params**: `full_refresh` rebuilds the record-level facts from scratch (`pkpi build
--full-refresh`); use it after changing a fact model.

**Failures**: a busy warehouse or a timeout is retried with exponential backoff; a failed
dbt test is not (fix the data or the model, then clear the task). The engineers in
`PKPI_ENGINEER_EMAILS` are emailed when a task fails for good. Published files stay at the
last good build until a build succeeds.
"""


@dag(
    dag_id=MART_DAG_ID,
    description="Rebuild, test and republish the KPI mart when a raw table changes",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("30 6 * * *", timezone=TIMEZONE),
        assets=AssetAny(*RAW_ASSETS.values()),
    ),
    start_date=datetime(2024, 4, 1),
    catchup=False,
    max_active_runs=1,
    default_args=default_task_args(execution_timeout=timedelta(minutes=30)),
    tags=["pkpi", "kpi-mart", "dbt", "assets"],
    doc_md=DOC_MD,
    params={
        "full_refresh": Param(
            False,
            type="boolean",
            title="Full refresh",
            description="Rebuild the record-level facts from scratch.",
        ),
    },
)
def partnership_mart_build():
    @task(pool=WRITER_POOL, outlets=[MART_ASSET])
    def build() -> dict:
        """Build and test the KPI mart with dbt (without publishing); returns node counts."""
        from pkpi.build import build_mart
        from pkpi.orchestration import resolve_period, run_date, task_settings

        context = get_current_context()
        # The monthly cycle's reporting month for a run on this date: present even before
        # any of its returns arrive, so they show as missing once due.
        period = resolve_period(run_date(context), {})
        full_refresh = bool(context["params"].get("full_refresh"))
        result = build_mart(task_settings(), period=period, full_refresh=full_refresh, publish_after=False)
        log.info("%s", result)
        summary = {kind: result.count(kind) for kind in ("seed", "model", "test", "unit_test")}
        context["outlet_events"][MART_ASSET].extra = {**summary, "seconds": round(result.seconds, 1)}
        return summary

    @task(outlets=[PUBLISHED_ASSET], execution_timeout=timedelta(minutes=15))
    def publish() -> dict:
        """Rewrite the disclosure-controlled published copy of the mart."""
        from pkpi.build import publish as publish_mart
        from pkpi.orchestration import task_settings

        published = publish_mart(task_settings())
        log.info("%s", published)
        return {"row_counts": published.row_counts, "suppressed_figures": published.suppressed_figures}

    build() >> publish()


partnership_mart_build()
