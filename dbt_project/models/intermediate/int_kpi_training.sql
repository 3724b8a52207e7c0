{{ incremental_kpis() }}
-- Training KPIs (docs/mart.md, the KPI catalogue), both grains, ALL and each submitting partner.
-- Events are placed by event_date.

with events as (
    {{ place_events(ref('int_training_current'), 'e.record_key', extra_columns=['course_code']) }}
)

{%- set commenced = "e.delivery_mode = 'elearning' and e.event_type = 'commenced'" %}
{%- set completed = "e.delivery_mode = 'elearning' and e.event_type = 'completed'" %}
{%- set attended = "e.event_type = 'attended'" %}
{%- set attended_or_dna = "e.event_type in ('attended', 'did_not_attend')" %}

{{ kpi('TRN_ELEARN_COMMENCED', 'training', 'events', numerator_where=commenced) }}
union all
{{ kpi('TRN_ELEARN_COMMENCED', 'training', 'events', numerator_where=commenced, dimension='learner_sector') }}
union all
{{ kpi('TRN_ELEARN_COMMENCED', 'training', 'events', numerator_where=commenced, dimension='course_code') }}
union all
{{ kpi('TRN_ELEARN_COMPLETED', 'training', 'events', numerator_where=completed) }}
union all
{{ kpi('TRN_ELEARN_COMPLETED', 'training', 'events', numerator_where=completed, dimension='learner_sector') }}
union all
{{ kpi('TRN_ELEARN_COMPLETED', 'training', 'events', numerator_where=completed, dimension='course_code') }}
union all
{{ kpi('TRN_ELEARN_COMPLETION_PCT', 'training', 'events', numerator_where=completed, denominator_where=commenced) }}
union all
{{ kpi('TRN_ATTENDANCES', 'training', 'events', numerator_where=attended) }}
union all
{{ kpi('TRN_ATTENDANCES', 'training', 'events', numerator_where=attended, dimension='learner_sector') }}
union all
{{ kpi('TRN_ATTENDANCES', 'training', 'events', numerator_where=attended, dimension='course_code') }}
union all
{{ kpi('TRN_DNA_PCT', 'training', 'events', numerator_where="e.event_type = 'did_not_attend'", denominator_where=attended_or_dna) }}
union all
{{ kpi('TRN_POSITIVE_IMPACT_PCT', 'training', 'events', numerator_where="e.impact_positive = 'yes'", denominator_where="e.impact_positive in ('yes', 'no')") }}
