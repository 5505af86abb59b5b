{#- The channel that acquired each person: the channel of the person's first touch, first-touch
    attribution over the first web session, the CRM lead source at contact creation and the
    first order's channel, whichever came first (ties in that order). Persons without any
    touch that names a channel have no row. -#}
with

identities as (

    select * from {{ source('intermediate', 'int_identities_resolved') }}
    where source = 'crm_contacts'

),

contacts as (

    select * from {{ ref('stg_crm_contacts__contacts') }}

),

orders as (

    select * from {{ ref('int_orders_numbered') }}

),

sessions as (

    select * from {{ ref('int_sessions_aggregated') }}

),

touches as (

    select customer_id, started_at as touched_at, 1 as touch_rank, channel
    from sessions where customer_id is not null
    union all
    select identities.customer_id, contacts.created_at, 2, contacts.lead_source
    from contacts
    inner join identities on identities.source_key = contacts.contact_id
    union all
    select customer_id, ordered_at, 3, channel from orders

),

final as (

    select
        customer_id,
        first(channel order by touched_at, touch_rank) as acquisition_channel
    from touches
    where channel is not null
    group by customer_id

)

select * from final
