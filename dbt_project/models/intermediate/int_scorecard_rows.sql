{{ incremental_kpis('scorecard') }}
-- The rows of the monthly scorecard (docs/scorecard.md), before mart.scorecard adds the
-- disclosure flags (pkpi build sets them, docs/mart.md): one row per reporting month and KPI with
-- on_scorecard true, partnership level (ALL, total). Reporting months are the months of
-- the spine (dim_month) that have any monthly KPI value. It reads what the mart tables are made
-- of (int_kpi_values, the kpi_catalogue seed, int_month_spine, int_return_submissions), never
-- the mart itself, so the layers stay in order.
--   value            the month's value; a KPI with only a financial-year grain (finance) shows
--                    the value for the month's financial year
--   fytd_value       financial year to date, April to this month: counts and sums add up the
--                    months; percentages are recomputed from the year-to-date numerator and
--                    denominator (not an average of monthly percentages)
--   previous_month_value, same_month_last_year_value: the value one and twelve months earlier
--   rag              against the financial year's target (kpi_targets.csv): higher_is_better is
--                    green at or above target, amber within amber_tolerance below, red beyond;
--                    lower_is_better mirrors it; grey without a target or a value, or when the
--                    KPI is neutral
--   trend            value against previous_month_value: up, down, flat or n/a; a KPI reported
--                    only by financial year (finance) compares its year with the year before
--                    (same_month_last_year_value), since its previous month is the same year
--   provisional      a monthly return the KPI is counted from (kpi_catalogue.source) is
--                    missing or rejected for the month; for return compliance (source
--                    "returns"), any expected return

with kpis as (
    select * from {{ ref('kpi_catalogue') }} where on_scorecard
),

months as (
    select m.month, m.financial_year, m.month_start
    from {{ ref('int_month_spine') }} as m
    where {{ touched_period("'month'", 'm.month', 'scorecard') }}
      and exists (
        select 1 from {{ ref('int_kpi_values') }} as v
        where v.period_grain = 'month' and v.period = m.month and v.partner_code = 'ALL'
    )
),

monthly as (
    select kpi_code, period, numerator, denominator, value
    from {{ ref('int_kpi_values') }}
    where period_grain = 'month' and partner_code = 'ALL' and dimension = 'total'
),

yearly as (
    select kpi_code, period, numerator, denominator, value
    from {{ ref('int_kpi_values') }}
    where period_grain = 'financial_year' and partner_code = 'ALL' and dimension = 'total'
),

spine as (
    select month, financial_year, month_start from {{ ref('int_month_spine') }}
),

-- The value a KPI shows for any month: its monthly value, or for a KPI reported only by
-- financial year, the value of the month's financial year.
month_values as (
    select
        k.kpi_code,
        s.month,
        s.financial_year,
        s.month_start,
        coalesce(mv.numerator, yv.numerator) as numerator,
        coalesce(mv.denominator, yv.denominator) as denominator,
        case when k.grains like '%month%' then mv.value else yv.value end as value
    from kpis as k
    cross join spine as s
    left join monthly as mv on k.grains like '%month%' and mv.kpi_code = k.kpi_code and mv.period = s.month
    left join yearly as yv on k.grains not like '%month%' and yv.kpi_code = k.kpi_code and yv.period = s.financial_year
),

year_to_date as (
    select
        cur.kpi_code,
        cur.month,
        sum(prior.numerator) as fytd_numerator,
        sum(prior.denominator) as fytd_denominator
    from month_values as cur
    inner join month_values as prior
        on prior.kpi_code = cur.kpi_code
        and prior.financial_year = cur.financial_year
        and prior.month_start <= cur.month_start
    group by cur.kpi_code, cur.month
),

targets as (
    select * from {{ ref('kpi_targets') }}
),

