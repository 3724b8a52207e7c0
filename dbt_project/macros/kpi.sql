{#- Building blocks for the KPI models (models/intermediate/int_kpi_*.sql).

    place_events() aggregates record-level rows before it fans them out: first one row per
    partner, month (and financial year) and combination of the columns KPIs filter or break
    down by, with the number of events (event_count) and the sums KPIs add up; only then is each
    of those rows placed in its month and its financial year, for its own partner and for ALL,
    and added up again per scope. So records are read once, narrowly, and the fan-out to four
    scopes (and every KPI's join after it) multiplies a few counted rows, whose number grows with
    partners, periods and breakdown values, not with records.

    kpi() then produces kpi_values rows for one KPI: every scope of its source (int_kpi_scopes)
    gets a row, crossed with every value of the breakdown when there is one
    (int_dimension_values), so a nil return or an empty breakdown value reads 0, not missing.

    In an incremental run of the calling model both read only the periods int_kpi_periods
    names (touched_record, touched_period: macros/incremental_kpis.sql).
-#}

{#- columns: what KPIs filter or break down by (a KPI's conditions may use only these, plus
    event_count); none means the contract's enumerations of the return type whose
    int_<return_type>_current the relation is. extra_columns: added to those. sums: columns to
    add up (kpi(sum_of=...)). key: counted when not null, as count(key) would. -#}
{% macro place_events(relation, key, grains=['month', 'financial_year'], where=none, columns=none,
                      extra_columns=[], sums=[]) -%}
{%- if columns is none and not execute -%}
    {#- Parsing: ref() does not name the real relation yet, and the SQL is not run. -#}
    {%- set columns = [] -%}
{%- elif columns is none -%}
    {%- set name = relation if relation is string else relation.identifier -%}
    {%- set return_type = name[4:-8] if name.startswith('int_') and name.endswith('_current') else none -%}
    {%- if return_type is none or return_type not in contracts() -%}
        {{ exceptions.raise_compiler_error("place_events(" ~ name ~ "): say which columns the KPIs use (columns=[...]); only an int_<return_type>_current defaults to its contract's enumerations.") }}
    {%- endif -%}
    {%- set columns = contract(return_type).enums.keys() | list -%}
{%- endif -%}
{%- set columns = columns + extra_columns -%}
{%- set periods = [] -%}
{%- for grain in grains -%}
    {%- do periods.append('month' if grain == 'month' else 'financial_year') -%}
{%- endfor -%}
select
    scope_grain,
    scope_period,
    scope_partner,
    {%- for column in columns %}
    {{ column }},
    {%- endfor %}
    {%- for column in sums %}
    sum({{ column }}) as {{ column }},
    {%- endfor %}
    sum(event_count) as event_count
from (
    select
        g.period_grain as scope_grain,
        case g.period_grain
            {%- for grain in grains %}
            when '{{ grain }}' then c.{{ periods[loop.index0] }}
            {%- endfor %}
        end as scope_period,
        case when a.is_partnership then 'ALL' else c.partner_code end as scope_partner,
        c.*
    from (
        select
            e.partner_code,
            {%- for period in periods %}
            e.{{ period }},
            {%- endfor %}
            {%- for column in columns %}
            e.{{ column }},
            {%- endfor %}
            {%- for column in sums %}
            sum(e.{{ column }}) as {{ column }},
            {%- endfor %}
            count({{ key }}) as event_count
        from {{ relation }} as e
        where {{ touched_record('e', periods) }}
        {%- if where %}
          and ({{ where }})
        {%- endif %}
        group by all
    ) as c
    cross join (values {% for grain in grains %}('{{ grain }}'){% if not loop.last %}, {% endif %}{% endfor %}) as g(period_grain)
    cross join (values (false), (true)) as a(is_partnership)
) as placed
where scope_period is not null
group by all
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
    {%- set numerator -%}coalesce(sum(e.event_count) filter (where {{ numerator_where }}), 0){%- endset -%}
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
        cast(coalesce(sum(e.event_count) filter (where {{ denominator_where }}), 0) as double) as denominator
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
      and {{ touched_period('s.period_grain', 's.period') }}
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

{#- The financial year after a YYYY-YY label: 2024-25 -> 2025-26. -#}
{% macro next_financial_year(fy_label_expr) -%}
    printf('%04d-%02d', cast(left({{ fy_label_expr }}, 4) as integer) + 1, (cast(left({{ fy_label_expr }}, 4) as integer) + 2) % 100)
{%- endmacro %}
