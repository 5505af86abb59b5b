-- Pass-through of the canonical columns for now; standardisation comes in a later issue.
with

source as (

    select * from {{ source('raw', 'web_events') }}

),

selected as (

    select
        event_at,
        anonymous_id,
        event_name,
        event_id,
        user_id,
        email,
        page_url,
        referrer,
        utm_source,
        utm_medium,
        utm_campaign,
        device,
        country,
        session_id,
        _source_file,
        _row_number,
        _loaded_at
    from source

),

final as (

    select * from selected

)

select * from final
