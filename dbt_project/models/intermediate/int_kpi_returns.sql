{{ incremental_kpis() }}
-- Return compliance KPIs (docs/mart.md, the KPI catalogue). RET_ON_TIME_PCT: expected returns whose
-- latest accepted file arrived by the due date, over expected returns; a monthly return counts
-- in its month and financial year, an annual return in its financial year only.
-- RET_REJECTED: files the gate rejected for the period (every one, even if later replaced).

with submissions as (
    {{ place_events(ref('int_return_submissions'), "e.return_type || '/' || e.partner_code || '/' || e.period", columns=['status', 'return_type']) }}
),

rejected_files as (
    select
        l.load_id,
        l.return_type,
        l.partner_code,
        case when l.return_type in {{ sql_list(return_types_of_grain('month')) }} then l.period end as month,
        case
            when l.return_type in {{ sql_list(return_types_of_grain('month')) }}
                and {{ is_month_label('l.period') }}
                then {{ financial_year_label(month_start('l.period')) }}
            when l.return_type in {{ sql_list(return_types_of_grain('financial_year')) }}
                and {{ is_financial_year_label('l.period') }}
                then l.period
        end as financial_year
    from {{ ref('stg_loads') }} as l
    where l.load_status = 'rejected'
      and l.return_type in {{ sql_list(return_types()) }}
),

rejections as (
    {{ place_events('rejected_files', 'e.load_id', columns=[]) }}
)

{{ kpi('RET_ON_TIME_PCT', 'returns', 'submissions', numerator_where="e.status = 'received_on_time'", denominator_where='true') }}
union all
{{ kpi('RET_ON_TIME_PCT', 'returns', 'submissions', numerator_where="e.status = 'received_on_time'", denominator_where='true', dimension='return_type') }}
union all
{{ kpi('RET_REJECTED', 'returns', 'rejections') }}
