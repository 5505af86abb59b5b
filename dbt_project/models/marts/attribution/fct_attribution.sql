{#- CONTRACT section 8: one row per purchase and touch with the credit of every attribution
    model (the rules are pipelines/journeys/attribution.py, run by
    int_purchase_touches_credited). -#}
with

touches as (

    select * from {{ ref('int_purchase_touches_credited') }}

),

final as (

    select
        order_id,
        customer_id,
        is_first_purchase,
        purchased_at,
        touch_number,
        touches,
        session_id,
        channel,
        touched_at,
        first_touch,
        last_touch,
        last_non_direct,
        linear,
        position_based,
        time_decay
    from touches

)

select * from final
