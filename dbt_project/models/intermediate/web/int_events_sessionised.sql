{#- Web events assigned to sessions (one row per event; int_sessions_aggregated makes one row
    per session): a browser's events split where the gap exceeds session_timeout_minutes, or
    by the export's own session id (GA4 ga_session_id) when it has one. -#}
with

events as (

    select * from {{ ref('stg_web_events__events') }}
    where {{ reporting_date('event_at') }} <= {{ var_date('as_of_date') }}

),

gaps as (

    select
        *,
        case
            when lag(event_at) over browser is null then true
            when session_id is not null or lag(session_id) over browser is not null
                then session_id is distinct from lag(session_id) over browser
            else event_at - lag(event_at) over browser > to_minutes({{ var_int('session_timeout_minutes') }})
        end as starts_session
    from events
    window browser as (partition by anonymous_id order by event_at, event_id)

),

numbered as (

    select
        *,
        sum(case when starts_session then 1 else 0 end) over (
            partition by anonymous_id order by event_at, event_id rows unbounded preceding
        ) as session_number
    from gaps

),

final as (

    select
        anonymous_id || ':' || session_number as session_id,
        anonymous_id,
        session_number,
        event_id,
        event_at,
        event_name,
        utm_source,
        utm_medium,
        utm_campaign,
        referrer_host,
        starts_session
    from numbered

)

select * from final
