{#- The trigger events an automation tool reads (CONTRACT section 7), over the whole history up
    to as_of_date: stage changes from the stage spells (entered_at_risk, churned, reactivated,
    became_advocate), first purchases, trial starts, abandoned carts (one trigger per cart the rule
    of int_carts_evaluated finds abandoned, fired on the day the hours passed) and
    replenishment due (the day a buyer's next purchase was expected after a purchase day: that
    day plus the mean gap between their purchase days so far, or with one purchase day the
    median first-to-second gap of all repeat buyers as of as_of_date; fired when no purchase
    came by then). -#}
with

spells as (

    select * from {{ ref('int_stage_spells_reconstructed') }}

),

purchases as (

    select * from {{ ref('int_purchases_filtered') }}
    where ordered_date <= {{ var_date('as_of_date') }}

),

carts as (

    select * from {{ ref('int_carts_evaluated') }}

),

identities as (

    select * from {{ source('intermediate', 'int_identities_resolved') }}
    where source = 'web_events'

),

events as (

    select * from {{ ref('stg_web_events__events') }}
    where event_name = 'trial_start'

),

web as (

    select identities.customer_id, events.event_name, events.event_at
    from events
    inner join identities on identities.source_key = events.anonymous_id

),

stage_changes as (

    select
        case lifecycle_stage
            when 'at_risk' then 'entered_at_risk'
            when 'churned' then 'churned'
            when 'reactivated' then 'reactivated'
            when 'advocate' then 'became_advocate'
        end as trigger,
        customer_id,
        valid_from as fired_on
    from spells
    where lifecycle_stage in ('at_risk', 'churned', 'reactivated', 'advocate')
        and valid_from <= {{ var_date('as_of_date') }}

),

first_purchases as (

    select 'first_purchase' as trigger, customer_id, min(ordered_date) as fired_on
    from purchases
    group by customer_id

),

trials as (

    select distinct 'trial_started' as trigger, customer_id, {{ reporting_date('event_at') }} as fired_on
    from web
    where event_name = 'trial_start' and {{ reporting_date('event_at') }} <= {{ var_date('as_of_date') }}

),

abandoned as (

    select 'cart_abandoned' as trigger, customer_id, abandoned_on as fired_on
    from carts
    where is_abandoned

),

purchase_days as (

    select distinct customer_id, ordered_date as day from purchases

),

numbered as (

    select
        customer_id,
        day,
        row_number() over (partition by customer_id order by day) as n,
        min(day) over (partition by customer_id) as first_day,
        lead(day) over (partition by customer_id order by day) as next_day
    from purchase_days

),

median_first_gap as (

    select median(day - first_day) as gap from numbered where n = 2

),

expected as (

    select
        numbered.customer_id,
        numbered.next_day,
        numbered.day + cast(round(
            case when numbered.n > 1 then (numbered.day - numbered.first_day) / (numbered.n - 1)
                 else median_first_gap.gap end) as integer) as due
    from numbered
    cross join median_first_gap

),

replenishments as (

    select 'replenishment_due' as trigger, customer_id, due as fired_on
    from expected
    where due <= {{ var_date('as_of_date') }} and coalesce(next_day > due, true)

),

final as (

    select * from stage_changes
    union all select * from first_purchases
    union all select * from trials
    union all select * from abandoned
    union all select * from replenishments

)

select * from final
