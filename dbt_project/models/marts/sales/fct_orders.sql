with

orders as (

    select * from {{ ref('int_orders_numbered') }}

),

final as (

    select
        order_id,
        customer_id,
        ordered_at,
        ordered_date,
        status,
        is_purchase,
        currency,
        gross_amount,
        discount_amount,
        refunded_amount,
        net_revenue,
        fx_rate_missing,
        channel,
        coupon_code,
        items_count,
        country,
        order_number,
        days_since_previous_purchase,
        is_reactivation
    from orders

)

select * from final
