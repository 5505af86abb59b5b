{#- Survivorship applied: the golden record of every resolved person, each attribute chosen
    from all of the person's records (CONTRACT section 4): CRM over orders over web, the most
    recent non-null value within a source; when the person was first seen and when contact
    data (an email or phone) was first known. -#}
with

identities as (

    select * from {{ source('intermediate', 'int_identities_resolved') }}

),

contacts as (

    select * from {{ ref('stg_crm_contacts__contacts') }}

),

orders as (

    select * from {{ ref('stg_orders__orders') }}

),

events as (

    select * from {{ ref('stg_web_events__events') }}

),

surveys as (

    select * from {{ ref('stg_surveys__responses') }}

),

deals as (

    select * from {{ ref('stg_crm_deals__deals') }}

),

browsers as (

    -- a browser's attributes: the latest email and country seen on its events
    select
        anonymous_id,
        min(event_at) as first_seen_at,
        max(event_at) as observed_at,
        min(event_at) filter (where email is not null) as first_email_at,
        arg_max(email, event_at) filter (where email is not null) as email,
        arg_max(country, event_at) filter (where country is not null) as country
    from events
    group by anonymous_id

),

records as (

    -- every record of a person with the attributes it carries; survivorship ranks:
    -- CRM (1) over orders (2) over web (3); within a source the most recent wins.
    -- contact_at: when the record made the person's email or phone known.
    select
        identities.customer_id, 1 as source_rank, coalesce(contacts.updated_at, contacts.created_at) as observed_at,
        contacts.created_at as seen_at,
        case when contacts.email is not null or contacts.phone is not null then contacts.created_at end as contact_at,
        contacts.email, contacts.phone, contacts.first_name, contacts.last_name,
        contacts.country, contacts.marketing_consent, contacts.referred_by_email
    from contacts
    inner join identities on identities.source = 'crm_contacts' and identities.source_key = contacts.contact_id
    union all
    select
        identities.customer_id, 2, orders.ordered_at, orders.ordered_at,
        case when orders.email is not null or orders.phone is not null then orders.ordered_at end,
        orders.email, orders.phone, null, null, orders.country, null, null
    from orders
    inner join identities on identities.source = 'orders' and identities.source_key = orders.order_id
    union all
    select
        identities.customer_id, 3, browsers.observed_at, browsers.first_seen_at, browsers.first_email_at,
        browsers.email, null, null, null, browsers.country, null, null
    from browsers
    inner join identities on identities.source = 'web_events' and identities.source_key = browsers.anonymous_id
    union all
    select
        identities.customer_id, 4, surveys.responded_at, surveys.responded_at,
        case when surveys.email is not null then surveys.responded_at end,
        surveys.email, null, null, null, null, null, null
    from surveys
    inner join identities on identities.source = 'surveys' and identities.source_key = surveys.response_id
    union all
    select identities.customer_id, 4, deals.created_at, deals.created_at, null, null, null, null, null, null, null, null
    from deals
    inner join identities on identities.source = 'crm_deals' and identities.source_key = deals.deal_id

),

final as (

    select
        customer_id,
        first(email order by source_rank, observed_at desc) filter (where email is not null) as email,
        first(first_name order by source_rank, observed_at desc) filter (where first_name is not null) as first_name,
        first(last_name order by source_rank, observed_at desc) filter (where last_name is not null) as last_name,
        first(phone order by source_rank, observed_at desc) filter (where phone is not null) as phone,
        first(country order by source_rank, observed_at desc) filter (where country is not null) as country,
        first(marketing_consent order by source_rank, observed_at desc)
            filter (where marketing_consent is not null) as marketing_consent,
        first(referred_by_email order by observed_at desc) filter (where referred_by_email is not null)
            as referred_by_email,
        min(seen_at) as first_seen_at,
        min(contact_at) as contact_data_at
    from records
    group by customer_id

)

select * from final
