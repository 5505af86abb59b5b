with

source as not materialized (

    select * from {{ source('raw', 'web_events') }}

),

countries as not materialized (

    select * from {{ ref('stg_seeds__country_aliases') }}

),

cleaned as not materialized (

    select
        coalesce(
            nullif(trim(source.event_id), ''),
            'md5:' || md5(concat_ws('|', source.anonymous_id, source.event_at, source.event_name, source.page_url))
        ) as event_id,
        nullif(trim(source.event_id), '') is null as event_id_generated,
        source.event_at,
        nullif(trim(source.anonymous_id), '') as anonymous_id,
        nullif(trim(source.user_id), '') as user_id,
        {{ normalise_email('source.email') }} as email,
        nullif(trim(source.email), '') is not null
            and {{ normalise_email('source.email') }} is null as email_invalid,
        {{ clean_lower('source.event_name') }} as event_name,
        nullif(trim(source.page_url), '') as page_url,
        nullif(trim(source.referrer), '') as referrer,
        nullif(regexp_extract(lower(trim(source.referrer)), '^[a-z][a-z0-9+.-]*://(www\.)?([^/:?#]+)', 2), '') as referrer_host,
        {{ clean_lower('source.utm_source') }} as utm_source,
        {{ clean_lower('source.utm_medium') }} as utm_medium,
        {{ clean_lower('source.utm_campaign') }} as utm_campaign,
        {{ clean_lower('source.device') }} as device,
        countries.country_code as country,
        nullif(trim(source.session_id), '') as session_id,
        source._source_file,
        source._row_number,
        source._loaded_at
    from source
    left join countries on countries.alias_key = {{ country_key('source.country') }}

),

deduplicated as (

    {{ latest_per_key('cleaned', 'event_id') }}

),

final as (

    select * from deduplicated

)

select * from final
