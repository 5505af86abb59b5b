{#- Every delivered order (not yet limited to as_of_date) with its money in the reporting
    currency and whether it is a purchase. FX: the latest rate on or before the order's
    reporting-timezone day (macros/fx.sql); no rate known = flagged, reporting amounts NULL
    (never 0). Purchases: the statuses of the contract's list purchase_statuses (CONTRACT: only
    completed and partially_refunded orders count). -#}
with

orders as (

    select * from {{ ref('stg_orders__orders') }}

),

converted as (

    select
        orders.*,
        {{ fx_rate('fx', 'orders.currency') }} as fx_rate,
        orders.status in {{ contract_list('purchase_statuses') }} as is_purchase
    from orders
    {{ fx_asof_join('fx', 'orders.currency', 'orders.ordered_date') }}

),

final as (

    select
        * exclude (fx_rate),
        fx_rate,
        fx_rate is null as fx_rate_missing,
        cast(total_amount * fx_rate as decimal(18, 4)) as total_amount_reporting,
        cast(discount_amount * fx_rate as decimal(18, 4)) as discount_amount_reporting,
        cast(refunded_amount * fx_rate as decimal(18, 4)) as refunded_amount_reporting
    from converted

)

select * from final
