-- The months the mart covers. Returns are expected for every month from the first to the last
-- month with an accepted monthly return (or the reporting month passed by build_mart, so a
-- month whose returns have not arrived at all still shows them as missing). Around that, the
-- spine holds whole financial years, so year-to-date figures and dim_month are complete.
-- Deliberately not the wall clock: a build is reproducible from the warehouse alone.

with latest as (
    select * from {{ ref('int_latest_returns') }}
),

anchor_months as (
    select {{ month_start('period') }} as month_start
    from latest
    where period_grain = 'month'
    {%- if var('reporting_month') %}
    union all
    select {{ month_start("'" ~ var('reporting_month') ~ "'") }}
    {%- endif %}
),

bounds as (
    select min(month_start) as first_month, max(month_start) as last_month
    from anchor_months
),

expected_months as (
    select cast(unnest(generate_series(first_month, last_month, interval 1 month)) as date) as month_start
    from bounds
    where first_month is not null
),

financial_years as (
    select {{ financial_year_label('month_start') }} as financial_year from expected_months
    union
    select period as financial_year from latest where period_grain = 'financial_year'
),

months as (
    select
        financial_year,
        cast(unnest(generate_series(
            {{ financial_year_start('financial_year') }},
            {{ financial_year_start('financial_year') }} + interval 11 month,
            interval 1 month
        )) as date) as month_start
    from financial_years
)

select
    {{ month_label('m.month_start') }} as month,
    m.month_start,
    cast(last_day(m.month_start) as date) as month_end,
    m.financial_year,
    -- Months of the financial year: April is 1, March is 12.
    cast((month(m.month_start) + 8) % 12 + 1 as integer) as month_of_financial_year,
    'Q' || cast(((month(m.month_start) + 8) % 12) // 3 + 1 as varchar) as quarter,
    strftime(m.month_start, '%B %Y') as month_name,
    coalesce(m.month_start between b.first_month and b.last_month, false) as is_expected_month
from months as m
cross join bounds as b
