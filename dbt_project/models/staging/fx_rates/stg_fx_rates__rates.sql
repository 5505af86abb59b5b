with

source as (

    select * from {{ source('raw', 'fx_rates') }}

),

cleaned as (

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

    select * from cleaned
    {{ latest_per_key('rate_date, currency') }}

),

final as (

    select * from deduplicated

)

select * from final
