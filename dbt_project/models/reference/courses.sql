-- courses.csv from the reference folder, typed.
select
    cast(f.course_code as varchar) as course_code,
    cast(f.course_name as varchar) as course_name,
    cast(f.theme as varchar) as theme
from {{ source('reference_files', 'courses') }} as f
