-- Pass-through of the canonical columns for now; standardisation comes in a later issue.
with

source as (

    select * from {{ source('raw', 'fx_rates') }}

),

selected as (

    select
        rate_date,
        currency,
        rate_to_reporting,
        _source_file,
        _row_number,
        _loaded_at
    from source

),

final as (

    select * from selected

)

select * from final
