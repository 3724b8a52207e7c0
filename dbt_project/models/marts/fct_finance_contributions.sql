-- One row per contribution type in the latest accepted version of each finance return.
{{ incremental_fact('finance') }}
