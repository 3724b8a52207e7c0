{#- Custom schemas are used verbatim (staging, intermediate, mart, reference) rather than
    prefixed with the target schema, so the published names are stable. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
