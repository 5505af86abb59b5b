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
        nullif(trim(lost_reason), '') as lost_reason,
        {{ reporting_date('created_at') }} as created_date,
        _source_file,
        _row_number,
        _loaded_at
    from source

),

deduplicated as (

    {{ latest_per_key('cleaned', 'deal_id') }}

),

final as (

    select * from deduplicated

)

select * from final
