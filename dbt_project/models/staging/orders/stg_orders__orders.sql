with

orders as not materialized (

    select * from {{ ref('base_orders__orders') }}

),

phones as (

    select * from {{ ref('stg_phones__numbers') }}

),

deduplicated as (

    {{ latest_per_key('orders', 'order_id') }}

),

with_phone as (

    select
        deduplicated.* exclude (phone_raw),
        phones.phone_e164 as phone,
        deduplicated.phone_raw is not null and phones.phone_e164 is null as phone_unparseable,
        {{ reporting_date('deduplicated.ordered_at') }} as ordered_date
    from deduplicated
    left join phones
        on phones.phone_raw = deduplicated.phone_raw
        and phones.default_region is not distinct from deduplicated.country

),

converted as (

    select
        with_phone.*,
        {{ fx_rate('fx', 'with_phone.currency') }} as fx_rate,
        with_phone.status in ('completed', 'partially_refunded') as is_purchase
    from with_phone
    {{ fx_asof_join('fx', 'with_phone.currency', 'with_phone.ordered_date') }}

),

final as (

    select
        * exclude (fx_rate),
        fx_rate,
        fx_rate is null as fx_rate_missing,
        cast(total_amount * fx_rate as decimal(18, 4)) as total_amount_reporting,
        cast(discount_amount * fx_rate as decimal(18, 4)) as discount_amount_reporting,
        cast(refunded_amount * fx_rate as decimal(18, 4)) as refunded_amount_reporting
    from converted

)

select * from final
