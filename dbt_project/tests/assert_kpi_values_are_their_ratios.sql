-- Every KPI's value follows from its numerator and denominator: a count or sum is its
-- numerator with no denominator; a ratio is scale x numerator / denominator, and null when the
-- denominator is 0 or unknown (docs/mart.md, the KPI catalogue).
select v.*
from {{ ref('kpi_values') }} as v
inner join {{ ref('dim_kpi') }} as k on k.kpi_code = v.kpi_code
where case
    when k.scale is null then
        v.denominator is not null or v.value is distinct from v.numerator
    when v.denominator is null or v.denominator = 0 then
        v.value is not null
    else
        v.value is null or abs(v.value - k.scale * v.numerator / v.denominator) > 1e-9
end
