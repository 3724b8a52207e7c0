-- Every return the schedule expects: return_schedule.csv x the months (monthly returns) or
-- financial years (annual returns) of the spine, where both the schedule row and the partner
-- are active for some part of the period (the same rule as pkpi.reference.expected_returns).
-- Due dates: a monthly return is due due_days after the end of its month; an annual return
-- due_days after 1 April of its financial year.

with schedule as (
    select * from {{ ref('return_schedule') }}
),

partners as (
    select * from {{ ref('partners') }}
),

spine as (
    select * from {{ ref('int_month_spine') }}
),

financial_years as (
    select
        financial_year,
        min(month_start) as year_start,
        max(month_end) as year_end
    from spine
    group by financial_year
),

monthly as (
    select
        s.return_type,
        s.partner_code,
        m.month as period,
        'month' as period_grain,
        m.month as month,
        m.financial_year,
        m.month_start as period_start,
        m.month_end as period_end,
        s.due_days,
        cast(m.month_end + s.due_days as date) as due_date
    from schedule as s
    inner join partners as p on p.partner_code = s.partner_code
    inner join spine as m
        on m.is_expected_month
        and s.active_from <= m.month_end and (s.active_to is null or s.active_to >= m.month_start)
        and p.active_from <= m.month_end and (p.active_to is null or p.active_to >= m.month_start)
    where s.return_type in {{ sql_list(return_types_of_grain('month')) }}
),

annual as (
    select
        s.return_type,
        s.partner_code,
        y.financial_year as period,
        'financial_year' as period_grain,
        cast(null as varchar) as month,
        y.financial_year,
        y.year_start as period_start,
        y.year_end as period_end,
        s.due_days,
        cast(y.year_start + s.due_days as date) as due_date
    from schedule as s
    inner join partners as p on p.partner_code = s.partner_code
    inner join financial_years as y
        on s.active_from <= y.year_end and (s.active_to is null or s.active_to >= y.year_start)
        and p.active_from <= y.year_end and (p.active_to is null or p.active_to >= y.year_start)
    where s.return_type in {{ sql_list(return_types_of_grain('financial_year')) }}
)

select * from monthly
union all
select * from annual
