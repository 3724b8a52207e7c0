{{ config(materialized='view') }}
-- Contacts from the latest accepted version of each contacts return, with the submitting
-- partner and the period each contact falls in by its own contact_date.
{{ current_records('contacts') }}
