with

resolved as (

    select * from {{ source('intermediate', 'int_identities_resolved') }}

),

final as (

    select
        cast(source as varchar) as source,
        cast(source_key as varchar) as source_key,
        cast(customer_id as varchar) as customer_id
    from resolved

)

select * from final
