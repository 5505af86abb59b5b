{#- The purchases the cohort grids, the CLV models and RFM read: the orders of
    int_orders_numbered that are purchases (is_purchase, from the contract's purchase_statuses),
    with only the three columns they need. -#}
with

orders as (

    select * from {{ ref('int_orders_numbered') }}

),

final as (

    select
        customer_id,
        ordered_date,
        net_revenue
    from orders
    where is_purchase

)

select * from final
