-- The scorecard shows the partnership's figures from kpi_values: the month's value, or for a
-- KPI reported only by financial year, the value of the month's financial year.
select s.period, s.kpi_code, s.value, v.value as kpi_value
from {{ ref('scorecard') }} as s
inner join {{ ref('dim_kpi') }} as k on k.kpi_code = s.kpi_code
left join {{ ref('kpi_values') }} as v
    on v.kpi_code = s.kpi_code
    and v.partner_code = 'ALL'
    and v.dimension = 'total'
    and (
        (k.grains like '%month%' and v.period_grain = 'month' and v.period = s.period)
        or (k.grains not like '%month%' and v.period_grain = 'financial_year' and v.period = s.financial_year)
    )
where s.value is distinct from v.value
