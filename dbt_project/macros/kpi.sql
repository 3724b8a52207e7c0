{#- Building blocks for the KPI models (models/intermediate/int_kpi_*.sql).

    place_events() turns record-level rows into one row per (grain, period, partner scope):
    each record counts in its month and its financial year, for its own partner and for ALL.

    kpi() then produces kpi_values rows for one KPI: every scope of its source (int_kpi_scopes)
    gets a row, crossed with every value of the breakdown when there is one
    (int_dimension_values), so a nil return or an empty breakdown value reads 0, not missing.
-#}

{% macro place_events(relation, key, grains=['month', 'financial_year'], where=none) -%}
select *
from (
    select
        g.period_grain as scope_grain,
        case g.period_grain
            {%- for grain in grains %}
            when '{{ grain }}' then e.{{ 'month' if grain == 'month' else 'financial_year' }}
            {%- endfor %}
        end as scope_period,
        case when a.is_partnership then 'ALL' else e.partner_code end as scope_partner,
        {{ key }} as event_key,
        e.*
    from {{ relation }} as e
    cross join (values {% for grain in grains %}('{{ grain }}'){% if not loop.last %}, {% endif %}{% endfor %}) as g(period_grain)
    cross join (values (false), (true)) as a(is_partnership)
    {%- if where %}
    where {{ where }}
    {%- endif %}
) as placed
where scope_period is not null
{%- endmacro %}


{#- One KPI's rows.
    numerator_where / denominator_where: conditions on the event alias e.
    sum_of: sum this column instead of counting events.
    denominator_where none: a count or sum (denominator null, value = numerator);
    otherwise value = scale * numerator / denominator, null when the denominator is 0.
    dimension: a breakdown column; exclude_values drops breakdown values the KPI cannot take. -#}
{% macro kpi(kpi_code, source, events, numerator_where='true', denominator_where=none, sum_of=none,
             scale=100, dimension=none, exclude_values=[], grains=none) -%}
{%- if sum_of -%}
    {%- set numerator -%}coalesce(sum(e.{{ sum_of }}) filter (where {{ numerator_where }}), 0){%- endset -%}
{%- else -%}
    {%- set numerator -%}count(e.event_key) filter (where {{ numerator_where }}){%- endset -%}
{%- endif -%}
select
    kpi_code,
    period_grain,
    period,
    partner_code,
    dimension,
    dimension_value,
    numerator,
    denominator,
    {%- if denominator_where is not none %}
    case when denominator = 0 then null else {{ scale }} * numerator / denominator end as value
    {%- else %}
    numerator as value
    {%- endif %}
from (
    select
        '{{ kpi_code }}' as kpi_code,
        s.period_grain,
        s.period,
        s.partner_code,
        {%- if dimension %}
        '{{ dimension }}' as dimension,
        d.dimension_value,
        {%- else %}
        'total' as dimension,
        'total' as dimension_value,
        {%- endif %}
        cast({{ numerator }} as double) as numerator,
        {%- if denominator_where is not none %}
        cast(count(e.event_key) filter (where {{ denominator_where }}) as double) as denominator
        {%- else %}
        cast(null as double) as denominator
        {%- endif %}
    from {{ ref('int_kpi_scopes') }} as s
    {%- if dimension %}
    inner join {{ ref('int_dimension_values') }} as d
        on d.source = s.source
        and d.period_grain = s.period_grain
        and d.dimension = '{{ dimension }}'
        {%- if exclude_values %}
        and d.dimension_value not in {{ sql_list(exclude_values) }}
        {%- endif %}
    {%- endif %}
    left join {{ events }} as e
        on e.scope_grain = s.period_grain
        and e.scope_period = s.period
        and e.scope_partner = s.partner_code
        {%- if dimension %}
        and e.{{ dimension }} = d.dimension_value
        {%- endif %}
    where s.source = '{{ source }}'
    {%- if grains %}
      and s.period_grain in {{ sql_list(grains) }}
    {%- endif %}
    group by all
) as counted
{%- endmacro %}


{#- The financial year before a YYYY-YY label: 2024-25 -> 2023-24. -#}
{% macro previous_financial_year(fy_label_expr) -%}
    printf('%04d-%02d', cast(left({{ fy_label_expr }}, 4) as integer) - 1, cast(left({{ fy_label_expr }}, 4) as integer) % 100)
{%- endmacro %}
