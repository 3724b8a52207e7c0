-- One row per learning event, as the gate loaded it: typing only, joined with nothing.
select
    cast(load_id as varchar) as load_id,
    cast(source_row as integer) as source_row,
    cast(record_id as varchar) as record_id,
    cast(course_code as varchar) as course_code,
    cast(delivery_mode as varchar) as delivery_mode,
    cast(event_type as varchar) as event_type,
    cast(event_date as date) as event_date,
    cast(learner_sector as varchar) as learner_sector,
    cast(impact_positive as varchar) as impact_positive
from {{ source('raw', 'training') }}
