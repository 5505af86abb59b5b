with

source as not materialized (

    select * from {{ source('raw', 'crm_deals') }}

),

cleaned as not materialized (

    select
        nullif(trim(deal_id), '') as deal_id,
        nullif(trim(contact_id), '') as contact_id,
        created_at,
        closed_at,
        {{ clean_lower('deal_stage') }} as deal_stage,
        amount,
        {{ currency_code('currency') }} as currency,
        {{ reporting_date('created_at') }} as created_date,
        _source_file,
        _row_number,
        _loaded_at
    from source

),

deduplicated as (

    {{ latest_per_key('cleaned', 'deal_id') }}

),

converted as (

    select
        deduplicated.*,
        {{ fx_rate('fx', 'deduplicated.currency') }} as fx_rate
    from deduplicated
    {{ fx_asof_join('fx', 'deduplicated.currency', 'deduplicated.created_date') }}

),

final as (

    select
        * exclude (fx_rate),
        fx_rate,
        amount is not null and fx_rate is null as fx_rate_missing,
        cast(amount * fx_rate as decimal(18, 4)) as amount_reporting
    from converted

)

select * from final
