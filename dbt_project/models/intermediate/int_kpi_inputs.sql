-- What the KPI tables are made of, as rows of (input, period_grain, period): each input names
-- a thing and its state, and says which period it feeds. int_kpi_periods compares these rows
-- with the ones the last build stored (mart.kpi_build_inputs): a period with any row added or
-- gone must be computed again; every other period would come out the same.
--   load <id> latest|rejected  the latest accepted version of a return, or a rejected file
--                              (return compliance), in each period of int_load_periods
--   spine <month> <expected>   the months the mart covers and expects returns for
--   reference <fingerprint>    reference data, the catalogue, breakdown values (a new course
--                              code), the contracts, the disclosure rule and the project's
--                              models and macros: any change makes every period change ('all')

with load_states as (
    select load_id, 'latest' as state from {{ ref('int_latest_returns') }}
    union all
    select load_id, 'rejected' from {{ ref('stg_loads') }}
    where load_status = 'rejected' and return_type in {{ sql_list(return_types()) }}
),

reference_parts as (
    {%- for name in ['partners', 'return_schedule', 'courses', 'population', 'kpi_targets', 'kpi_catalogue', 'int_dimension_values'] %}
    select '{{ name }} ' || cast(count(*) as varchar) || ' ' || cast(coalesce(sum(hash(t)::hugeint), 0) as varchar) as part
    from {{ ref(name) }} as t
    union all
    {%- endfor %}
    {%- set code = [] %}
    {%- if execute %}
        {%- for node in graph.nodes.values() | sort(attribute='unique_id') %}
            {%- if node.resource_type in ('model', 'seed') %}{% do code.append(node.unique_id ~ node.checksum.checksum) %}{% endif %}
        {%- endfor %}
    {%- endif %}
    select '{{ local_md5(tojson(var("contracts")) ~ tojson(var("disclosive")) ~ var("macros_fingerprint", "") ~ (code | join(","))) }}'
)

select 'load ' || s.load_id || ' ' || s.state as input, p.period_grain, p.period
from load_states as s
inner join {{ ref('int_load_periods') }} as p on p.load_id = s.load_id
union all
select 'spine ' || month || ' ' || cast(is_expected_month as varchar), 'month', month
from {{ ref('int_month_spine') }}
union all
select 'reference ' || md5(string_agg(part, ',' order by part)), 'all', 'all'
from reference_parts
