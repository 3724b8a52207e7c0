-- population.csv from the reference folder, typed.
select
    cast({{ reference_cell('financial_year') }} as varchar) as financial_year,
    cast({{ reference_cell('population_0_17') }} as integer) as population_0_17
from {{ source('reference_files', 'population') }} as f
