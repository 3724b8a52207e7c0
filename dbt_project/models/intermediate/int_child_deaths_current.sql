{{ config(materialized='view') }}
-- Child death notifications from the latest accepted version of each return, with the
-- submitting partner and the period each falls in by its own notification_date.
{{ current_records('child_deaths') }}
