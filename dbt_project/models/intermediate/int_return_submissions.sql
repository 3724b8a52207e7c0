-- Each expected return with what happened to it. Status:
--   received_on_time  the latest accepted file was received on or before the due date
--   received_late     the latest accepted file was received after the due date
--   rejected          files arrived but every one was rejected
--   missing           nothing arrived
-- "Received" is the date of received_at (when the partner's upload finished), so a file
-- landing at 23:59 on the due date is on time. A resubmission after the due date makes the
-- return late: the mart counts the latest accepted version.

with expected as (
    select * from {{ ref('int_expected_returns') }}
),

latest as (
    select * from {{ ref('int_latest_returns') }}
),

rejected as (
    select
        return_type,
        partner_code,
        period,
        count(*) as rejected_files,
        max(received_at) as last_rejected_at
    from {{ ref('stg_loads') }}
    where load_status = 'rejected'
    group by return_type, partner_code, period
)

select
    e.return_type,
    e.partner_code,
    e.period,
    e.period_grain,
    e.month,
    e.financial_year,
    e.due_days,
    e.due_date,
    case
        when l.load_id is not null and cast(l.received_at as date) <= e.due_date then 'received_on_time'
        when l.load_id is not null then 'received_late'
        when coalesce(r.rejected_files, 0) > 0 then 'rejected'
        else 'missing'
    end as status,
    l.load_id as accepted_load_id,
    l.received_at,
    l.is_nil,
    coalesce(l.accepted_versions, 0) as accepted_versions,
    coalesce(r.rejected_files, 0) as rejected_files,
    r.last_rejected_at,
    case
        when l.load_id is not null then greatest(date_diff('day', e.due_date, cast(l.received_at as date)), 0)
    end as days_late
from expected as e
left join latest as l
    on l.return_type = e.return_type
    and l.partner_code = e.partner_code
    and l.period = e.period
left join rejected as r
    on r.return_type = e.return_type
    and r.partner_code = e.partner_code
    and r.period = e.period
