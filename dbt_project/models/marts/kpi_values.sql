{{ incremental_kpis() }}
-- Every KPI in the catalogue (docs/mart.md, the KPI catalogue): one row per kpi_code, grain,
-- period, partner (or ALL) and breakdown value. value is unrounded; percentages are
-- 100 x numerator / denominator and null when the denominator is 0. The rows are
-- int_kpi_values' (one int_kpi_<source> per return type and return compliance).
-- disclosive marks rows that disclosure control must treat as small-number sensitive when they
-- leave the warehouse: every child death KPI, and any breakdown by sex or ethnicity.

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
    -- The rule of pkpi.disclosure.rules.is_disclosive, passed in by `pkpi build` (macros/disclosure.sql).
    {{ is_disclosive('v.kpi_code', 'v.dimension', 'k.disclosive') }} as disclosive
from {{ ref('int_kpi_values') }} as v
left join {{ ref('dim_kpi') }} as k on k.kpi_code = v.kpi_code
where {{ touched_period('v.period_grain', 'v.period') }}
