with

orders as not materialized (

    select * from {{ ref('base_orders__orders') }}

),

phones as (

    select * from {{ ref('base_orders__phones') }}

),

deduplicated as (

    {{ latest_per_key('orders', 'order_id') }}

),

final as (

    select
        deduplicated.* exclude (phone_raw),
        phones.phone_e164 as phone,
        deduplicated.phone_raw is not null and phones.phone_e164 is null as phone_unparseable,
        {{ reporting_date('deduplicated.ordered_at') }} as ordered_date
    from deduplicated
    left join phones
        on phones.phone_raw = deduplicated.phone_raw
        and phones.default_region is not distinct from deduplicated.country

)

select * from final
