with

months as (

    select * from {{ ref('int_month_end_stages_evaluated') }}

),

final as (

    -- every person of the monthly grid once per month: from the stage at the previous
    -- month-end (NULL for persons first seen in the month) to the stage at this one
    select
        month,
        previous_stage as from_stage,
        lifecycle_stage as to_stage,
        count(*) as customers
    from months
    group by month, previous_stage, lifecycle_stage

)

select * from final
