with

months as (

    select * from {{ ref('int_customer_months_staged') }}

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
