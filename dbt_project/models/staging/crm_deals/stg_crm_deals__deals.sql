-- Pass-through of the canonical columns for now; standardisation comes in a later issue.
with

source as (

    select * from {{ source('raw', 'crm_deals') }}

),

selected as (

    select
        deal_id,
        contact_id,
        created_at,
        deal_stage,
        amount,
        currency,
        closed_at,
        _source_file,
        _row_number,
        _loaded_at
    from source

),

final as (

    select * from selected

)

select * from final
