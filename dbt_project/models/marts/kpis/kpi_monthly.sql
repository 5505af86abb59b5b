{#- CONTRACT section 6: one row per month m (first day `month`) with month-end e (`month_end`;
    the month of as_of_date ends on as_of_date), from the month the first person was seen
    to the month of as_of_date. Every column's formula is in _marts__models.yml. -#}
{%- set as_of = var_date('as_of_date') -%}
{%- set window = var_int('conversion_window_days') -%}
with

customers as (

    select * from {{ ref('int_customers_survivorship_applied') }}

),

orders as (

    select * from {{ ref('int_orders_numbered') }}
    where is_purchase

),

stages as (

    select * from {{ ref('int_month_end_stages_evaluated') }}

),

spells as (

    select * from {{ ref('int_stage_spells_reconstructed') }}

),

surveys as (

    select * from {{ ref('stg_surveys__responses') }}
    where {{ reporting_date('responded_at') }} <= {{ as_of }}

),

identities as (

    select * from {{ source('intermediate', 'int_identities_resolved') }}
    where source = 'surveys'

),

persons as (

    -- per person: days first seen, contact data known, first and second purchase
    select
        customers.customer_id,
        {{ reporting_date('customers.first_seen_at') }} as first_seen_date,
        {{ reporting_date('customers.contact_data_at') }} as contact_date,
        customers.first_seen_at,
        customers.contact_data_at,
        customers.referred_by_email is not null as is_referred,
        buyers.first_order_at,
        buyers.first_order_date,
        buyers.second_order_date
    from customers
    left join (
        select
            customer_id,
            min(ordered_at) as first_order_at,
            min(ordered_date) as first_order_date,
            min(ordered_date) filter (where order_number = 2) as second_order_date
        from orders
        group by customer_id
    ) as buyers using (customer_id)
    where customers.first_seen_at is not null

),

months as (

    select
        cast(m as date) as month,
        least(cast(m + interval 1 month - interval 1 day as date), {{ as_of }}) as month_end
    from (
        select unnest(generate_series(
            cast(date_trunc('month', min(first_seen_date)) as timestamp),
            cast(date_trunc('month', {{ as_of }}) as timestamp),
            interval 1 month
        )) as m
        from persons
        where first_seen_date <= {{ as_of }}
    )

),

purchase_activity as (

    select
        {{ month_of('ordered_date') }} as month,
        count(*) as orders,
        count(distinct customer_id) as active_customers,
        count(distinct customer_id) filter (where is_reactivation) as reactivated_customers,
        sum(net_revenue) as net_revenue
    from orders
    group by 1

),

new_customers as (

    select
        {{ month_of('first_order_date') }} as month,
        count(*) as new_customers,
        count(*) filter (where is_referred) as referred_new_customers
    from persons
    where first_order_date is not null
    group by 1

),

month_end_stages as (

    select
        month,
        count(*) filter (where lifecycle_stage in (
            'at_risk', 'reactivated', 'advocate', 'loyal', 'repeat_buyer', 'first_time_buyer')) as customer_base,
        count(*) filter (where lifecycle_stage = 'churned') as churned_at_month_end
    from stages
    group by month

),

churn_events as (

    select {{ month_of('valid_from') }} as month, count(distinct customer_id) as churned_customers
    from spells
    where lifecycle_stage = 'churned'
    group by 1

),

first_and_second_purchases as (

    select {{ month_of('first_order_date') }} as month, 1 as buyers, 0 as repeat_buyers
    from persons where first_order_date is not null
    union all
    select {{ month_of('second_order_date') }}, 0, 1
    from persons where second_order_date is not null

),

buyers_to_date as (

    -- persons with >= 1 and >= 2 purchases by the month-end: running sums over the months
    select
        months.month,
        sum(coalesce(counted.buyers, 0)) over (order by months.month) as buyers,
        sum(coalesce(counted.repeat_buyers, 0)) over (order by months.month) as repeat_buyers
    from months
    left join (
        select month, sum(buyers) as buyers, sum(repeat_buyers) as repeat_buyers
        from first_and_second_purchases
        group by month
    ) as counted using (month)

),

