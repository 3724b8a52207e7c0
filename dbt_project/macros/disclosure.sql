{#- Which kpi_values rows disclosure control applies to: the rule of
    pkpi.disclosure.rules.is_disclosive, stated once in Python and handed over as the var
    `disclosive` ({dimensions: [...], kpi_prefixes: [...]}) that `pkpi build` passes on every run
    (pkpi.disclosure.rules.dbt_var). A row is disclosive when its KPI is marked disclosive, its
    code starts with one of the prefixes (child deaths), or it is a breakdown by one of the
    dimensions (sex, ethnicity), whatever the KPI. -#}

{% macro is_disclosive(kpi_code, dimension, marked) -%}
    {%- set rules = var('disclosive', none) -%}
    {%- if rules is none -%}
        {{ exceptions.raise_compiler_error(
            "The var 'disclosive' is missing: it carries the disclosure rule of "
            ~ "pkpi.disclosure.rules into dbt. Run the build through `pkpi build`.") }}
    {%- endif -%}
    (
        coalesce({{ marked }}, false)
        {%- for prefix in rules.kpi_prefixes %}
        or starts_with(upper({{ kpi_code }}), '{{ prefix | upper }}')
        {%- endfor %}
        {%- if rules.dimensions %}
        or {{ dimension }} in ({% for d in rules.dimensions %}'{{ d }}'{% if not loop.last %}, {% endif %}{% endfor %})
        {%- endif %}
    )
{%- endmacro %}
