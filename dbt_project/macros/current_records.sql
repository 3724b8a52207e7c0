{#- The body of an int_<return_type>_current model: the rows of stg_<return_type> from the latest
    accepted version of each return (int_latest_returns), keyed load_id:source_row, with the
    submitting partner and the return's period, then the contract's columns in their order.

    The contract's period_column is the record's own date: the record falls in the month and
    financial year of that date (not the return's period), and the two follow that column.
    Without one (finance has no date column) the financial year is the return's period, before
    the columns, and the rows feed that grain only. -#}
{% macro current_records(return_type) -%}
{%- set placed_by = contract(return_type).period_column -%}
{%- set selected = [
    "r.load_id || ':' || cast(r.source_row as varchar) as record_key",
    "r.load_id",
    "r.source_row",
    "l.partner_code",
    "l.period as return_period",
] -%}
{%- if not placed_by -%}
    {%- do selected.append("l.period as financial_year") -%}
{%- endif -%}
{%- for column in contract(return_type).columns -%}
    {%- do selected.append("r." ~ column) -%}
    {%- if column == placed_by -%}
        {%- do selected.append(month_label("r." ~ column) ~ " as month") -%}
        {%- do selected.append(financial_year_label("r." ~ column) ~ " as financial_year") -%}
    {%- endif -%}
{%- endfor -%}
{%- if placed_by and placed_by not in contract(return_type).columns -%}
    {{ exceptions.raise_compiler_error("current_records: the period_column " ~ placed_by ~ " of " ~ return_type ~ " is not one of its columns") }}
{%- endif -%}
select
    {{ selected | join(",\n    ") }}
from {{ ref('stg_' ~ return_type) }} as r
inner join {{ ref('int_latest_returns') }} as l
    on l.load_id = r.load_id and l.return_type = '{{ return_type }}'
{%- endmacro %}