-- A measure is provisional for a month when a monthly return it is counted from (its catalogue
-- source) is missing or rejected; return compliance (source "returns") counts every expected
-- return, so it is provisional when any is. The scorecard's files read this flag, never their
-- own rule (docs/scorecard.md, Provisional).
provisional_kpis as (
    select
        s.period as month,
        k.kpi_code,
        bool_or(s.status in ('missing', 'rejected')) as provisional
    from {{ ref('int_return_submissions') }} as s
    inner join kpis as k on k.source = 'returns' or k.source = s.return_type
    where s.period_grain = 'month'
    group by s.period, k.kpi_code
),

assembled as (
    select
        m.month as period,
        m.financial_year,
        k.kpi_code,
        k.name as kpi_name,
        k.theme,
        k.unit,
        k.polarity,
        k.disclosive,
        k.display_order,
        case when k.grains like '%month%' then 'month' else 'financial_year' end as value_grain,
        cur.value,
        cur.numerator,
        cur.denominator,
        case
            when k.grains not like '%month%' then fy.value
            when k.scale is null then ytd.fytd_numerator
            when ytd.fytd_denominator is null or ytd.fytd_denominator = 0 then null
            else k.scale * ytd.fytd_numerator / ytd.fytd_denominator
        end as fytd_value,
        case when k.grains like '%month%' then ytd.fytd_numerator else fy.numerator end as fytd_numerator,
        case when k.grains like '%month%' then ytd.fytd_denominator else fy.denominator end as fytd_denominator,
        prev.value as previous_month_value,
        last_year.value as same_month_last_year_value,
        t.target,
        t.amber_tolerance,
        coalesce(p.provisional, false) as provisional
    from months as m
    cross join kpis as k
    left join month_values as cur on cur.kpi_code = k.kpi_code and cur.month = m.month
    left join year_to_date as ytd on ytd.kpi_code = k.kpi_code and ytd.month = m.month
    left join yearly as fy on fy.kpi_code = k.kpi_code and fy.period = m.financial_year
    left join month_values as prev
        on prev.kpi_code = k.kpi_code
        and prev.month = {{ month_label('m.month_start - interval 1 month') }}
    left join month_values as last_year
        on last_year.kpi_code = k.kpi_code
        and last_year.month = {{ month_label('m.month_start - interval 12 month') }}
    left join targets as t on t.kpi_code = k.kpi_code and t.financial_year = m.financial_year
    left join provisional_kpis as p on p.month = m.month and p.kpi_code = k.kpi_code
)

select
    period,
    kpi_code,
    kpi_name,
    theme,
    unit,
    cast(value as double) as value,
    cast(fytd_value as double) as fytd_value,
    cast(previous_month_value as double) as previous_month_value,
    cast(same_month_last_year_value as double) as same_month_last_year_value,
    cast(target as double) as target,
    polarity,
    case
        when value is null or target is null or polarity not in ('higher_is_better', 'lower_is_better') then 'grey'
        when polarity = 'higher_is_better' and value >= target then 'green'
        when polarity = 'higher_is_better' and value >= target - coalesce(amber_tolerance, 0) then 'amber'
        when polarity = 'higher_is_better' then 'red'
        when value <= target then 'green'
        when value <= target + coalesce(amber_tolerance, 0) then 'amber'
        else 'red'
    end as rag,
    case
        when value is null or compared_with is null then 'n/a'
        -- Rounded so that two equal ratios computed from different counts compare as flat.
        when round(value, 9) > round(compared_with, 9) then 'up'
        when round(value, 9) < round(compared_with, 9) then 'down'
        else 'flat'
    end as trend,
    provisional,
    -- Beyond docs/mart.md, section 5: what disclosure control and the scorecard renderer need.
    financial_year,
    value_grain,
    cast(numerator as double) as numerator,
    cast(denominator as double) as denominator,
    cast(fytd_numerator as double) as fytd_numerator,
    cast(fytd_denominator as double) as fytd_denominator,
    cast(amber_tolerance as double) as amber_tolerance,
    disclosive,
    display_order
from (
    select
        *,
        case when value_grain = 'month' then previous_month_value else same_month_last_year_value end
            as compared_with
    from assembled
) as a
