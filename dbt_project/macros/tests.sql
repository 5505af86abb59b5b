{#- Generic test: the combination of columns is unique (dbt-utils cannot be installed here). -#}
{% test clm_unique_combination(model, columns) %}
    select {{ columns | join(', ') }}, count(*) as occurrences
    from {{ model }}
    group by {{ columns | join(', ') }}
    having count(*) > 1
{% endtest %}
