-- What the KPI tables were last built from (int_kpi_inputs), stored once every KPI table and
-- the scorecard are built and tested, for the next run's int_kpi_periods to compare with.
-- Not published. depends_on: {{ ref('kpi_values') }} {{ ref('scorecard') }}
select
    cast(input as varchar) as input,
    cast(period_grain as varchar) as period_grain,
    cast(period as varchar) as period
from {{ ref('int_kpi_inputs') }}
