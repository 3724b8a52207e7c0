-- The version of each return that the mart counts: the latest accepted load for each
-- (return_type, partner_code, period). A resubmission supersedes the earlier file; the history
-- stays in audit.loads. "Latest" is the file the platform took last (arrival_seq, a sequence
-- in the load transaction), never the file's timestamp: a partner's tool can set a modification
-- time in the past or the future, and received_at (the basis of on time) follows it.

with accepted as (
    select *
    from {{ ref('stg_loads') }}
    where load_status = 'accepted'
      and return_type in {{ sql_list(return_types()) }}
),

typed as (
    select
        *,
        case return_type
            {%- for rt, c in contracts().items() %}
            when '{{ rt }}' then '{{ c.period_kind }}'
            {%- endfor %}
        end as period_grain
    from accepted
),

valid as (
    -- The gate only accepts well-formed periods; this guards the date arithmetic below.
    select *
    from typed
    where (period_grain = 'month' and {{ is_month_label('period') }})
       or (period_grain = 'financial_year' and {{ is_financial_year_label('period') }})
),

ranked as (
    select
        *,
        row_number() over (
            partition by return_type, partner_code, period
            order by arrival_seq desc
        ) as version_rank,
        count(*) over (partition by return_type, partner_code, period) as accepted_versions
    from valid
)

select
    load_id,
    return_type,
    partner_code,
    period,
    period_grain,
    case
        when period_grain = 'month' then {{ financial_year_label(month_start('period')) }}
        else period
    end as financial_year,
    received_at,
    validated_at,
    arrival_seq,
    is_nil,
    row_count,
    accepted_versions
from ranked
where version_rank = 1
