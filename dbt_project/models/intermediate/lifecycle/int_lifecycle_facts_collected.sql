{#- Dated facts about persons that the lifecycle stage rules (pipelines/lifecycle.py) read:
    one row per fact. This model only maps the sources to facts; the rules themselves
    (thresholds, windows, precedence) live in pipelines/lifecycle.py. Days are
    reporting-timezone days; facts after as_of_date are kept here and ignored by the rules. -#}
with

customers as (

    select * from {{ ref('int_customers_survivorship_applied') }}

),

identities as (

    select * from {{ source('intermediate', 'int_identities_resolved') }}

),

links as (

    select * from {{ ref('int_identity_links') }}

),

orders as (

    select * from {{ ref('int_orders_numbered') }}

),

contacts as (

    select * from {{ ref('stg_crm_contacts__contacts') }}

),

deals as (

    select * from {{ ref('stg_crm_deals__deals') }}

),

surveys as (

    select * from {{ ref('stg_surveys__responses') }}

),

events as (

    select * from {{ ref('stg_web_events__events') }}
    where event_name in ('trial_start', 'add_to_cart', 'begin_checkout')

),

seen as (

    select customer_id, 'seen' as fact, {{ reporting_date('first_seen_at') }} as fact_date,
        first_seen_at as fact_at, cast(null as double) as value
    from customers

),

contact as (

    select customer_id, 'contact' as fact, {{ reporting_date('contact_data_at') }} as fact_date,
        contact_data_at as fact_at, cast(null as double) as value
    from customers
    where contact_data_at is not null

),

purchases as (

    -- value: 1 when the purchase is a reactivation (int_orders_numbered.is_reactivation)
    select customer_id, 'purchase' as fact, ordered_date as fact_date, ordered_at as fact_at,
        cast(is_reactivation as double) as value
    from orders
    where is_purchase

),

nps as (

    select identities.customer_id, 'nps' as fact, {{ reporting_date('surveys.responded_at') }} as fact_date,
        surveys.responded_at as fact_at, cast(surveys.score as double) as value
    from surveys
    inner join identities on identities.source = 'surveys' and identities.source_key = surveys.response_id
    where surveys.survey_type = 'nps' and surveys.score is not null

),

first_purchases as (

    select customer_id, min(ordered_date) as first_purchase_date
    from orders
    where is_purchase
    group by customer_id

),

referrers as (

    -- a person whose email a CRM contact names as referred_by_email, and the day that
    -- contact's person first purchased (a referral counts once the referred person bought)
    select
        referrer.customer_id,
        min(first_purchases.first_purchase_date) as fact_date
    from contacts
    inner join identities as referee
        on referee.source = 'crm_contacts' and referee.source_key = contacts.contact_id
    inner join first_purchases on first_purchases.customer_id = referee.customer_id
    inner join links on links.id_type = 'email' and links.id_value = contacts.referred_by_email
    inner join identities as referrer on referrer.source = links.source and referrer.source_key = links.source_key
    where contacts.referred_by_email is not null
        and referrer.customer_id <> referee.customer_id
    group by referrer.customer_id

),

referrals as (

    select customer_id, 'referral' as fact, fact_date, cast(null as timestamp) as fact_at, cast(null as double) as value
    from referrers

),

web as (

    select distinct
        identities.customer_id,
        case when events.event_name = 'trial_start' then 'trial' else 'intent' end as fact,
        {{ reporting_date('events.event_at') }} as fact_date
    from events
    inner join identities on identities.source = 'web_events' and identities.source_key = events.anonymous_id

),

web_facts as (

    select customer_id, fact, fact_date, cast(null as timestamp) as fact_at, cast(null as double) as value
    from web

),

deal_days as (

    select
        identities.customer_id,
        deals.deal_stage,
        {{ reporting_date('deals.created_at') }} as opened_date,
        -- a won or lost deal without closed_at is taken as closed on the day it was created
        -- (never open as far as the history knows); a close before the open is clamped to it
        greatest(
            {{ reporting_date('deals.created_at') }},
            coalesce({{ reporting_date('deals.closed_at') }}, {{ reporting_date('deals.created_at') }})
        ) as closed_date
    from deals
    inner join identities on identities.source = 'crm_deals' and identities.source_key = deals.deal_id

),

deal_facts as (

    select customer_id, 'deal_open' as fact, opened_date as fact_date, cast(null as timestamp) as fact_at,
        cast(null as double) as value
    from deal_days
    union all
    select customer_id, 'deal_close', closed_date, null, null
    from deal_days
    where deal_stage in ('won', 'lost')

),

lead_scores as (

    -- the CRM's current lead score, taken to hold from the contact's creation
    select identities.customer_id, 'lead_score' as fact, {{ reporting_date('contacts.created_at') }} as fact_date,
        contacts.created_at as fact_at, cast(contacts.lead_score as double) as value
    from contacts
    inner join identities on identities.source = 'crm_contacts' and identities.source_key = contacts.contact_id
    where contacts.lead_score is not null

),

final as (

    select * from seen
    union all select * from contact
    union all select * from purchases
    union all select * from nps
    union all select * from referrals
    union all select * from web_facts
    union all select * from deal_facts
    union all select * from lead_scores

)

select * from final
