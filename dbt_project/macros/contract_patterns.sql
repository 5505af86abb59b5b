{#- Generated from pipelines/contract.py by `python -m pipelines.contract`: do not edit.
    tests/test_dbt_project.py fails when this file differs from the contract. -#}

{#- EMAIL_PATTERN: the shape of a normalised e-mail address (RE2), a SQL string literal. -#}
{% macro email_pattern() -%}
    {% raw %}'^[^@ \t\n\r\f\v,;:<>()\[\]\\\"]+@(?:[^@ \t\n\r\f\v,;:<>()\[\]\\\"._]+\.)+[a-z0-9-]{2,}$'{% endraw %}
{%- endmacro %}
