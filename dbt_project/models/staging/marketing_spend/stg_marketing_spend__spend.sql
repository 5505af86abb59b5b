-- Pass-through of the canonical columns for now; standardisation comes in a later issue.
with

source as (

    select * from {{ source('raw', 'marketing_spend') }}

),

selected as (

    select
        spend_date,
        channel,
        spend,
        campaign,
        currency,
        _source_file,
        _row_number,
        _loaded_at
    from source

),

final as (

    select * from selected

)

select * from final
