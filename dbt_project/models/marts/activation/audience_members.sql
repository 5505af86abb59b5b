with

members as (

    select * from {{ ref('int_audience_members_selected') }}

),

customers as (

    select * from {{ ref('int_customers_survivorship_applied') }}

),

final as (

    select
        cast(members.audience as varchar) as audience,
        cast(members.customer_id as varchar) as customer_id,
        cast(members.entered_on as date) as entered_on,
        cast(coalesce(customers.marketing_consent, false) as boolean) as marketing_consent,
        cast({{ is_holdout('members.customer_id', 'members.audience') }} as boolean) as is_holdout
    from members
    left join customers using (customer_id)

)

select * from final
