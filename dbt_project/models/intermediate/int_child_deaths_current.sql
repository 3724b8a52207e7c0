{{ config(materialized='view') }}
-- Child death notifications from the latest accepted version of each return, with the
-- submitting partner and the period each falls in by its own notification_date.
{{ current_records('child_deaths', [
    'notification_id', 'notification_date', 'age_band', 'sex', 'ethnicity', 'death_type',
    'jar_within_72h',
], placed_by='notification_date') }}
