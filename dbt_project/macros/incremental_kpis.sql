{#- The KPI tables (int_kpi_*, int_kpi_values, kpi_values, int_scorecard_rows, scorecard) are
    incremental by period: a run deletes the rows of the periods int_kpi_periods says the new
    inputs touch, and inserts those periods again, computed from the records that fall in them.
    A period that no longer has rows (a withdrawn return) is deleted and not inserted, which is
    why this is append plus a delete pre-hook rather than delete+insert keyed by the new rows.
    Untouched periods keep their rows, which equal a full rebuild's because nothing they are
    made of changed (int_kpi_inputs lists what each period is made of). A full refresh, or a
    table that does not exist yet, computes every period.

    target: 'kpi' keys rows by (period_grain, period); 'scorecard' by the reporting month;
    'records' (int_referrals) by the month a record falls in. -#}
{% macro incremental_kpis(target='kpi') -%}
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    pre_hook="{{ delete_touched_periods('" ~ target ~ "') }}"
) }}
-- depends_on: {{ ref('int_kpi_periods') }}
{%- endmacro %}

{% macro delete_touched_periods(target) -%}
    {%- if is_incremental() -%}
    delete from {{ this }}
    where
    {%- if target == 'kpi' %} {{ touched_period('period_grain', 'period') }}
    {%- elif target == 'scorecard' %} {{ touched_period("'month'", 'period', 'scorecard') }}
    {%- else %} {{ touched_period("'month'", 'month') }}
    {%- endif -%}
    {%- endif -%}
{%- endmacro %}

{#- True for a row of a touched period (always true outside an incremental run). -#}
{% macro touched_period(grain_expr, period_expr, target='kpi') -%}
    {%- if is_incremental() -%}
    ({{ grain_expr }}, {{ period_expr }}) in (
        select period_grain, period from {{ ref('int_kpi_periods') }} where target = '{{ target }}'
    )
    {%- else -%}
    true
    {%- endif -%}
{%- endmacro %}

{#- True for a record that falls in a touched month or financial year: columns names the
    record's period columns (month, financial_year). -#}
{% macro touched_record(alias, columns) -%}
    {%- if is_incremental() -%}
    (
    {%- for column in columns %}
        {{ alias }}.{{ column }} in (
            select period from {{ ref('int_kpi_periods') }}
            where target = 'kpi' and period_grain = '{{ column }}'
        )
        {%- if not loop.last %} or{% endif %}
    {%- endfor %}
    )
    {%- else -%}
    true
    {%- endif -%}
{%- endmacro %}
