-- partners.csv from the reference folder, typed.
select
    cast({{ reference_cell('partner_code') }} as varchar) as partner_code,
    cast({{ reference_cell('partner_name') }} as varchar) as partner_name,
    cast({{ reference_cell('partner_type') }} as varchar) as partner_type,
    cast(lower({{ reference_cell('statutory_partner') }}) as boolean) as statutory_partner,
    cast({{ reference_cell('active_from') }} as date) as active_from,
    cast({{ reference_cell('active_to') }} as date) as active_to,
    cast({{ reference_cell('data_contact_email') }} as varchar) as data_contact_email
from {{ source('reference_files', 'partners') }} as f
