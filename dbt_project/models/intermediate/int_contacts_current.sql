{{ config(materialized='view') }}
-- Contacts from the latest accepted version of each contacts return, with the submitting
-- partner and the period each contact falls in by its own contact_date.
select
    c.load_id || ':' || cast(c.source_row as varchar) as record_key,
    c.load_id,
    c.source_row,
    l.partner_code,
    l.period as return_period,
    c.contact_id,
    c.child_id,
    c.contact_date,
    {{ month_label('c.contact_date') }} as month,
    {{ financial_year_label('c.contact_date') }} as financial_year,
    c.contact_source,
    c.child_age_years,
    c.sex,
    c.ethnicity,
    c.outcome,
    c.referral_date
from {{ ref('stg_contacts') }} as c
inner join {{ ref('int_latest_returns') }} as l
    on l.load_id = c.load_id and l.return_type = 'contacts'
