{{ incremental_kpis('records') }}
-- Every referral (a contact with outcome referral) in the latest versions of the contacts
-- returns, flagged when it is a re-referral: the same partner had referred the same child_id
-- with a referral_date no more than 365 days earlier. Earlier dates only, so two referrals
-- on the same day do not make each other re-referrals; exactly 365 days counts, 366 does not
-- (whole days, so leap years need no special case). The look-back covers every loaded month
-- and financial year, not just the period the referral is counted in. Incremental by the
-- month a referral is counted in (macros/incremental_kpis.sql): int_kpi_periods adds the
-- months whose flags a changed referral can change.

with referrals as (
    select
        record_key,
        load_id,
        source_row,
        partner_code,
        contact_id,
        child_id,
        contact_date,
        referral_date,
        month,
        financial_year
    from {{ ref('int_contacts_current') }}
    where outcome = 'referral'
),

flagged as (
    select
        r.*,
        (
            select max(p.referral_date)
            from referrals as p
            where p.partner_code = r.partner_code
              and p.child_id = r.child_id
              and p.referral_date < r.referral_date
              and p.referral_date >= r.referral_date - 365
        ) as previous_referral_date
    from referrals as r
    where {{ touched_record('r', ['month']) }}
)

select
    *,
    previous_referral_date is not null as is_rereferral_12m
from flagged
