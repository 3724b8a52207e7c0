{{ config(materialized='view') }}
-- Child death notifications from the latest accepted version of each return, with the
-- submitting partner and the period each falls in by its own notification_date.
select
    d.load_id || ':' || cast(d.source_row as varchar) as record_key,
    d.load_id,
    d.source_row,
    l.partner_code,
    l.period as return_period,
    d.notification_id,
    d.notification_date,
    {{ month_label('d.notification_date') }} as month,
    {{ financial_year_label('d.notification_date') }} as financial_year,
    d.age_band,
    d.sex,
    d.ethnicity,
    d.death_type,
    d.jar_within_72h
from {{ ref('stg_child_deaths') }} as d
inner join {{ ref('int_latest_returns') }} as l
    on l.load_id = d.load_id and l.return_type = 'child_deaths'
