-- Every KPI in the catalogue (docs/dbt.md, the KPI catalogue): one row per kpi_code, grain,
-- period, partner (or ALL) and breakdown value. value is unrounded; percentages are
-- 100 x numerator / denominator and null when the denominator is 0.
-- disclosive marks rows that disclosure control must treat as small-number sensitive when they
-- leave the warehouse: every child death KPI, and any breakdown by sex or ethnicity.

with all_kpis as (
    select * from {{ ref('int_kpi_contacts') }}
    union all
    select * from {{ ref('int_kpi_training') }}
    union all
    select * from {{ ref('int_kpi_child_deaths') }}
    union all
    select * from {{ ref('int_kpi_finance') }}
    union all
    select * from {{ ref('int_kpi_returns') }}
)

select
    v.kpi_code,
    v.period_grain,
    v.period,
    v.partner_code,
    v.dimension,
    v.dimension_value,
    cast(v.numerator as double) as numerator,
    cast(v.denominator as double) as denominator,
    cast(v.value as double) as value,
    -- The rule of pkpi.disclosure.is_disclosive (which the published copy applies): any breakdown
    -- by sex or ethnicity, whatever the KPI, and every child death KPI.
    coalesce(k.disclosive, false) or v.dimension in ('sex', 'ethnicity') or starts_with(v.kpi_code, 'CDN_') as disclosive
from all_kpis as v
left join {{ ref('dim_kpi') }} as k on k.kpi_code = v.kpi_code
