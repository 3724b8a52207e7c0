{#- Fails for values outside the contract's enumeration for this return type and column
    (contracts(), from include/pkpi/contracts/*.yml). Blank values pass: whether a
    column may be blank is the gate's row rules' business. -#}
{% test in_contract_enum(model, column_name, return_type) %}
{%- set allowed = contract(return_type).enums[column_name] -%}
select {{ column_name }} as value, count(*) as occurrences
from {{ model }}
where {{ column_name }} is not null
  and {{ column_name }} not in {{ sql_list(allowed) }}
group by {{ column_name }}
{% endtest %}
