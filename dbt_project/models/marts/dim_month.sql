-- Every month of every financial year the mart covers.
select
    month,
    financial_year,
    quarter,
    month_of_financial_year,
    month_start,
    month_end,
    month_name,
    is_expected_month
from {{ ref('int_month_spine') }}
