-- One row per child death notification in the latest accepted version of each return.
{{ incremental_fact('child_deaths') }}
