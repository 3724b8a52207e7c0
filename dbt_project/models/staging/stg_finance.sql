-- One row per contribution type in a finance return: typing only, joined with nothing.
select
    cast(load_id as varchar) as load_id,
    cast(source_row as integer) as source_row,
    cast(contribution_type as varchar) as contribution_type,
    cast(amount_gbp as decimal(12, 2)) as amount_gbp,
    cast(agreed_amount_gbp as decimal(12, 2)) as agreed_amount_gbp
from {{ source('raw', 'finance') }}
