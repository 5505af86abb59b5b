{#- The web sessions every later model reads (fct_sessions publishes them): one row per
    session with its person, its first event's traffic source and the GA4-style channel of
    seed channel_groups, and its checkout steps (CONTRACT section 8): a later step implies the
    earlier ones (a purchase without a begin_checkout event still reached the checkout), and a
    session's cart is abandoned by the one rule of int_carts_evaluated. -#}
with

session_events as (

    select * from {{ ref('int_events_sessionised') }}

),

identities as (

    select * from {{ source('intermediate', 'int_identities_resolved') }}
    where source = 'web_events'

),

channel_rules as (

    select * from {{ ref('channel_groups') }}

),

carts as (

    select * from {{ ref('int_carts_evaluated') }}

),

abandoned_sessions as (

    select session_id, bool_or(is_abandoned) as cart_abandoned from carts group by session_id

),

sessions as (

    select
        session_id,
        anonymous_id,
        min(event_at) as started_at,
        max(event_at) as ended_at,
        count(*) as events_count,
        bool_or(event_name = 'purchase') as converted,
        bool_or(event_name in ('add_to_cart', 'begin_checkout', 'purchase')) as reached_add_to_cart,
        bool_or(event_name in ('begin_checkout', 'purchase')) as reached_checkout,
        -- traffic source of the session = that of its first event (GA4 session scope)
        arg_min(coalesce(utm_source, referrer_host, ''), event_at) as traffic_source,
        arg_min(coalesce(utm_medium, case when referrer_host is not null then 'referral' end, ''), event_at) as traffic_medium,
        arg_min(coalesce(utm_campaign, ''), event_at) as traffic_campaign
    from session_events
    group by session_id, anonymous_id

),

traffic as (

    select distinct traffic_source, traffic_medium, traffic_campaign from sessions

),

classified as (

    -- first matching rule wins; an empty pattern matches anything
    select
        traffic.traffic_source,
        traffic.traffic_medium,
        traffic.traffic_campaign,
        arg_min(channel_rules.channel, channel_rules.priority) as channel
    from traffic
    inner join channel_rules
        on (coalesce(channel_rules.source_pattern, '') = '' or regexp_matches(traffic.traffic_source, channel_rules.source_pattern))
        and (coalesce(channel_rules.medium_pattern, '') = '' or regexp_matches(traffic.traffic_medium, channel_rules.medium_pattern))
        and (coalesce(channel_rules.campaign_pattern, '') = '' or regexp_matches(traffic.traffic_campaign, channel_rules.campaign_pattern))
    group by all

),

final as (

    select
        sessions.session_id,
        identities.customer_id,
        sessions.anonymous_id,
        sessions.started_at,
        sessions.ended_at,
        sessions.events_count,
        coalesce(classified.channel, 'unassigned') as channel,
        sessions.converted,
        nullif(sessions.traffic_source, '') as traffic_source,
        nullif(sessions.traffic_medium, '') as traffic_medium,
        sessions.reached_add_to_cart,
        sessions.reached_checkout,
        sessions.converted as purchased,
        coalesce(abandoned_sessions.cart_abandoned, false) as cart_abandoned
    from sessions
    left join classified using (traffic_source, traffic_medium, traffic_campaign)
    left join abandoned_sessions using (session_id)
    left join identities on identities.source_key = sessions.anonymous_id

)

select * from final
