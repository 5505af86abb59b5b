{#- The purchases the cohort grids, the CLV models, RFM and attribution read: the orders of
    int_orders_numbered that are purchases (is_purchase, from the contract's purchase_statuses),
    with only the columns they need. -#}
with

orders as (

    select * from {{ ref('int_orders_numbered') }}

),

final as (

    select
        customer_id,
        ordered_date,
        net_revenue,
        order_id,
        ordered_at,
        order_number
    from orders
    where is_purchase

)

select * from final
