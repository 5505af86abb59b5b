with

drivers as (

    select * from {{ ref('int_churn_drivers_measured') }}

),

final as (

    select
        cast(reason_type as varchar) as reason_type,
        cast(reason as varchar) as reason,
        cast(customers as bigint) as customers,
        cast(share_without_purchase as double) as share_without_purchase,
        cast(share_without_purchase_others as double) as share_without_purchase_others,
        cast(lift as double) as lift
    from drivers

)

select * from final
