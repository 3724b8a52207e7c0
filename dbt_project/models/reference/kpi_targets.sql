-- kpi_targets.csv from the reference folder, typed.
select
    cast({{ reference_cell('kpi_code') }} as varchar) as kpi_code,
    cast({{ reference_cell('financial_year') }} as varchar) as financial_year,
    cast({{ reference_cell('target') }} as double) as target,
    cast({{ reference_cell('amber_tolerance') }} as double) as amber_tolerance
from {{ source('reference_files', 'kpi_targets') }} as f
