{#- The cart abandonment rule, defined once (CONTRACT sections 7 and 8): every cart event
    (add_to_cart or begin_checkout) by as_of_date with its session and whether the cart was
    abandoned: neither a purchase (an order or a web purchase event) nor another cart event of
    the person followed within cart_abandon_hours, and those hours passed strictly before the
    end of as_of_date (reporting timezone). The trigger cart_abandoned, the audience
    cart_abandoners and fct_sessions.cart_abandoned read it. -#}
with

session_events as (

    select * from {{ ref('int_events_sessionised') }}
    where event_name in ('add_to_cart', 'begin_checkout', 'purchase')

),

identities as (

    select * from {{ source('intermediate', 'int_identities_resolved') }}
    where source = 'web_events'

),

orders as (

    select * from {{ ref('int_orders_numbered') }}
    where is_purchase

),

web as (

    select identities.customer_id, session_events.session_id, session_events.event_id,
        session_events.event_name, session_events.event_at
    from session_events
    inner join identities on identities.source_key = session_events.anonymous_id

),

purchase_times as (

    select customer_id, ordered_at as at from orders
    union all
    select customer_id, event_at from web where event_name = 'purchase'

),

carts as (

    select
        customer_id,
        session_id,
        event_id,
        event_name,
        event_at,
        lead(event_at) over (partition by customer_id order by event_at, event_id) as next_cart_at
    from web
    where event_name in ('add_to_cart', 'begin_checkout')

),

carts_then as (

    select
        carts.*,
        purchase_times.at as next_purchase_at,
        carts.event_at + to_hours({{ var_int('cart_abandon_hours') }}) as abandon_after
    from carts
    asof left join purchase_times
        on purchase_times.customer_id = carts.customer_id and purchase_times.at > carts.event_at

),

evaluated as (

    select
        customer_id,
        session_id,
        event_id,
        event_name,
        event_at,
        abandon_after,
        abandon_after < {{ as_of_end_utc() }}
            and coalesce(next_purchase_at > abandon_after, true)
            and coalesce(next_cart_at > abandon_after, true)
            as is_abandoned
    from carts_then

),

final as (

    select
        customer_id,
        session_id,
        event_id,
        event_name,
        event_at,
        is_abandoned,
        case when is_abandoned then {{ reporting_date('abandon_after') }} end as abandoned_on
    from evaluated

)

select * from final
