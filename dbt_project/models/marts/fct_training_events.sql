-- One row per learning event in the latest accepted version of each training return.
{{ incremental_fact('training') }}
