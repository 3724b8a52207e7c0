{#- Fails for every value that is not a return type (one per contract, contracts()) or one of
    `also` (the KPI catalogue's source may be 'returns', return compliance). Blank values pass:
    whether a column may be blank is a not_null constraint's business. -#}
{% test is_a_return_type(model, column_name, also=[]) %}
select {{ column_name }} as value, count(*) as occurrences
from {{ model }}
where {{ column_name }} not in {{ sql_list(return_types() + also) }}
group by {{ column_name }}
{% endtest %}
