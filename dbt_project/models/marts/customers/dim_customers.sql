with

customers as (

    select * from {{ ref('int_customers_survivorship_applied') }}

),

order_facts as (

    select * from {{ ref('int_orders_numbered') }}

),

acquisition as (

    select * from {{ ref('int_acquisition_channels_attributed') }}

),

spells as (

    select * from {{ ref('int_stage_spells_reconstructed') }}

),

rfm as (

    select * from {{ ref('int_customers_rfm_scored') }}

),

clv as (

    select * from {{ ref('int_clv_predictions_scored') }}

),

milestones as (

    select * from {{ ref('int_stage_milestones_dated') }}

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

current_stages as (

    select customer_id, lifecycle_stage, lifecycle_phase
    from spells
    where valid_to is null

),

final as (

    select
        customers.customer_id,
        customers.email,
        customers.first_name,
        customers.last_name,
        customers.phone,
        customers.country,
        customers.first_seen_at,
        acquisition.acquisition_channel,
        purchases.first_order_at,
        purchases.last_order_at,
        coalesce(purchases.orders_count, 0) as orders_count,
        cast(coalesce(purchases.net_revenue, 0) as decimal(18, 4)) as net_revenue,
        customers.contact_data_at is not null as has_contact_data,
        current_stages.lifecycle_stage,
        current_stages.lifecycle_phase,
        milestones.became_lead_on,
        milestones.became_opportunity_on,
        milestones.first_purchase_on,
        milestones.became_repeat_buyer_on,
        milestones.became_loyal_on,
        milestones.first_churned_on,
        rfm.rfm_recency_score,
        rfm.rfm_frequency_score,
        rfm.rfm_monetary_score,
        rfm.rfm_segment,
        clv.p_alive,
        clv.expected_orders_365d,
        clv.predicted_clv_365d,
        customers.marketing_consent
    from customers
    left join acquisition using (customer_id)
    left join purchases using (customer_id)
    left join current_stages using (customer_id)
    left join milestones using (customer_id)
    left join rfm using (customer_id)
    left join clv using (customer_id)

)

select * from final
