with

sessions as (

    select * from {{ ref('int_sessions_aggregated') }}

),

final as (

    select
        session_id,
        customer_id,
        anonymous_id,
        started_at,
        ended_at,
        events_count,
        channel,
        converted,
        traffic_source,
        traffic_medium,
        reached_add_to_cart,
        reached_checkout,
        purchased,
        cart_abandoned
    from sessions

)

select * from final
