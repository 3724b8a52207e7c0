-- return_schedule.csv from the reference folder, typed.
select
    cast(f.return_type as varchar) as return_type,
    cast(f.partner_code as varchar) as partner_code,
    cast(f.due_days as integer) as due_days,
    cast(f.active_from as date) as active_from,
    cast(f.active_to as date) as active_to
from {{ source('reference_files', 'return_schedule') }} as f
