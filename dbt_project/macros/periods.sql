{#- Reporting periods, the same rules as include/pkpi/periods.py:
    a month is YYYY-MM; a UK financial year is YYYY-YY, 1 April to 31 March. -#}

{% macro month_label(date_expr) -%}
    strftime(cast({{ date_expr }} as date), '%Y-%m')
{%- endmacro %}

{% macro financial_year_label(date_expr) -%}
    {#- 2023-03-31 -> 2022-23; 2023-04-01 -> 2023-24 -#}
    printf(
        '%04d-%02d',
        year(cast({{ date_expr }} as date)) - case when month(cast({{ date_expr }} as date)) < 4 then 1 else 0 end,
        (year(cast({{ date_expr }} as date)) - case when month(cast({{ date_expr }} as date)) < 4 then 1 else 0 end + 1) % 100
    )
{%- endmacro %}

{% macro month_start(month_label_expr) -%}
    cast({{ month_label_expr }} || '-01' as date)
{%- endmacro %}

{% macro month_end(month_label_expr) -%}
    cast(last_day(cast({{ month_label_expr }} || '-01' as date)) as date)
{%- endmacro %}

{% macro financial_year_start(fy_label_expr) -%}
    cast(left({{ fy_label_expr }}, 4) || '-04-01' as date)
{%- endmacro %}

{% macro financial_year_end(fy_label_expr) -%}
    cast(cast(cast(left({{ fy_label_expr }}, 4) as integer) + 1 as varchar) || '-03-31' as date)
{%- endmacro %}

{% macro is_month_label(expr) -%}
    coalesce(regexp_full_match({{ expr }}, '\d{4}-(0[1-9]|1[0-2])'), false)
{%- endmacro %}

{% macro is_financial_year_label(expr) -%}
    coalesce(
        regexp_full_match({{ expr }}, '\d{4}-\d{2}')
        and (try_cast(left({{ expr }}, 4) as integer) + 1) % 100 = try_cast(right({{ expr }}, 2) as integer),
        false
    )
{%- endmacro %}

{% macro sql_list(values) -%}
    ({%- for v in values -%}'{{ v }}'{%- if not loop.last -%}, {% endif -%}{%- endfor -%})
{%- endmacro %}

{#- A cell of a reference CSV (read all_varchar): trimmed, and blank read as null, the same way
    pkpi.reference reads the file, so a stray space in a hand-edited file types cleanly. -#}
{% macro reference_cell(column) -%}
    nullif(trim(f.{{ column }}), '')
{%- endmacro %}
