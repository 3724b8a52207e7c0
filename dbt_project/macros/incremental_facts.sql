{#- Record-level facts are incremental, keyed by load: a run inserts only the rows of loads the
    table does not hold yet, and this pre-hook first deletes the rows of loads that are no longer
    the latest accepted version of their return (a resubmission, including a nil one, replaced
    them). Together they keep the table equal to a full rebuild. -#}
{% macro delete_superseded_loads(return_type) -%}
    {%- if is_incremental() -%}
    delete from {{ this }}
    where load_id not in (
        select load_id from {{ ref('int_latest_returns') }} where return_type = '{{ return_type }}'
    )
    {%- endif -%}
{%- endmacro %}

{% macro only_new_loads() -%}
    {%- if is_incremental() -%}
    where load_id not in (select distinct load_id from {{ this }})
    {%- endif -%}
{%- endmacro %}

{#- A whole record-level fact: int_<return_type>_current made incremental as above. Its columns,
    their order and types are the model's enforced contract (_marts.yml), which dbt checks the
    select against and creates the table from. -#}
{% macro incremental_fact(return_type) -%}
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    pre_hook="{{ delete_superseded_loads('" ~ return_type ~ "') }}"
) }}
-- depends_on: {{ ref('int_latest_returns') }}
select *
from {{ ref('int_' ~ return_type ~ '_current') }}
{{ only_new_loads() }}
{%- endmacro %}
