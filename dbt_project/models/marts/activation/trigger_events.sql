with

triggers as (

    select * from {{ ref('int_trigger_events_collected') }}

),

final as (

    select
        cast(trigger as varchar) as trigger,
        cast(customer_id as varchar) as customer_id,
        cast(fired_on as date) as fired_on
    from triggers

)

select * from final
