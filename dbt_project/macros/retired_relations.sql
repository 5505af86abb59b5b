{#- Relations that earlier versions of this project built and this one no longer does (models
    renamed or removed). dbt never drops a relation it stops building, so an upgraded
    warehouse would keep the old tables for good: stale numbers beside the new ones, and copies
    of personal data (phones, e-mails, names) that `clm erase` neither rebuilds nor deletes.
    Dropped at the start of every run (on-run-start); each entry is (schema, name). -#}
{% macro clm_retired_relations() -%}
    {{ return([
        ('staging', 'stg_phones__numbers'),
        ('intermediate', 'int_customers_survived'),
        ('intermediate', 'int_sessions_sessionised'),
        ('intermediate', 'int_customer_months_staged'),
    ]) }}
{%- endmacro %}

{% macro clm_drop_retired_relations() -%}
    {%- for schema, name in clm_retired_relations() %}
    drop table if exists {{ schema }}.{{ name }};
    {%- endfor %}
{%- endmacro %}
