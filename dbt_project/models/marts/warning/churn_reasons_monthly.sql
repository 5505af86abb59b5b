with

reasons as (

    select * from {{ ref('int_churn_reasons_when_at_risk') }}

),

final as (

    select
        cast(date_trunc('month', churned_on) as date) as month,
        cast(reason_type as varchar) as reason_type,
        cast(reason as varchar) as reason,
        cast(count(distinct customer_id) as bigint) as customers
    from reasons
    group by all

)

select * from final
