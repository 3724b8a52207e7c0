{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    pre_hook="{{ delete_superseded_loads('contacts') }}"
) }}
-- depends_on: {{ ref('int_latest_returns') }}
-- One row per contact in the latest accepted version of each contacts return.
select
    record_key,
    load_id,
    source_row,
    partner_code,
    return_period,
    contact_id,
    child_id,
    contact_date,
    month,
    financial_year,
    contact_source,
    child_age_years,
    sex,
    ethnicity,
    outcome,
    referral_date
from {{ ref('int_contacts_current') }}
{{ only_new_loads() }}
