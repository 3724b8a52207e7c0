-- Finance KPIs (docs/mart.md, the KPI catalogue): financial-year grain only, ALL and each partner that
-- submitted a finance return for the year. grant is external income, not a contribution.

with contributions as (
    {{ place_events(ref('int_finance_current'), 'e.record_key', grains=['financial_year'], sums=['amount_gbp']) }}
),

sums as (
    {{ kpi('FIN_CONTRIBUTIONS_GBP', 'finance', 'contributions', numerator_where="e.contribution_type <> 'grant'", sum_of='amount_gbp') }}
    union all
    {{ kpi('FIN_CONTRIBUTIONS_GBP', 'finance', 'contributions', numerator_where="e.contribution_type <> 'grant'", sum_of='amount_gbp', dimension='contribution_type', exclude_values=['grant']) }}
    union all
    {{ kpi('FIN_GRANT_INCOME_GBP', 'finance', 'contributions', numerator_where="e.contribution_type = 'grant'", sum_of='amount_gbp') }}
    union all
    {{ kpi('FIN_TOTAL_INCOME_GBP', 'finance', 'contributions', sum_of='amount_gbp') }}
),

partner_totals as (
    select * from sums
    where kpi_code = 'FIN_CONTRIBUTIONS_GBP' and dimension = 'total'
),

share as (
    -- A partner's contributions over the whole partnership's; the ALL row is 100.
    select
        'FIN_SHARE_PCT' as kpi_code,
        p.period_grain,
        p.period,
        p.partner_code,
        'total' as dimension,
        'total' as dimension_value,
        p.numerator,
        a.numerator as denominator,
        case when a.numerator = 0 then null else 100 * p.numerator / a.numerator end as value
    from partner_totals as p
    inner join partner_totals as a
        on a.period_grain = p.period_grain and a.period = p.period and a.partner_code = 'ALL'
),

year_on_year as (
    -- Numerator: the change on the previous year; denominator: the previous year's
    -- contributions. No finance return for the previous year gives nulls, not a made-up 0.
    select
        'FIN_YOY_CHANGE_PCT' as kpi_code,
        t.period_grain,
        t.period,
        t.partner_code,
        'total' as dimension,
        'total' as dimension_value,
        t.numerator - p.numerator as numerator,
        p.numerator as denominator,
        case when p.numerator is null or p.numerator = 0 then null
             else 100 * (t.numerator - p.numerator) / p.numerator end as value
    from partner_totals as t
    left join partner_totals as p
        on p.period_grain = t.period_grain
        and p.partner_code = t.partner_code
        and p.period = {{ previous_financial_year('t.period') }}
)

select * from sums
union all
select * from share
union all
select * from year_on_year
