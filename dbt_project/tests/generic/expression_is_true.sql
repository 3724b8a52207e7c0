{#- Fails for every row where the SQL expression is not true. Used at model level, or on a
    column (column_name is then available to the expression but not required). -#}
{% test expression_is_true(model, expression, column_name=none) %}
select *
from {{ model }}
where not coalesce(({{ expression }}), false)
{% endtest %}
