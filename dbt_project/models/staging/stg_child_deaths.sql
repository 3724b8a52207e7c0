-- One row per child death notification, as the gate loaded it: typing only, joined with nothing.
select
    cast(load_id as varchar) as load_id,
    cast(source_row as integer) as source_row,
    cast(notification_id as varchar) as notification_id,
    cast(notification_date as date) as notification_date,
    cast(age_band as varchar) as age_band,
    cast(sex as varchar) as sex,
    cast(ethnicity as varchar) as ethnicity,
    cast(death_type as varchar) as death_type,
    cast(jar_within_72h as varchar) as jar_within_72h
from {{ source('raw', 'child_deaths') }}
