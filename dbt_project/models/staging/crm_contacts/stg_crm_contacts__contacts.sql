with

contacts as not materialized (

    select * from {{ ref('base_crm_contacts__contacts') }}

),

phones as (

    select * from {{ ref('base_crm_contacts__phones') }}

),

deduplicated as (

    {{ latest_per_key('contacts', 'contact_id', 'updated_at') }}

),

final as (

    select
        deduplicated.* exclude (phone_raw),
        phones.phone_e164 as phone,
        deduplicated.phone_raw is not null and phones.phone_e164 is null as phone_unparseable
    from deduplicated
    left join phones
        on phones.phone_raw = deduplicated.phone_raw
        and phones.default_region is not distinct from deduplicated.country

)

select * from final
