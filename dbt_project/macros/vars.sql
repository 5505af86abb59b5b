{#- Vars reach SQL only through these macros: text as a quoted literal, numbers checked to be
    integers. pipelines/config.py (BusinessRules) validates every var's type and range before
    a run; these macros keep a manual `dbt build --vars ...` from splicing text into SQL. -#}

{#- Any value as a SQL string literal (quotes doubled). -#}
{% macro sql_string(value) -%}
    '{{ (value | string) | replace("'", "''") }}'
{%- endmacro %}

{#- A text var as a SQL string literal. -#}
{% macro var_string(name) -%}
    {{ sql_string(var(name)) }}
{%- endmacro %}

{#- A date var (YYYY-MM-DD) as a DATE expression. -#}
{% macro var_date(name) -%}
    cast({{ sql_string(var(name)) }} as date)
{%- endmacro %}

{#- An integer var as a number; anything else stops the compilation. -#}
{% macro var_int(name) -%}
    {%- set value = var(name) -%}
    {%- if value is not number or value is boolean or value != (value | int) -%}
        {{ exceptions.raise_compiler_error("var " ~ name ~ " must be an integer, got " ~ (value | string)) }}
    {%- endif -%}
    {{ value | int }}
{%- endmacro %}

{#- The end of as_of_date in the reporting timezone (its midnight after), as a UTC timestamp:
    "now" for rules counted in hours (cart abandonment). -#}
{% macro as_of_end_utc() -%}
    timezone('UTC', timezone({{ var_string('reporting_timezone') }}, cast({{ var_date('as_of_date') }} + 1 as timestamp)))
{%- endmacro %}
