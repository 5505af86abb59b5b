{#- Identifier links for identity resolution (CONTRACT section 4): one row per source record and
    identifier it carries. pipelines/identity.py turns them into persons. -#}
with

contacts as (

    select * from {{ ref('stg_crm_contacts__contacts') }}

),

deals as (

    select * from {{ ref('stg_crm_deals__deals') }}

),

surveys as (

    select * from {{ ref('stg_surveys__responses') }}

),

orders as (

    select * from {{ ref('stg_orders__orders') }}

),

events as (

    select * from {{ ref('stg_web_events__events') }}

),

contact_links as (

    select 'crm_contacts' as source, contact_id as source_key, 'contact_id' as id_type, contact_id as id_value from contacts
    union all
    select 'crm_contacts', contact_id, 'email', email from contacts where email is not null
    union all
    select 'crm_contacts', contact_id, 'phone', phone from contacts where phone is not null

),

deal_links as (

    select 'crm_deals' as source, deal_id as source_key, 'contact_id' as id_type, contact_id as id_value from deals

),

survey_links as (

    select 'surveys' as source, response_id as source_key, 'email' as id_type, email as id_value
    from surveys where email is not null
    union all
    select 'surveys', response_id, 'contact_id', contact_id from surveys where contact_id is not null
    union all
    -- a response with neither is still a record (its own person)
    select 'surveys', response_id, null, null from surveys where email is null and contact_id is null

),

order_links as (

    select 'orders' as source, order_id as source_key, 'email' as id_type, email as id_value
    from orders where email is not null
    union all
    select 'orders', order_id, 'phone', phone from orders where phone is not null
    union all
    -- the shop's customer account id is the web user_id
    select 'orders', order_id, 'user_id', customer_id from orders where customer_id is not null
    union all
    select 'orders', order_id, null, null from orders
    where email is null and phone is null and customer_id is null

),

web_links as (

    -- the record of a browser is its anonymous_id; it carries every email and user_id seen
    -- on its events (sign-up, login, lead form, purchase ...). Shared devices are decided
    -- in pipelines/identity.py.
    select distinct 'web_events' as source, anonymous_id as source_key, 'anonymous_id' as id_type, anonymous_id as id_value
    from events
    union all
    select distinct 'web_events', anonymous_id, 'email', email from events where email is not null
    union all
    select distinct 'web_events', anonymous_id, 'user_id', user_id from events where user_id is not null

),

unioned as (

    select * from contact_links
    union all select * from deal_links
    union all select * from survey_links
    union all select * from order_links
    union all select * from web_links

),

final as (

    select distinct * from unioned

)

select * from final
