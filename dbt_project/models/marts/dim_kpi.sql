-- The KPI catalogue: one row per kpi_code (catalogue/kpi_catalogue.csv).
select
    kpi_code,
    name,
    theme,
    unit,
    polarity,
    on_scorecard,
    disclosive,
    definition,
    source,
    grains,
    coalesce(breakdowns, '') as breakdowns,
    scale,
    display_order
from {{ ref('kpi_catalogue') }}
