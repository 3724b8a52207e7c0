{{ config(materialized='view') }}
-- Contribution rows from the latest accepted version of each finance return. Finance has no
-- date column: its financial year is the return's period, and it feeds that grain only.
{{ current_records('finance') }}
