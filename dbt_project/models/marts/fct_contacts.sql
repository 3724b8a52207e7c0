-- One row per contact in the latest accepted version of each contacts return.
{{ incremental_fact('contacts') }}
