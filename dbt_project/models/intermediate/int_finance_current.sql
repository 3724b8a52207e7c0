{{ config(materialized='view') }}
-- Contribution rows from the latest accepted version of each finance return. Finance has no
-- date column: its financial year is the return's period, and it feeds that grain only.
select
    f.load_id || ':' || cast(f.source_row as varchar) as record_key,
    f.load_id,
    f.source_row,
    l.partner_code,
    l.period as return_period,
    l.period as financial_year,
    f.contribution_type,
    f.amount_gbp,
    f.agreed_amount_gbp
from {{ ref('stg_finance') }} as f
inner join {{ ref('int_latest_returns') }} as l
    on l.load_id = f.load_id and l.return_type = 'finance'
