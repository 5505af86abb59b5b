{#- Each person's milestone days from the stage spells (CONTRACT section 8; reporting-timezone
    days, like valid_from): the first day in a stage (null if never), and the day each funnel
    step was reached with the skip rule (the first day in a stage of that step or a later one,
    seed contract_values' funnel_stages_<step>, written from pipelines/contract.py). dim_customers
    publishes the first, funnel_monthly counts the second. -#}
with

spells as (

    select * from {{ ref('int_stage_spells_reconstructed') }}

),

milestones as (

    select
        customer_id,
        min(valid_from) filter (where lifecycle_stage = 'lead') as became_lead_on,
        min(valid_from) filter (where lifecycle_stage = 'opportunity') as became_opportunity_on,
        -- every stage that needs a purchase: the first day in any of them is the first purchase
        -- day, also for a buyer whose first day already made them a repeat buyer or loyal
        min(valid_from) filter (where lifecycle_stage in {{ contract_list('funnel_stages_first_purchase') }})
            as first_purchase_on,
        min(valid_from) filter (where lifecycle_stage = 'repeat_buyer') as became_repeat_buyer_on,
        min(valid_from) filter (where lifecycle_stage = 'loyal') as became_loyal_on,
        min(valid_from) filter (where lifecycle_stage = 'churned') as first_churned_on,
        -- funnel steps, skip rule applied (every spell means the person was seen: a visitor)
        min(valid_from) as visitor_reached_on,
        min(valid_from) filter (where lifecycle_stage in {{ contract_list('funnel_stages_lead') }})
            as lead_reached_on,
        min(valid_from) filter (where lifecycle_stage in {{ contract_list('funnel_stages_opportunity') }})
            as opportunity_reached_on,
        first_purchase_on as first_purchase_reached_on,  -- the same stages, so the same day
        min(valid_from) filter (where lifecycle_stage in {{ contract_list('funnel_stages_repeat_purchase') }})
            as repeat_purchase_reached_on
    from spells
    group by customer_id

),

final as (

    select * from milestones

)

select * from final
