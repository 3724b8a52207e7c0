-- The periods an incremental run of the KPI tables computes again (macros/incremental_kpis.sql):
--   target 'kpi'        (period_grain, period) of int_kpi_* and kpi_values: every period whose
--                       inputs changed since the last build (int_kpi_inputs against the stored
--                       mart.kpi_build_inputs) or whose re-referral flags a changed referral
--                       changes, the financial year of each month, and the year
--                       after each year (FIN_YOY_CHANGE_PCT compares with the year before)
--   target 'scorecard'  the reporting months of int_scorecard_rows and scorecard: every month
--                       of those years and of the year after them (a month's row reads the
--                       previous month, the same month a year earlier and the year to date),
--                       whether or not the spine still holds it
-- Every period on a full refresh, when there is no stored copy yet, or when the reference data
-- or the code changed.
-- The stored copy is read by name, not ref(): it is written from this build's inputs once
-- every KPI table is built, so a failed build leaves it as it was and the next run redoes
-- the same periods.

{#- A full refresh computes every period, as a first build does. -#}
{%- set built = adapter.get_relation(database=this.database, schema='mart', identifier='kpi_build_inputs') if execute and not flags.FULL_REFRESH else none %}

with inputs as (
    select input, period_grain, period from {{ ref('int_kpi_inputs') }}
),

{%- if built is not none %}

built as (
    select input, period_grain, period from {{ built }}
),

changed as (
    (select * from inputs except select * from built)
    union all
    (select * from built except select * from inputs)
),

every_period as (
    select period_grain, period from inputs
    union
    select period_grain, period from built
),
{%- else %}

changed as (
    select 'no stored copy' as input, 'all' as period_grain, 'all' as period
),

every_period as (
    select period_grain, period from inputs
),
{%- endif %}

-- A referral added or withdrawn (its load became or stopped being the latest) changes the
-- re-referral flag of the same partner's referrals of the same child in the 365 days after it,
-- whatever month those are counted in: their months are touched too.
changed_referrals as (
    select l.partner_code, r.child_id, r.referral_date
    from {{ ref('stg_contacts') }} as r
    inner join {{ ref('stg_loads') }} as l on l.load_id = r.load_id
    where r.outcome = 'referral'
      and r.load_id in (
          select regexp_extract(input, '^load (.*) (latest|rejected)$', 1) from changed
          where starts_with(input, 'load ')
      )
),

rereferral_months as (
    select distinct c.month
    from {{ ref('int_contacts_current') }} as c
    inner join changed_referrals as x
        on x.partner_code = c.partner_code
        and x.child_id = c.child_id
        and c.referral_date > x.referral_date
        and c.referral_date <= x.referral_date + 365
    where c.outcome = 'referral'
),

direct as (
    select period_grain, period from changed where period_grain <> 'all'
    union
    select 'month', month from rereferral_months
    union
    select period_grain, period from every_period
    where period_grain <> 'all' and exists (select 1 from changed where period_grain = 'all')
),

years as (
    select period as financial_year from direct
    where period_grain = 'financial_year' and {{ is_financial_year_label('period') }}
    union
    select {{ financial_year_label(month_start('period')) }} from direct
    where period_grain = 'month' and {{ is_month_label('period') }}
),

kpi_years as (
    select financial_year from years
    union
    select {{ next_financial_year('financial_year') }} from years
),

scorecard_years as (
    select financial_year from kpi_years
    union
    select {{ next_financial_year('financial_year') }} from kpi_years
)

select 'kpi' as target, 'month' as period_grain, period from direct where period_grain = 'month'
union
select 'kpi', 'financial_year', financial_year from kpi_years
union
-- Every month of those years, in the spine or not: a month a shorter spine no longer holds (an
-- earlier build's reporting month further ahead, a withdrawn return) loses its scorecard rows.
select 'scorecard', 'month', {{ month_label('month_start') }}
from (
    select unnest(generate_series(
        {{ financial_year_start('financial_year') }},
        {{ financial_year_start('financial_year') }} + interval 11 month,
        interval 1 month
    )) as month_start
    from scorecard_years
)
