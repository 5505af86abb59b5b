with

validated as (

    select * from {{ ref('int_churn_risk_validated') }}

),

final as (

    select
        cast(scorer as varchar) as scorer,
        cast(cutoff_date as date) as cutoff_date,
        cast(customers as bigint) as customers,
        cast(base_rate as double) as base_rate,
        cast(auc as double) as auc,
        cast(top_decile_lift as double) as top_decile_lift,
        cast(brier_score as double) as brier_score
    from validated

)

select * from final
