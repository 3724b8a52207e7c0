{{ incremental_kpis() }}
-- Which (source, period grain, period, partner) combinations get KPI rows. A KPI exists for
-- ALL and for each partner that submitted the source return for the period (a nil return
-- included, so it shows zeros rather than missing rows). Monthly returns feed both grains;
-- annual returns (finance) only the financial-year grain. Events are placed by their own date,
-- so a period an event falls in gets rows too, even if (against the contract, which the gate
-- enforces) the event sits in another month's return. Return compliance ('returns') is
-- scoped by the partners the schedule expects a return from, plus any known partner with a
-- rejected file for a period the mart covers.

with latest as (
    select * from {{ ref('int_latest_returns') }}
),

spine_months as (
    select month, financial_year from {{ ref('int_month_spine') }}
),

spine_years as (
    select distinct financial_year from spine_months
),

data_scopes as (
    select return_type as source, 'month' as period_grain, period, partner_code
    from latest
    where period_grain = 'month'
    union
    select return_type as source, 'financial_year' as period_grain, financial_year as period, partner_code
    from latest
    {%- for return_type in return_types_placed_by_date() %}
    union
    select '{{ return_type }}', 'month', month, partner_code from {{ ref('int_' ~ return_type ~ '_current') }} as e
    where {{ touched_record('e', ['month']) }}
    union
    select '{{ return_type }}', 'financial_year', financial_year, partner_code from {{ ref('int_' ~ return_type ~ '_current') }} as e
    where {{ touched_record('e', ['financial_year']) }}
    {%- endfor %}
),

expected as (
    select * from {{ ref('int_expected_returns') }}
),

rejected_loads as (
    select l.partner_code, l.return_type, l.period
    from {{ ref('stg_loads') }} as l
    inner join {{ ref('partners') }} as p on p.partner_code = l.partner_code
    where l.load_status = 'rejected'
),

compliance_scopes as (
    select 'returns' as source, 'month' as period_grain, period, partner_code
    from expected
    where period_grain = 'month'
    union
    select 'returns', 'financial_year', financial_year, partner_code
    from expected
    union
    select 'returns', 'month', r.period, r.partner_code
    from rejected_loads as r
    inner join spine_months as m on m.month = r.period
    where r.return_type in {{ sql_list(return_types_of_grain('month')) }}
    union
    select 'returns', 'financial_year', m.financial_year, r.partner_code
    from rejected_loads as r
    inner join spine_months as m on m.month = r.period
    where r.return_type in {{ sql_list(return_types_of_grain('month')) }}
    union
    select 'returns', 'financial_year', r.period, r.partner_code
    from rejected_loads as r
    inner join spine_years as y on y.financial_year = r.period
    where r.return_type in {{ sql_list(return_types_of_grain('financial_year')) }}
),

partner_scopes as (
    select * from (
        select * from data_scopes
        union
        select * from compliance_scopes
    ) as p
    where {{ touched_period('p.period_grain', 'p.period') }}
)

select source, period_grain, period, partner_code, false as is_partnership
from partner_scopes
union all
select distinct source, period_grain, period, 'ALL' as partner_code, true as is_partnership
from partner_scopes
