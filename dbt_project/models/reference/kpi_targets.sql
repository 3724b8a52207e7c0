-- kpi_targets.csv from the reference folder, typed.
select
    cast(f.kpi_code as varchar) as kpi_code,
    cast(f.financial_year as varchar) as financial_year,
    cast(f.target as double) as target,
    cast(f.amber_tolerance as double) as amber_tolerance
from {{ source('reference_files', 'kpi_targets') }} as f
