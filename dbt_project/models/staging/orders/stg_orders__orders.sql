-- Pass-through of the canonical columns for now; standardisation comes in a later issue.
with

source as (

    select * from {{ source('raw', 'orders') }}

),

selected as (

    select
        order_id,
        ordered_at,
        total_amount,
        customer_id,
        email,
        phone,
        status,
        currency,
        discount_amount,
        refunded_amount,
        channel,
        coupon_code,
        items_count,
        country,
        _source_file,
        _row_number,
        _loaded_at
    from source

),

final as (

    select * from selected

)

select * from final