leads as (

    -- a lead is created when contact data is first known, unless the person had already
    -- bought (or bought at that very moment: a guest checkout is no lead)
    select
        {{ month_of('contact_date') }} as month,
        count(*) as leads,
        count(*) filter (where first_order_date - contact_date <= {{ window }}) as converted_leads
    from persons
    where contact_date <= {{ as_of }}
        and (first_order_at is null or contact_data_at < first_order_at)
    group by 1

),

visitors as (

    -- anonymous visitors: persons first seen without contact data
    select
        {{ month_of('first_seen_date') }} as month,
        count(*) as visitors,
        count(*) filter (where contact_date - first_seen_date <= {{ window }}) as converted_visitors
    from persons
    where first_seen_date <= {{ as_of }}
        and (contact_data_at is null or contact_data_at > first_seen_at)
    group by 1

),

survey_responses as (

    select
        identities.customer_id,
        surveys.survey_type,
        surveys.score,
        surveys.responded_at,
        {{ month_of(reporting_date('surveys.responded_at')) }} as month
    from surveys
    inner join identities on identities.source_key = surveys.response_id
    where surveys.score is not null

),

nps_latest as (

    -- the latest NPS response per person in the month
    select month, score
    from survey_responses
    where survey_type = 'nps'
    qualify row_number() over (partition by month, customer_id order by responded_at desc, score) = 1

),

nps as (

    select
        month,
        100.0 * (count(*) filter (where score >= 9) - count(*) filter (where score <= 6)) / count(*) as nps
    from nps_latest
    group by month

),

ces as (

    select month, avg(score) as customer_effort_score
    from survey_responses
    where survey_type = 'ces'
    group by month

),

joined as (

    select
        months.month,
        months.month_end,
        coalesce(new_customers.new_customers, 0) as new_customers,
        coalesce(purchase_activity.active_customers, 0) as active_customers,
        coalesce(month_end_stages.customer_base, 0) as customer_base,
        coalesce(churn_events.churned_customers, 0) as churned_customers,
        lag(coalesce(month_end_stages.customer_base, 0)) over (order by months.month) as previous_customer_base,
        coalesce(purchase_activity.reactivated_customers, 0) as reactivated_customers,
        lag(coalesce(month_end_stages.churned_at_month_end, 0)) over (order by months.month) as previous_churned,
        coalesce(buyers_to_date.buyers, 0) as buyers_to_date,
        coalesce(buyers_to_date.repeat_buyers, 0) as repeat_buyers_to_date,
        coalesce(purchase_activity.orders, 0) as orders,
        coalesce(purchase_activity.net_revenue, 0) as net_revenue,
        leads.leads,
        leads.converted_leads,
        visitors.visitors,
        visitors.converted_visitors,
        months.month_end + {{ window }} <= {{ as_of }} as conversion_window_passed,
        nps.nps,
        ces.customer_effort_score,
        coalesce(new_customers.referred_new_customers, 0) as referred_new_customers
    from months
    left join new_customers using (month)
    left join purchase_activity using (month)
    left join month_end_stages using (month)
    left join churn_events using (month)
    left join buyers_to_date using (month)
    left join leads using (month)
    left join visitors using (month)
    left join nps using (month)
    left join ces using (month)

),

final as (

    select
        month,
        month_end,
        new_customers,
        active_customers,
        customer_base,
        churned_customers,
        churned_customers / nullif(previous_customer_base, 0) as churn_rate,
        reactivated_customers,
        reactivated_customers / nullif(previous_churned, 0) as reactivation_rate,
        repeat_buyers_to_date / nullif(buyers_to_date, 0) as repeat_purchase_rate,
        orders,
        cast(net_revenue as decimal(18, 4)) as net_revenue,
        cast(net_revenue / nullif(orders, 0) as decimal(18, 4)) as average_order_value,
        case when conversion_window_passed then converted_leads / nullif(leads, 0) end as lead_conversion_rate,
        case when conversion_window_passed then converted_visitors / nullif(visitors, 0) end as visitor_to_lead_rate,
        nps,
        customer_effort_score,
        referred_new_customers / nullif(new_customers, 0) as referral_rate,
        coalesce(leads, 0) as leads_created,
        coalesce(visitors, 0) as visitors_first_seen
    from joined

)

select * from final
