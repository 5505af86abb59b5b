with

customers as (

    select * from {{ ref('int_customers_survivorship_applied') }}

),

acquisition as (

    select * from {{ ref('int_acquisition_channels_attributed') }}

),

milestones as (

    select * from {{ ref('int_stage_milestones_dated') }}

),

steps as (

    select value as step, position as step_number
    from {{ ref('contract_values') }}
    where list_name = 'funnel_steps'

),

cohorts as (

    -- every person seen by as_of_date (persons with stage spells) enters at visitor
    select
        milestones.customer_id,
        {{ month_of(reporting_date('customers.first_seen_at')) }} as first_seen_month,
        coalesce(acquisition.acquisition_channel, 'unknown') as acquisition_channel
    from milestones
    inner join customers using (customer_id)
    left join acquisition using (customer_id)
    where customers.first_seen_at is not null

),

reached as (

    -- the days each step was reached, skip rule applied (int_stage_milestones_dated)
    select customer_id, 'visitor' as step, visitor_reached_on as reached_on from milestones
    union all
    select customer_id, 'lead', lead_reached_on from milestones
    union all
    select customer_id, 'opportunity', opportunity_reached_on from milestones
    union all
    select customer_id, 'first_purchase', first_purchase_reached_on from milestones
    union all
    select customer_id, 'repeat_purchase', repeat_purchase_reached_on from milestones

),

person_steps as (

    select
        reached.customer_id,
        reached.step,
        steps.step_number,
        reached.reached_on,
        lag(reached.reached_on) over (partition by reached.customer_id order by steps.step_number)
            as previous_reached_on
    from reached
    inner join steps using (step)

),

counted as (

    select
        cohorts.first_seen_month,
        cohorts.acquisition_channel,
        person_steps.step,
        person_steps.step_number,
        count(person_steps.reached_on) as persons_reached,
        -- the entry step has no previous one: everyone who entered did so "within the window"
        count(person_steps.reached_on) filter (
            where person_steps.step_number = 1
                or person_steps.reached_on - person_steps.previous_reached_on
                    <= {{ var_int('conversion_window_days') }}
        ) as persons_reached_within_window,
        cast(median(person_steps.reached_on - person_steps.previous_reached_on) as double)
            as median_days_from_previous
    from person_steps
    inner join cohorts using (customer_id)
    group by all

),

final as (

    select
        first_seen_month,
        acquisition_channel,
        step,
        cast(step_number as integer) as step_number,
        persons_reached,
        persons_reached_within_window,
        cast(persons_reached as double) / nullif(lag(persons_reached) over funnel, 0) as conversion_rate,
        cast(persons_reached_within_window as double) / nullif(lag(persons_reached) over funnel, 0)
            as conversion_rate_within_window,
        median_days_from_previous
    from counted
    window funnel as (partition by first_seen_month, acquisition_channel order by step_number)

)

select * from final
