{#- The web sessions every later model reads (fct_sessions publishes them): one row per
    session with its person, its first event's traffic source and the GA4-style channel of
    seed channel_groups. -#}
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

sessions as (

    select
        session_id,
        anonymous_id,
        min(event_at) as started_at,
        max(event_at) as ended_at,
        count(*) as events_count,
        bool_or(event_name = 'purchase') as converted,
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
        nullif(sessions.traffic_medium, '') as traffic_medium
    from sessions
    left join classified using (traffic_source, traffic_medium, traffic_campaign)
    left join identities on identities.source_key = sessions.anonymous_id

)

select * from final
