-- Every breakdown lists every value (zeros included), so its rows add up to the total row:
-- numerators always, denominators too for a ratio broken down (RET_ON_TIME_PCT by return_type).
with parts as (
    select kpi_code, period_grain, period, partner_code, dimension,
           sum(numerator) as numerator, sum(denominator) as denominator
    from {{ ref('kpi_values') }}
    where dimension <> 'total'
    group by all
),

totals as (
    select kpi_code, period_grain, period, partner_code, numerator, denominator
    from {{ ref('kpi_values') }}
    where dimension = 'total'
)

select p.*, t.numerator as total_numerator, t.denominator as total_denominator
from parts as p
left join totals as t using (kpi_code, period_grain, period, partner_code)
where t.kpi_code is null
   or abs(p.numerator - t.numerator) > 1e-6
   or coalesce(p.denominator, 0) <> coalesce(t.denominator, 0)
