{#- What people wrote about why they left, in reason categories (CONTRACT section 7): cancel
    reasons of cancelled and refunded orders, lost reasons of lost deals and survey comments,
    each mapped by the seed reason_categories (a lower-cased keyword found in the text; of
    several, the one with the lowest priority; none: other), with the record's key
    (source_key: order_id, deal_id or response_id; fct_survey_responses joins on it). The text
    itself is not kept. -#}
with

identities as (

    select * from {{ source('intermediate', 'int_identities_resolved') }}

),

orders as (

    select * from {{ ref('stg_orders__orders') }}

),

deals as (

    select * from {{ ref('stg_crm_deals__deals') }}

),

surveys as (

    select * from {{ ref('stg_surveys__responses') }}

),

keywords as (

    select * from {{ ref('reason_categories') }}

),

texts as (

    select identities.customer_id, 'cancel_reason' as origin, orders.order_id as source_key, orders.ordered_date as day,
        lower(orders.cancel_reason) as text
    from orders
    inner join identities on identities.source = 'orders' and identities.source_key = orders.order_id
    where orders.cancel_reason is not null and orders.status in {{ contract_list('cancellation_statuses') }}

    union all

    select identities.customer_id, 'lost_reason', deals.deal_id, greatest(deals.created_date,
            coalesce({{ reporting_date('deals.closed_at') }}, deals.created_date)), lower(deals.lost_reason)
    from deals
    inner join identities on identities.source = 'crm_deals' and identities.source_key = deals.deal_id
    where deals.lost_reason is not null and deals.deal_stage = 'lost'

    union all

    select identities.customer_id, 'survey_comment', surveys.response_id, {{ reporting_date('surveys.responded_at') }},
        lower(surveys.comment)
    from surveys
    inner join identities on identities.source = 'surveys' and identities.source_key = surveys.response_id
    where nullif(trim(surveys.comment), '') is not null

),

numbered as (

    select row_number() over () as text_id, * from texts

),

matched as (

    select numbered.text_id, keywords.category, keywords.priority
    from numbered
    inner join keywords on contains(numbered.text, keywords.keyword)

),

categorised as (

    select
        numbered.customer_id,
        numbered.origin,
        numbered.source_key,
        numbered.day,
        coalesce(arg_min(matched.category, matched.priority), 'other') as category
    from numbered
    left join matched using (text_id)
    group by numbered.text_id, numbered.customer_id, numbered.origin, numbered.source_key, numbered.day

),

final as (

    select * from categorised

)

select * from final
