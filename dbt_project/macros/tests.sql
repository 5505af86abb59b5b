{#- Generic test: the combination of columns is unique (dbt-utils cannot be installed here). -#}
{% test clm_unique_combination(model, columns) %}
    select {{ columns | join(', ') }}, count(*) as occurrences
    from {{ model }}
    group by {{ columns | join(', ') }}
    having count(*) > 1
{% endtest %}

{#- Generic test (use with severity warn) on clv_model_params: one row per CLV model that was
    not fitted or did not converge, so that a run says so instead of silently publishing
    NULL predictions. -#}
{% test clm_clv_models_fitted(model) %}
    select expected.model, 'not fitted or not converged' as problem
    from (values ('bg_nbd'), ('gamma_gamma')) as expected(model)
    left join (
        select model from {{ model }}
        where kind = 'diagnostic' and parameter = 'converged' and value = 1
    ) as converged using (model)
    where converged.model is null
{% endtest %}

{#- Generic test: every non-NULL value of the column is in the contract's list `list_name`
    (seed contract_values, written from pipelines/contract.py), so no yml repeats a list. Fails
    with one row per unexpected value (and its count), or one row naming a list the seed does
    not have. -#}
{% test clm_in_contract(model, column_name, list_name) %}
    select cast({{ column_name }} as varchar) as unexpected_value, count(*) as occurrences
    from {{ model }}
    where {{ column_name }} is not null
        and cast({{ column_name }} as varchar) not in {{ contract_list_in_test(list_name) }}
    group by 1
    union all
    select {{ sql_string('no contract list ' ~ list_name) }}, 0
    where not exists {{ contract_list_in_test(list_name) }}
{% endtest %}
