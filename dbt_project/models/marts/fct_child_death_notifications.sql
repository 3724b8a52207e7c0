{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    pre_hook="{{ delete_superseded_loads('child_deaths') }}"
) }}
-- depends_on: {{ ref('int_latest_returns') }}
-- One row per child death notification in the latest accepted version of each return.
select
    record_key,
    load_id,
    source_row,
    partner_code,
    return_period,
    notification_id,
    notification_date,
    month,
    financial_year,
    age_band,
    sex,
    ethnicity,
    death_type,
    jar_within_72h
from {{ ref('int_child_deaths_current') }}
{{ only_new_loads() }}
