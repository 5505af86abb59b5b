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
