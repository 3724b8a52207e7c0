{{ config(materialized='view') }}
-- Learning events from the latest accepted version of each training return, with the
-- submitting partner and the period each event falls in by its own event_date.
{{ current_records('training') }}
