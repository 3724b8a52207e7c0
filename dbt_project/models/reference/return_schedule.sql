-- return_schedule.csv from the reference folder, typed.
select
    cast({{ reference_cell('return_type') }} as varchar) as return_type,
    cast({{ reference_cell('partner_code') }} as varchar) as partner_code,
    cast({{ reference_cell('due_days') }} as integer) as due_days,
    cast({{ reference_cell('active_from') }} as date) as active_from,
    cast({{ reference_cell('active_to') }} as date) as active_to
from {{ source('reference_files', 'return_schedule') }} as f
