-- The partnership (ALL) is the sum of its submitting partners, for every count and every
-- ratio's numerator and denominator. Exceptions, by definition: FIN_SHARE_PCT and
-- FIN_YOY_CHANGE_PCT compare against other rows; CON_PER_10K divides by the whole population;
-- RET_REJECTED also counts files from unknown partner codes, which only ALL can hold.
with partner_sums as (
    select kpi_code, period_grain, period, dimension, dimension_value,
           sum(numerator) as numerator, sum(denominator) as denominator
    from {{ ref('kpi_values') }}
    where partner_code <> 'ALL'
    group by all
),

partnership as (
    select kpi_code, period_grain, period, dimension, dimension_value, numerator, denominator
    from {{ ref('kpi_values') }}
    where partner_code = 'ALL'
)

select a.*, p.numerator as partners_numerator, p.denominator as partners_denominator
from partnership as a
left join partner_sums as p using (kpi_code, period_grain, period, dimension, dimension_value)
where a.kpi_code not in ('FIN_SHARE_PCT', 'FIN_YOY_CHANGE_PCT', 'CON_PER_10K')
  and (
      (a.kpi_code = 'RET_REJECTED' and coalesce(p.numerator, 0) > a.numerator)
      or (a.kpi_code <> 'RET_REJECTED' and (
          abs(coalesce(p.numerator, 0) - a.numerator) > 1e-6
          or coalesce(p.denominator, 0) <> coalesce(a.denominator, 0)
      ))
  )
