-- The incremental record-level facts must equal a full rebuild: every row of every latest
-- accepted version, and nothing from a superseded or rejected file.
{%- set facts = {
    'contacts': 'fct_contacts',
    'training': 'fct_training_events',
    'child_deaths': 'fct_child_death_notifications',
    'finance': 'fct_finance_contributions',
} %}
with expected as (
    {%- for return_type, fact in facts.items() %}
    select '{{ return_type }}' as return_type, load_id, count(*) as row_count
    from {{ ref('stg_' ~ return_type) }}
    where load_id in (select load_id from {{ ref('int_latest_returns') }} where return_type = '{{ return_type }}')
    group by load_id
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- endfor %}
),

actual as (
    {%- for return_type, fact in facts.items() %}
    select '{{ return_type }}' as return_type, load_id, count(*) as row_count
    from {{ ref(fact) }}
    group by load_id
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- endfor %}
)

select
    coalesce(e.return_type, a.return_type) as return_type,
    coalesce(e.load_id, a.load_id) as load_id,
    e.row_count as expected_rows,
    a.row_count as fact_rows
from expected as e
full outer join actual as a on a.return_type = e.return_type and a.load_id = e.load_id
where e.row_count is distinct from a.row_count
