{{ incremental_kpis() }}
-- Contacts KPIs (docs/mart.md, the KPI catalogue), both grains, ALL and each submitting partner.
-- Contacts and referrals are placed by contact_date; the re-referral flag comes from
-- int_referrals, whose look-back spans every loaded month.

with contacts as (
    {{ place_events(ref('int_contacts_current'), 'e.record_key', columns=['contact_source', 'outcome']) }}
),

referrals as (
    {{ place_events(ref('int_referrals'), 'e.record_key', columns=['is_rereferral_12m']) }}
),

population as (
    select * from {{ ref('population') }}
),

per_10k as (
    select
        'CON_PER_10K' as kpi_code,
        s.period_grain,
        s.period,
        s.partner_code,
        'total' as dimension,
        'total' as dimension_value,
        cast(coalesce(sum(e.event_count), 0) as double) as numerator,
        cast(max(p.population_0_17) as double) as denominator
    from {{ ref('int_kpi_scopes') }} as s
    left join population as p on p.financial_year = s.period
    left join contacts as e
        on e.scope_grain = s.period_grain
        and e.scope_period = s.period
        and e.scope_partner = s.partner_code
    where s.source = 'contacts' and s.period_grain = 'financial_year'
      and {{ touched_period('s.period_grain', 's.period') }}
    group by all
)

{{ kpi('CON_CONTACTS', 'contacts', 'contacts') }}
union all
{{ kpi('CON_CONTACTS', 'contacts', 'contacts', dimension='contact_source') }}
union all
{{ kpi('CON_CONTACTS', 'contacts', 'contacts', dimension='outcome') }}
union all
{{ kpi('CON_REFERRALS', 'contacts', 'contacts', numerator_where="e.outcome = 'referral'") }}
union all
{{ kpi('CON_REFERRALS', 'contacts', 'contacts', numerator_where="e.outcome = 'referral'", dimension='contact_source') }}
union all
{{ kpi('CON_CONVERSION_PCT', 'contacts', 'contacts', numerator_where="e.outcome = 'referral'", denominator_where='true') }}
union all
{{ kpi('CON_NFA_PCT', 'contacts', 'contacts', numerator_where="e.outcome = 'nfa'", denominator_where='true') }}
union all
{{ kpi('CON_EARLY_HELP_PCT', 'contacts', 'contacts', numerator_where="e.outcome = 'early_help'", denominator_where='true') }}
union all
{{ kpi('CON_REREFERRAL_12M_PCT', 'contacts', 'referrals', numerator_where='e.is_rereferral_12m', denominator_where='true') }}
union all
select
    *,
    case when denominator is null or denominator = 0 then null else 10000 * numerator / denominator end as value
from per_10k
