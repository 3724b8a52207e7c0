{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    pre_hook="{{ delete_superseded_loads('finance') }}"
) }}
-- depends_on: {{ ref('int_latest_returns') }}
-- One row per contribution type in the latest accepted version of each finance return.
select
    record_key,
    load_id,
    source_row,
    partner_code,
    return_period,
    financial_year,
    contribution_type,
    amount_gbp,
    agreed_amount_gbp
from {{ ref('int_finance_current') }}
{{ only_new_loads() }}
