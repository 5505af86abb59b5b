-- Pass-through of the canonical columns for now; standardisation comes in a later issue.
with

source as (

    select * from {{ source('raw', 'crm_contacts') }}

),

selected as (

    select
        contact_id,
        created_at,
        email,
        phone,
        first_name,
        last_name,
        company,
        country,
        city,
        crm_lifecycle_stage,
        lead_source,
        lead_score,
        marketing_consent,
        updated_at,
        referred_by_email,
        _source_file,
        _row_number,
        _loaded_at
    from source

),

final as (

    select * from selected

)

select * from final
