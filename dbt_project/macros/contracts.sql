{#- The contracts (include/pkpi/contracts/*.yml) as dbt sees them: the var `contracts`, which
    `pkpi build` passes on every run (pkpi.dbt_contracts.contract_vars). Per return type:
    period_kind (month | financial_year), period_column (the date that places a record in its
    month, or none), columns (raw column -> SQL type, after load_id and source_row) and enums
    (column -> allowed values). Nothing in the project copies a contract; loop over these. -#}

{% macro contracts() -%}
    {%- set found = var('contracts', none) -%}
    {%- if found is none -%}
        {{ exceptions.raise_compiler_error(
            "The var 'contracts' is missing: it carries include/pkpi/contracts/*.yml into dbt. "
            ~ "Run the build through `pkpi build`, or by hand with the vars it passes (docs/dbt.md, By hand).") }}
    {%- endif -%}
    {{- return(found) -}}
{%- endmacro %}

{#- One return type's contract; a name no contract has is a compile error, not an empty list. -#}
{% macro contract(return_type) -%}
    {%- set all = contracts() -%}
    {%- if return_type not in all -%}
        {{ exceptions.raise_compiler_error("No contract for return type '" ~ return_type ~ "'; known: " ~ (all.keys() | join(', '))) }}
    {%- endif -%}
    {{- return(all[return_type]) -}}
{%- endmacro %}

{#- Every return type, in the contracts' order. -#}
{% macro return_types() -%}
    {{- return(contracts().keys() | list) -}}
{%- endmacro %}

{#- The return types reported by this period kind: month or financial_year. -#}
{% macro return_types_of_grain(grain) -%}
    {%- set out = [] -%}
    {%- for rt, c in contracts().items() -%}
        {%- if c.period_kind == grain -%}{%- do out.append(rt) -%}{%- endif -%}
    {%- endfor -%}
    {{- return(out) -}}
{%- endmacro %}

{#- The return types whose records carry their own date (period_column): each record is placed
    in that date's month and financial year, and int_<return_type>_current has month. -#}
{% macro return_types_placed_by_date() -%}
    {%- set out = [] -%}
    {%- for rt, c in contracts().items() -%}
        {%- if c.period_column -%}{%- do out.append(rt) -%}{%- endif -%}
    {%- endfor -%}
    {{- return(out) -}}
{%- endmacro %}

{#- The body of a stg_<return_type> model: the raw table, every column cast to the contract's
    type (the gate already typed them; this pins the types dbt builds on). -#}
{% macro staged_return(return_type) -%}
{%- set selected = ["cast(load_id as varchar) as load_id", "cast(source_row as integer) as source_row"] -%}
{%- for column, sql_type in contract(return_type).columns.items() -%}
    {%- do selected.append("cast(" ~ column ~ " as " ~ sql_type ~ ") as " ~ column) -%}
{%- endfor -%}
select
    {{ selected | join(",\n    ") }}
from {{ source('raw', return_type) }}
{%- endmacro %}
