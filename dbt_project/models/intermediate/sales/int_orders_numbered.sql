{#- The orders every later model reads (fct_orders publishes them): placed on or before
    as_of_date (reporting timezone), each with its person, its net revenue (CONTRACT section 3),
    and for purchases their number and whether they reactivate the customer (CONTRACT section 5
    rule 3). -#}
with

orders as (

    select * from {{ ref('int_orders_converted') }}
    where ordered_date <= {{ var_date('as_of_date') }}

),

identities as (

    select * from {{ source('intermediate', 'int_identities_resolved') }}
    where source = 'orders'

),

valued as (

    select
        orders.order_id,
        identities.customer_id,
        orders.ordered_at,
        orders.ordered_date,
        orders.status,
        orders.is_purchase,
        orders.currency,
        orders.total_amount_reporting as gross_amount,
        orders.discount_amount_reporting as discount_amount,
        orders.refunded_amount_reporting as refunded_amount,
        -- CONTRACT: total - discount - refunded, in the reporting currency; 0 for cancelled and
        -- pending orders (the contract's no_revenue_statuses); NULL (not 0) when the FX rate is
        -- unknown
        cast(case
            when orders.status in {{ contract_list('no_revenue_statuses') }} then 0
            else orders.total_amount_reporting - orders.discount_amount_reporting - orders.refunded_amount_reporting
        end as decimal(18, 4)) as net_revenue,
        orders.fx_rate_missing,
        orders.channel,
        orders.coupon_code,
        orders.items_count,
        orders.country
    from orders
    left join identities on identities.source_key = orders.order_id

),

purchases as (

    -- days since the customer's previous purchase day (the latest purchase on an earlier
    -- day: two orders on one day are both the return purchase); CONTRACT section 5 rule 3
    select
        order_id,
        row_number() over (partition by customer_id order by ordered_at, order_id) as order_number,
        ordered_date - max(ordered_date) over (
            partition by customer_id order by ordered_date
            range between unbounded preceding and interval 1 day preceding
        ) as days_since_previous_purchase
    from valued
    where is_purchase

),

final as (

    select
        valued.*,
        purchases.order_number,
        purchases.days_since_previous_purchase,
        coalesce(purchases.days_since_previous_purchase > {{ var_int('churn_after_days') }}, false) as is_reactivation
    from valued
    left join purchases using (order_id)

)

select * from final
