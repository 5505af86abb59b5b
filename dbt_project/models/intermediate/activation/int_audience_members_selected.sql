{#- Who is in each audience as of as_of_date (CONTRACT section 7; the seed audiences documents
    each rule) and the day the condition last became true (entered_on). -#}
with

spells as (

    select * from {{ ref('int_stage_spells_reconstructed') }}

),

current_stages as (

    select customer_id, lifecycle_stage, valid_from from spells where valid_to is null

),

purchases as (

    select * from {{ ref('int_purchases_filtered') }}
    where ordered_date <= {{ var_date('as_of_date') }}

),

risk as (

    select * from {{ ref('int_churn_risk_scored') }}

),

clv as (

    select * from {{ ref('int_clv_predictions_scored') }}

),

triggers as (

    select * from {{ ref('int_trigger_events_collected') }}

),

signals as (

    select * from {{ ref('int_warning_signals_collected') }}

),

identities as (

    select * from {{ source('intermediate', 'int_identities_resolved') }}
    where source = 'web_events'

),

web as (

    select identities.customer_id, events.event_name, events.event_at
    from {{ ref('stg_web_events__events') }} as events
    inner join identities on identities.source_key = events.anonymous_id
    where events.event_name = 'trial_start'

),

orders as (

    select * from {{ ref('int_orders_numbered') }}
    where is_purchase

),

carts as (

    select * from {{ ref('int_carts_evaluated') }}

),

revenue as (

    select customer_id, sum(net_revenue) as net_revenue from purchases group by customer_id

),

churned as (

    select current_stages.customer_id, current_stages.valid_from, coalesce(revenue.net_revenue, 0) as net_revenue
    from current_stages
    left join revenue using (customer_id)
    where current_stages.lifecycle_stage = 'churned'

),

win_back as (

    select 'win_back_high_value' as audience, customer_id, valid_from as entered_on
    from churned
    where net_revenue >= (select quantile_cont(net_revenue, 0.8) from churned)

),

valued_risk as (

    select risk.*, risk.churn_risk * clv.predicted_clv_365d as value_at_risk
    from risk
    left join clv using (customer_id)

),

at_risk_value as (

    select 'at_risk_high_value' as audience, customer_id, high_risk_since as entered_on
    from valued_risk
    where risk_band = 'high'
        and value_at_risk >= (select quantile_cont(value_at_risk, 0.8) from valued_risk)

),

replenishment as (

    select 'replenishment_due' as audience, customer_id, expected_next_purchase_date as entered_on
    from risk
    where expected_next_purchase_date between
        {{ var_date('as_of_date') }} - {{ var_int('replenishment_grace_days') }} and {{ var_date('as_of_date') }}

),

onboarding as (

    select 'onboarding' as audience, customer_id, min(ordered_date) as entered_on
    from purchases
    group by customer_id
    having min(ordered_date) > {{ var_date('as_of_date') }} - 14

),

advocates as (

    select 'advocates' as audience, customer_id, valid_from as entered_on
    from current_stages
    where lifecycle_stage = 'advocate'

),

latest_carts as (

    -- each person's latest cart event; the audience wants it abandoned (int_carts_evaluated's
    -- rule) within the last 7 days and no purchase since
    select * from carts
    qualify row_number() over (partition by customer_id order by event_at desc, event_id desc) = 1

),

last_purchases as (

    select customer_id, max(ordered_at) as purchased_at from orders group by customer_id

),

cart_abandoners as (

    select
        'cart_abandoners' as audience,
        latest_carts.customer_id,
        latest_carts.abandoned_on as entered_on
    from latest_carts
    left join last_purchases using (customer_id)
    where latest_carts.is_abandoned
        and latest_carts.event_at > {{ as_of_end_utc() }} - interval 7 day
        and coalesce(last_purchases.purchased_at <= latest_carts.event_at, true)

),

trial_starts as (

    select customer_id, max({{ reporting_date('event_at') }}) as started_on
    from web
    where event_name = 'trial_start' and {{ reporting_date('event_at') }} <= {{ var_date('as_of_date') }}
    group by customer_id

),

trial_ending as (

    -- the trial's days are started_on .. started_on + trial_days - 1: days left on as_of_date
    -- = started_on + trial_days - as_of_date
    select
        'trial_ending' as audience,
        current_stages.customer_id,
        greatest(trial_starts.started_on, trial_starts.started_on + {{ var_int('trial_days') }} - 7) as entered_on
    from current_stages
    inner join trial_starts using (customer_id)
    where current_stages.lifecycle_stage = 'trial'
        and trial_starts.started_on + {{ var_int('trial_days') }} - {{ var_date('as_of_date') }} <= 7

),

latest_nps as (

    select customer_id, arg_max(value, happened_at) as score, arg_max(day, happened_at) as answered_on
    from signals
    where signal = 'nps' and day <= {{ var_date('as_of_date') }}
    group by customer_id

),

detractors as (

    select 'nps_detractors_to_call' as audience, latest_nps.customer_id, latest_nps.answered_on as entered_on
    from latest_nps
    left join current_stages using (customer_id)
    where latest_nps.score <= {{ var_int('nps_detractor_max') }}
        and latest_nps.answered_on > {{ var_date('as_of_date') }} - {{ var_int('reason_survey_days') }}
        and coalesce(current_stages.lifecycle_stage <> 'churned', true)

),

final as (

    select * from win_back
    union all select * from at_risk_value
    union all select * from replenishment
    union all select * from onboarding
    union all select * from advocates
    union all select * from cart_abandoners
    union all select * from trial_ending
    union all select * from detractors

)

select * from final
