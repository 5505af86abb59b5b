with

identities as (

    select * from {{ ref('customer_identities') }}

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

order_facts as (

    select * from {{ ref('fct_orders') }}

),

sessions as (

    select * from {{ ref('fct_sessions') }}

),

browsers as (

    -- a browser's attributes: the latest email and country seen on its events
    select
        anonymous_id,
        min(event_at) as first_seen_at,
        max(event_at) as observed_at,
        arg_max(email, event_at) filter (where email is not null) as email,
        arg_max(country, event_at) filter (where country is not null) as country
    from events
    group by anonymous_id

),

records as (

    -- every record of a person with the attributes it carries; survivorship ranks:
    -- CRM (1) over orders (2) over web (3); within a source the most recent wins
    select
        identities.customer_id, 1 as source_rank, coalesce(contacts.updated_at, contacts.created_at) as observed_at,
        contacts.created_at as seen_at, contacts.email, contacts.phone, contacts.first_name, contacts.last_name,
        contacts.country, contacts.marketing_consent
    from contacts
    inner join identities on identities.source = 'crm_contacts' and identities.source_key = contacts.contact_id
    union all
    select
        identities.customer_id, 2, orders.ordered_at, orders.ordered_at, orders.email, orders.phone, null, null,
        orders.country, null
    from orders
    inner join identities on identities.source = 'orders' and identities.source_key = orders.order_id
    union all
    select
        identities.customer_id, 3, browsers.observed_at, browsers.first_seen_at, browsers.email, null, null, null,
        browsers.country, null
    from browsers
    inner join identities on identities.source = 'web_events' and identities.source_key = browsers.anonymous_id
    union all
    select identities.customer_id, 4, surveys.responded_at, surveys.responded_at, null, null, null, null, null, null
    from surveys
    inner join identities on identities.source = 'surveys' and identities.source_key = surveys.response_id
    union all
    select identities.customer_id, 4, deals.created_at, deals.created_at, null, null, null, null, null, null
    from deals
    inner join identities on identities.source = 'crm_deals' and identities.source_key = deals.deal_id

),

golden as (

    select
        customer_id,
        first(email order by source_rank, observed_at desc) filter (where email is not null) as email,
        first(first_name order by source_rank, observed_at desc) filter (where first_name is not null) as first_name,
        first(last_name order by source_rank, observed_at desc) filter (where last_name is not null) as last_name,
        first(phone order by source_rank, observed_at desc) filter (where phone is not null) as phone,
        first(country order by source_rank, observed_at desc) filter (where country is not null) as country,
        first(marketing_consent order by source_rank, observed_at desc)
            filter (where marketing_consent is not null) as marketing_consent,
        min(seen_at) as first_seen_at
    from records
    group by customer_id

),

touches as (

    -- first touch decides the acquisition channel: the first web session, the CRM lead
    -- source at contact creation, or the first order's channel (ties in that order)
    select customer_id, started_at as touched_at, 1 as touch_rank, channel
    from sessions where customer_id is not null
    union all
    select identities.customer_id, contacts.created_at, 2, contacts.lead_source
    from contacts
    inner join identities on identities.source = 'crm_contacts' and identities.source_key = contacts.contact_id
    union all
    select customer_id, ordered_at, 3, channel from order_facts

),

acquisition as (

    select
        customer_id,
        first(channel order by touched_at, touch_rank) as acquisition_channel
    from touches
    where channel is not null
    group by customer_id

),

purchases as (

    select
        customer_id,
        min(ordered_at) filter (where is_purchase) as first_order_at,
        max(ordered_at) filter (where is_purchase) as last_order_at,
        count(*) filter (where is_purchase) as orders_count,
        coalesce(sum(net_revenue), 0) as net_revenue
    from order_facts
    group by customer_id

),

final as (

    select
        golden.customer_id,
        golden.email,
        golden.first_name,
        golden.last_name,
        golden.phone,
        golden.country,
        golden.first_seen_at,
        acquisition.acquisition_channel,
        purchases.first_order_at,
        purchases.last_order_at,
        coalesce(purchases.orders_count, 0) as orders_count,
        cast(coalesce(purchases.net_revenue, 0) as decimal(18, 4)) as net_revenue,
        golden.email is not null or golden.phone is not null as has_contact_data,
        cast(null as varchar) as lifecycle_stage,
        cast(null as varchar) as lifecycle_phase,
        cast(null as varchar) as rfm_segment,
        cast(null as double) as p_alive,
        cast(null as double) as expected_orders_365d,
        cast(null as double) as predicted_clv_365d,
        golden.marketing_consent
    from golden
    left join acquisition using (customer_id)
    left join purchases using (customer_id)

)

select * from final
