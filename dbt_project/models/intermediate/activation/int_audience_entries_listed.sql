{#- Every day a person entered an audience, over the whole history up to as_of_date, for
    audience_lift (CONTRACT section 7). Entries come from the trigger events, the stage spells
    and the NPS answers; for the two value audiences, whose value measures are known only as of
    as_of_date, the value condition is taken at entry as net revenue by that day in the top
    fifth of that audience's entrants (a proxy, said in docs/DECISIONS.md). -#}
with

triggers as (

    select * from {{ ref('int_trigger_events_collected') }}

),

spells as (

    select * from {{ ref('int_stage_spells_reconstructed') }}

),

purchases as (

    select * from {{ ref('int_purchases_filtered') }}
    where ordered_date <= {{ var_date('as_of_date') }}

),

signals as (

    select * from {{ ref('int_warning_signals_collected') }}
    where signal = 'nps' and day <= {{ var_date('as_of_date') }}

),

valued_entries as (

    select
        case triggers.trigger when 'churned' then 'win_back_high_value' else 'at_risk_high_value' end as audience,
        triggers.customer_id,
        triggers.fired_on as entered_on,
        coalesce(sum(purchases.net_revenue), 0) as revenue_by_then
    from triggers
    left join purchases
        on purchases.customer_id = triggers.customer_id and purchases.ordered_date <= triggers.fired_on
    where triggers.trigger in ('churned', 'entered_at_risk')
    group by all

),

value_audiences as (

    select audience, customer_id, entered_on
    from valued_entries
    qualify revenue_by_then >= quantile_cont(revenue_by_then, 0.8) over (partition by audience)

),

from_triggers as (

    select
        case trigger
            when 'replenishment_due' then 'replenishment_due'
            when 'first_purchase' then 'onboarding'
            when 'became_advocate' then 'advocates'
            when 'cart_abandoned' then 'cart_abandoners'
        end as audience,
        customer_id,
        fired_on as entered_on
    from triggers
    where trigger in ('replenishment_due', 'first_purchase', 'became_advocate', 'cart_abandoned')

),

trials as (

    select 'trial_ending' as audience, customer_id,
        greatest(fired_on, fired_on + {{ var_int('trial_days') }} - 7) as entered_on
    from triggers
    where trigger = 'trial_started'
        and greatest(fired_on, fired_on + {{ var_int('trial_days') }} - 7) <= {{ var_date('as_of_date') }}

),

detractor_answers as (

    select 'nps_detractors_to_call' as audience, signals.customer_id, signals.day as entered_on
    from signals
    left join spells
        on spells.customer_id = signals.customer_id
        and signals.day >= spells.valid_from
        -- an open spell as a far date, not an OR: an OR in the join turns it into a nested loop
        and signals.day < coalesce(spells.valid_to, date '9999-12-31')
    where signals.value <= {{ var_int('nps_detractor_max') }}
        and coalesce(spells.lifecycle_stage <> 'churned', true)

),

final as (

    select * from value_audiences
    union all select * from from_triggers
    union all select * from trials
    union all select * from detractor_answers

)

select distinct * from final
