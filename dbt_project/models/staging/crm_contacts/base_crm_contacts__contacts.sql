with

source as (

    select * from {{ source('raw', 'crm_contacts') }}

),

countries as (

    select * from {{ ref('stg_seeds__country_aliases') }}

),

cleaned as (

    select
        nullif(trim(source.contact_id), '') as contact_id,
        source.created_at,
        source.updated_at,
        {{ normalise_email('source.email') }} as email,
        nullif(trim(source.email), '') is not null
            and {{ normalise_email('source.email') }} is null as email_invalid,
        nullif(trim(source.phone), '') as phone_raw,
        nullif(trim(source.first_name), '') as first_name,
        nullif(trim(source.last_name), '') as last_name,
        nullif(trim(source.company), '') as company,
        countries.country_code as country,
        nullif(trim(source.country), '') is not null and countries.country_code is null as country_unknown,
        nullif(trim(source.city), '') as city,
        {{ clean_lower('source.crm_lifecycle_stage') }} as crm_lifecycle_stage,
        {{ clean_lower('source.lead_source') }} as lead_source,
        source.lead_score,
        source.marketing_consent,
        {{ normalise_email('source.referred_by_email') }} as referred_by_email,
        source._source_file,
        source._row_number,
        source._loaded_at
    from source
    left join countries on countries.alias_key = {{ country_key('source.country') }}

),

final as (

    select * from cleaned

)

select * from final
