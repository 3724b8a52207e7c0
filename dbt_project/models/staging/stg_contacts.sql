-- One row per contact, as the gate loaded it: typing only, joined with nothing.
select
    cast(load_id as varchar) as load_id,
    cast(source_row as integer) as source_row,
    cast(contact_id as varchar) as contact_id,
    cast(child_id as varchar) as child_id,
    cast(contact_date as date) as contact_date,
    cast(contact_source as varchar) as contact_source,
    cast(child_age_years as integer) as child_age_years,
    cast(sex as varchar) as sex,
    cast(ethnicity as varchar) as ethnicity,
    cast(outcome as varchar) as outcome,
    cast(referral_date as date) as referral_date
from {{ source('raw', 'contacts') }}
