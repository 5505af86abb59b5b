with

months as (

    select * from {{ ref('int_month_end_stages_evaluated') }}

),

final as (

    select
        month,
        month_end,
        customer_id,
        lifecycle_stage,
        lifecycle_phase,
        previous_stage
    from months

)

select * from final
