-- Every KPI in the catalogue exists for ALL and for each submitting partner, at each of its
-- grains, with every breakdown it lists: no missing rows, even for a nil return.
with scopes as (
    select * from {{ ref('int_kpi_scopes') }}
),

kpis as (
    select kpi_code, source, grains, breakdowns from {{ ref('dim_kpi') }}
),

expected as (
    select k.kpi_code, s.period_grain, s.period, s.partner_code, d.dimension
    from kpis as k
    inner join scopes as s
        on s.source = k.source
        and list_contains(string_split(k.grains, '|'), s.period_grain)
    cross join lateral (
        select unnest(list_concat(['total'], string_split(nullif(k.breakdowns, ''), '|'))) as dimension
    ) as d
),

present as (
    select distinct kpi_code, period_grain, period, partner_code, dimension
    from {{ ref('kpi_values') }}
)

select e.*
from expected as e
left join present as p using (kpi_code, period_grain, period, partner_code, dimension)
where p.kpi_code is null
