-- partners.csv from the reference folder, typed.
select
    cast(f.partner_code as varchar) as partner_code,
    cast(f.partner_name as varchar) as partner_name,
    cast(f.partner_type as varchar) as partner_type,
    cast(f.statutory_partner as boolean) as statutory_partner,
    cast(f.active_from as date) as active_from,
    cast(f.active_to as date) as active_to,
    cast(f.data_contact_email as varchar) as data_contact_email
from {{ source('reference_files', 'partners') }} as f
