{{ config(materialized='view') }}
-- Learning events from the latest accepted version of each training return, with the
-- submitting partner and the period each event falls in by its own event_date.
{{ current_records('training', [
    'record_id', 'course_code', 'delivery_mode', 'event_type', 'event_date', 'learner_sector',
    'impact_positive',
], placed_by='event_date') }}
