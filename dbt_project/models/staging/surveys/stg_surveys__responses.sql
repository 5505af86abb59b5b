with

source as not materialized (

    select * from {{ source('raw', 'surveys') }}

),

cleaned as not materialized (

    select
        coalesce(
            nullif(trim(response_id), ''),
            'md5:' || md5(concat_ws('|', responded_at, survey_type, score, email, contact_id))
        ) as response_id,
        nullif(trim(response_id), '') is null as response_id_generated,
        responded_at,
        {{ clean_lower('survey_type') }} as survey_type,
        score,
        {{ normalise_email('email') }} as email,
        nullif(trim(email), '') is not null and {{ normalise_email('email') }} is null as email_invalid,
        nullif(trim(contact_id), '') as contact_id,
        comment,
        _source_file,
        _row_number,
        _loaded_at
    from source

),

deduplicated as (

    {{ latest_per_key('cleaned', 'response_id') }}

),

final as (

    select * from deduplicated

)

select * from final
