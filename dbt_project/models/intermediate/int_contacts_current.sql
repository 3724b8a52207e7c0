{{ config(materialized='view') }}
-- Contacts from the latest accepted version of each contacts return, with the submitting
-- partner and the period each contact falls in by its own contact_date.
{{ current_records('contacts', [
    'contact_id', 'child_id', 'contact_date', 'contact_source', 'child_age_years', 'sex',
    'ethnicity', 'outcome', 'referral_date',
], placed_by='contact_date') }}
