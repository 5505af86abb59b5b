with

source as (

    select * from {{ source('raw', 'orders') }}

),

countries as (

    select * from {{ ref('stg_seeds__country_aliases') }}

),

cleaned as (

    select
        nullif(trim(source.order_id), '') as order_id,
        source.ordered_at,
        nullif(trim(source.customer_id), '') as customer_id,
        {{ normalise_email('source.email') }} as email,
        nullif(trim(source.email), '') is not null
            and {{ normalise_email('source.email') }} is null as email_invalid,
        nullif(trim(source.phone), '') as phone_raw,
        coalesce({{ clean_lower('source.status') }}, 'completed') as status,
        {{ currency_code('source.currency') }} as currency,
        source.total_amount,
        coalesce(source.discount_amount, 0) as discount_amount,
        coalesce(source.refunded_amount, 0) as refunded_amount,
        {{ clean_lower('source.channel') }} as channel,
        nullif(trim(source.coupon_code), '') as coupon_code,
        nullif(trim(source.cancel_reason), '') as cancel_reason,
        source.items_count,
        countries.country_code as country,
        nullif(trim(source.country), '') is not null and countries.country_code is null as country_unknown,
        source._source_file,
        source._row_number,
        source._loaded_at
    from source
    left join countries on countries.alias_key = {{ country_key('source.country') }}

),

final as (

    select * from cleaned

)

select * from final
