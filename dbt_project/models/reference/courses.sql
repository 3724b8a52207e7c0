-- courses.csv from the reference folder, typed.
select
    cast({{ reference_cell('course_code') }} as varchar) as course_code,
    cast({{ reference_cell('course_name') }} as varchar) as course_name,
    cast({{ reference_cell('theme') }} as varchar) as theme
from {{ source('reference_files', 'courses') }} as f
