{{ config(materialized='view') }}
-- Learning events from the latest accepted version of each training return, with the
-- submitting partner and the period each event falls in by its own event_date.
select
    t.load_id || ':' || cast(t.source_row as varchar) as record_key,
    t.load_id,
    t.source_row,
    l.partner_code,
    l.period as return_period,
    t.record_id,
    t.course_code,
    t.delivery_mode,
    t.event_type,
    t.event_date,
    {{ month_label('t.event_date') }} as month,
    {{ financial_year_label('t.event_date') }} as financial_year,
    t.learner_sector,
    t.impact_positive
from {{ ref('stg_training') }} as t
inner join {{ ref('int_latest_returns') }} as l
    on l.load_id = t.load_id and l.return_type = 'training'
