with

scored as (

    select * from {{ ref('int_churn_risk_scored') }}

),

customers as (

    select * from {{ ref('int_customers_survivorship_applied') }}

),

spells as (

    select * from {{ ref('int_stage_spells_reconstructed') }}
    where valid_to is null

),

clv as (

    select * from {{ ref('int_clv_predictions_scored') }}

),

final as (

    select
        cast(scored.customer_id as varchar) as customer_id,
        cast(spells.lifecycle_stage as varchar) as lifecycle_stage,
        cast(customers.marketing_consent as boolean) as marketing_consent,
        cast(scored.purchase_days as bigint) as purchase_days,
        cast(scored.last_purchase_day as date) as last_purchase_date,
        cast(scored.days_since_last_purchase as bigint) as days_since_last_purchase,
        cast(scored.avg_days_between_purchases as double) as avg_days_between_purchases,
        cast(scored.expected_next_purchase_date as date) as expected_next_purchase_date,
        cast(scored.days_overdue as bigint) as days_overdue,
        cast(scored.churn_risk as double) as churn_risk,
        cast(scored.risk_band as varchar) as risk_band,
        cast(scored.high_risk_since as date) as high_risk_since,
        cast(clv.predicted_clv_365d as double) as predicted_clv_365d,
        cast(scored.churn_risk * clv.predicted_clv_365d as double) as value_at_risk,
        cast(scored.risk_reasons as varchar) as risk_reasons
    from scored
    left join customers using (customer_id)
    left join spells using (customer_id)
    left join clv using (customer_id)

)

select * from final
