{{ incremental_kpis('scorecard') }}
-- The monthly scorecard (docs/scorecard.md): one row per reporting month and KPI with
-- on_scorecard true, partnership level. The figures, RAG and trend are int_scorecard_rows'.
-- suppressed and suppression_reason say which of them disclosure control hides wherever the
-- scorecard leaves the warehouse: the decisions are made over the whole mart, so `pkpi build`
-- sets them right after dbt has built it (pkpi.disclosure.stored, docs/mart.md), in the same
-- transaction that stores mart.disclosure_decisions. The mart itself keeps every figure.

select
    r.period,
    r.kpi_code,
    r.kpi_name,
    r.theme,
    r.unit,
    r.value,
    r.fytd_value,
    r.previous_month_value,
    r.same_month_last_year_value,
    r.target,
    r.polarity,
    r.rag,
    r.trend,
    r.provisional,
    false as suppressed,
    -- Beyond docs/mart.md, section 5: what disclosure control and the scorecard renderer need.
    cast(null as varchar) as suppression_reason,
    r.financial_year,
    r.value_grain,
    r.numerator,
    r.denominator,
    r.fytd_numerator,
    r.fytd_denominator,
    r.amber_tolerance,
    r.disclosive,
    r.display_order
from {{ ref('int_scorecard_rows') }} as r
where {{ touched_period("'month'", 'r.period', 'scorecard') }}
