-- One row per expected return (return type, partner, period) with its due date and status:
-- received_on_time, received_late, missing or rejected (see int_return_submissions).
select
    return_type,
    partner_code,
    period,
    period_grain,
    financial_year,
    due_date,
    status,
    accepted_load_id,
    received_at,
    is_nil,
    cast(accepted_versions as integer) as accepted_versions,
    cast(rejected_files as integer) as rejected_files,
    cast(days_late as integer) as days_late
from {{ ref('int_return_submissions') }}
