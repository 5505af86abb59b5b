with

aliases as (

    select * from {{ ref('country_aliases') }}

),

keyed as (

    select distinct
        {{ country_key('alias') }} as alias_key,
        upper(trim(country_code)) as country_code
    from aliases

),

final as (

    select * from keyed

)

select * from final
