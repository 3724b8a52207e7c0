-- Every value each breakdown can take, by source and grain, so a breakdown lists zeros rather
-- than leaving values out: the contracts' enumerations (contracts()), the course catalogue,
-- any course code found in the data but missing from courses.csv, and the return types (an
-- annual return type only at the financial-year grain).

with value_list as (
    {%- set rows = [] %}
    {%- for rt, c in contracts().items() %}
        {%- for column, values in c.enums.items() %}
            {%- for value in values %}
                {%- do rows.append("('" ~ rt ~ "', '" ~ column ~ "', '" ~ value ~ "', " ~ loop.index ~ ", null)") %}
            {%- endfor %}
        {%- endfor %}
    {%- endfor %}
    {%- for rt, c in contracts().items() %}
        {%- do rows.append("('returns', 'return_type', '" ~ rt ~ "', " ~ loop.index ~ ", " ~ ("'financial_year'" if c.period_kind == 'financial_year' else "null") ~ ")") %}
    {%- endfor %}
    select *
    from (values
        {{ rows | join(',\n        ') }}
    ) as v(source, dimension, dimension_value, sort_order, only_grain)
),

courses as (
    select course_code from {{ ref('courses') }}
    union
    select distinct course_code from {{ ref('int_training_current') }}
),

all_values as (
    select source, dimension, dimension_value, sort_order, only_grain from value_list
    union all
    select
        'training',
        'course_code',
        course_code,
        cast(row_number() over (order by course_code) as integer),
        null
    from courses
),

grains as (
    select * from (values ('month'), ('financial_year')) as g(period_grain)
)

select
    v.source,
    g.period_grain,
    v.dimension,
    v.dimension_value,
    v.sort_order
from all_values as v
cross join grains as g
where v.only_grain is null or v.only_grain = g.period_grain
