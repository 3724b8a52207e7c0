{{ incremental_kpis() }}
-- Every KPI's rows before the mart adds the catalogue's flags: the union of int_kpi_<source>,
-- one per return type (contracts()) plus return compliance (int_kpi_returns). mart.kpi_values
-- and the scorecard rows both read it, so no intermediate model depends on the mart.

{%- set sources = return_types() + ['returns'] %}
{%- for source in sources %}
select
    kpi_code,
    period_grain,
    period,
    partner_code,
    dimension,
    dimension_value,
    cast(numerator as double) as numerator,
    cast(denominator as double) as denominator,
    cast(value as double) as value
from {{ ref('int_kpi_' ~ source) }}
where {{ touched_period('period_grain', 'period') }}
{%- if not loop.last %}
union all
{%- endif %}
{%- endfor %}
