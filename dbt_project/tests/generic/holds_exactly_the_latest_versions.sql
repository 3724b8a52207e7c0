{#- On an incremental record-level fact (incremental_fact): it must equal a full rebuild, so
    every row of every latest accepted version of return_type, and nothing from a superseded or
    rejected file. Fails with one row per load whose row count differs. Each fact declares it
    (models/marts/_marts.yml), so a new return type's fact brings its own check. -#}
{% test holds_exactly_the_latest_versions(model, return_type) %}
with expected as (
    select load_id, count(*) as row_count
    from {{ ref('stg_' ~ return_type) }}
    where load_id in (select load_id from {{ ref('int_latest_returns') }} where return_type = '{{ return_type }}')
    group by load_id
),

actual as (
    select load_id, count(*) as row_count
    from {{ model }}
    group by load_id
)

select
    '{{ return_type }}' as return_type,
    coalesce(e.load_id, a.load_id) as load_id,
    e.row_count as expected_rows,
    a.row_count as fact_rows
from expected as e
full outer join actual as a on a.load_id = e.load_id
where e.row_count is distinct from a.row_count
{% endtest %}
