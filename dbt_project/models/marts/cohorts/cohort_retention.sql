with

cells as (

    select * from {{ ref('int_cohorts_aggregated') }}

),

final as (

    select
        cohort_month,
        cast(months_since_first_order as integer) as months_since_first_order,
        cohort_size,
        active_customers,
        retention_rate,
        orders,
        cast(net_revenue as decimal(18, 4)) as net_revenue,
        cumulative_net_revenue_per_customer
    from cells

)

select * from final
