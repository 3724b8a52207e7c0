{{ incremental_kpis() }}
-- Child death KPIs (docs/mart.md, the KPI catalogue), both grains, ALL and each submitting partner.
-- Notifications are placed by notification_date. Nil returns are normal here and read 0.

with notifications as (
    {{ place_events(ref('int_child_deaths_current'), 'e.record_key') }}
)

{{ kpi('CDN_NOTIFICATIONS', 'child_deaths', 'notifications') }}
union all
{{ kpi('CDN_NOTIFICATIONS', 'child_deaths', 'notifications', dimension='death_type') }}
union all
{{ kpi('CDN_NOTIFICATIONS', 'child_deaths', 'notifications', dimension='age_band') }}
union all
{{ kpi('CDN_NOTIFICATIONS', 'child_deaths', 'notifications', dimension='sex') }}
union all
{{ kpi('CDN_NOTIFICATIONS', 'child_deaths', 'notifications', dimension='ethnicity') }}
union all
{{ kpi('CDN_UNDER_1_PCT', 'child_deaths', 'notifications', numerator_where="e.age_band in ('under_28_days', '28_to_364_days')", denominator_where='true') }}
union all
{{ kpi('CDN_UNEXPECTED_JAR_PCT', 'child_deaths', 'notifications', numerator_where="e.death_type = 'unexpected' and e.jar_within_72h = 'yes'", denominator_where="e.death_type = 'unexpected'") }}
