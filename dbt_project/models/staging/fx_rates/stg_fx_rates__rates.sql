with

source as not materialized (

    select * from {{ source('raw', 'fx_rates') }}

),

cleaned as not materialized (

    select
        rate_date,
        {{ currency_code('currency') }} as currency,
        rate_to_reporting,
        _source_file,
        _row_number,
        _loaded_at
    from source

),

deduplicated as (

    {{ latest_per_key('cleaned', 'rate_date, currency') }}

),

final as (

    select * from deduplicated

)

select * from final
