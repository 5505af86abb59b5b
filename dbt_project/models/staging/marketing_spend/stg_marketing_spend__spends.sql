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

converted as (

    select
        deduplicated.*,
        {{ fx_rate('fx', 'deduplicated.currency') }} as fx_rate
    from deduplicated
    {{ fx_asof_join('fx', 'deduplicated.currency', 'deduplicated.spend_date') }}

),

final as (

    select
        * exclude (fx_rate),
        fx_rate,
        fx_rate is null as fx_rate_missing,
        cast(spend * fx_rate as decimal(18, 4)) as spend_reporting
    from converted

)

select * from final
