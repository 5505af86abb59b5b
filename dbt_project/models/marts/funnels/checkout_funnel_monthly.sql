with

sessions as (

    select * from {{ ref('int_sessions_aggregated') }}

),

counted as (

    select
        {{ month_of(reporting_date('started_at')) }} as month,
        channel,
        count(*) as sessions,
        count(*) filter (where reached_add_to_cart) as sessions_add_to_cart,
        count(*) filter (where reached_checkout) as sessions_checkout,
        count(*) filter (where purchased) as sessions_purchased,
        count(*) filter (where cart_abandoned) as sessions_cart_abandoned
    from sessions
    group by all

),

final as (

    select
        month,
        channel,
        sessions,
        sessions_add_to_cart,
        sessions_checkout,
        sessions_purchased,
        sessions_cart_abandoned,
        cast(sessions_add_to_cart as double) / sessions as add_to_cart_rate,
        cast(sessions_checkout as double) / nullif(sessions_add_to_cart, 0) as checkout_rate,
        cast(sessions_purchased as double) / nullif(sessions_checkout, 0) as purchase_rate,
        cast(sessions_purchased as double) / sessions as session_conversion_rate,
        cast(sessions_cart_abandoned as double) / nullif(sessions_add_to_cart, 0) as cart_abandonment_rate
    from counted

)

select * from final
