with

fitted as (

    select * from {{ ref('int_clv_models_fitted') }}

),

final as (

    select
        model,
        kind,
        parameter,
        value,
        time_unit,
        fitted_at,
        {{ var_date('as_of_date') }} as as_of_date,
        customers_fitted
    from fitted

)

select * from final
