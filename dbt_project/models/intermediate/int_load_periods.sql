{{ config(materialized='incremental', incremental_strategy='append', on_schema_change='fail') }}
-- The periods each accepted or rejected file can change: its return's own month and financial
-- year (or financial year), and for a return type whose records carry their own date, every
-- month and financial year its records fall in. A load's rows never change, so a run adds only
-- the loads it has not seen (the whole history is not read again).

with loads as (
    select load_id, return_type, period, load_status
    from {{ ref('stg_loads') }}
    where load_status in ('accepted', 'rejected')
      and return_type in {{ sql_list(return_types()) }}
    {%- if is_incremental() %}
      and load_id not in (select load_id from {{ this }})
    {%- endif %}
),

periods as (
    select load_id, 'month' as period_grain, period
    from loads
    where return_type in {{ sql_list(return_types_of_grain('month')) }}
    union
    select load_id, 'financial_year', {{ financial_year_label(month_start('period')) }}
    from loads
    where return_type in {{ sql_list(return_types_of_grain('month')) }} and {{ is_month_label('period') }}
    union
    select load_id, 'financial_year', period
    from loads
    where return_type in {{ sql_list(return_types_of_grain('financial_year')) }} and {{ is_financial_year_label('period') }}
    {%- for return_type in return_types_placed_by_date() %}
    {%- set placed_by = 'r.' ~ contract(return_type).period_column %}
    union
    select r.load_id, 'month', {{ month_label(placed_by) }}
    from {{ ref('stg_' ~ return_type) }} as r
    where r.load_id in (select load_id from loads where load_status = 'accepted' and return_type = '{{ return_type }}')
      and {{ placed_by }} is not null
    union
    select r.load_id, 'financial_year', {{ financial_year_label(placed_by) }}
    from {{ ref('stg_' ~ return_type) }} as r
    where r.load_id in (select load_id from loads where load_status = 'accepted' and return_type = '{{ return_type }}')
      and {{ placed_by }} is not null
    {%- endfor %}
)

select cast(load_id as varchar) as load_id, cast(period_grain as varchar) as period_grain, cast(period as varchar) as period
from periods
