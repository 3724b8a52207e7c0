{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    pre_hook="{{ delete_superseded_loads('training') }}"
) }}
-- depends_on: {{ ref('int_latest_returns') }}
-- One row per learning event in the latest accepted version of each training return.
select
    record_key,
    load_id,
    source_row,
    partner_code,
    return_period,
    record_id,
    course_code,
    delivery_mode,
    event_type,
    event_date,
    month,
    financial_year,
    learner_sector,
    impact_positive
from {{ ref('int_training_current') }}
{{ only_new_loads() }}
