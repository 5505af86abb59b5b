-- Pass-through of the canonical columns for now; standardisation comes in a later issue.
with

source as (

    select * from {{ source('raw', 'surveys') }}

),

selected as (

    select
        responded_at,
        survey_type,
        score,
        response_id,
        email,
        contact_id,
        comment,
        _source_file,
        _row_number,
        _loaded_at
    from source

),

final as (

    select * from selected

)

select * from final
