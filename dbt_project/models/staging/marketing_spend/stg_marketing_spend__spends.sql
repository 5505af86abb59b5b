with

source as not materialized (

    select * from {{ source('raw', 'marketing_spend') }}

),

cleaned as not materialized (

    select
        spend_date,
        {{ clean_lower('channel') }} as channel,
        coalesce(nullif(trim(campaign), ''), '(none)') as campaign,
        {{ currency_code('currency') }} as currency,
        spend,
        _source_file,
        _row_number,
        _loaded_at
    from source

),

deduplicated as (

    {{ latest_per_key('cleaned', 'spend_date, channel, campaign') }}

),

final as (

    select * from deduplicated

)

select * from final
