-- The partner directory (partners.csv), with the dates each partner is active.
select
    partner_code,
    partner_name,
    partner_type,
    statutory_partner,
    active_from,
    active_to
from {{ ref('partners') }}
