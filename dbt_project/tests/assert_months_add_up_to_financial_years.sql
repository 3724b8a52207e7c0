-- Events are placed by their own date, so for every record-level source the months of a
-- financial year add up to the year, for ALL and each partner (numerators and denominators).
with monthly as (
    select v.kpi_code, m.financial_year, v.partner_code, v.dimension, v.dimension_value,
           sum(v.numerator) as numerator, sum(v.denominator) as denominator
    from {{ ref('kpi_values') }} as v
    inner join {{ ref('dim_month') }} as m on m.month = v.period
    where v.period_grain = 'month'
    group by all
),

yearly as (
    select v.kpi_code, v.period as financial_year, v.partner_code, v.dimension, v.dimension_value,
           v.numerator, v.denominator
    from {{ ref('kpi_values') }} as v
    inner join {{ ref('dim_kpi') }} as k on k.kpi_code = v.kpi_code
    where v.period_grain = 'financial_year'
      and k.source in {{ sql_list(return_types_placed_by_date()) }}
      and k.grains like '%month%'
)

select y.*, m.numerator as months_numerator, m.denominator as months_denominator
from yearly as y
left join monthly as m using (kpi_code, financial_year, partner_code, dimension, dimension_value)
where abs(coalesce(m.numerator, 0) - y.numerator) > 1e-6
   or coalesce(m.denominator, 0) <> coalesce(y.denominator, 0)
