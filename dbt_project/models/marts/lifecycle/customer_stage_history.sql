with

spells as (

    select * from {{ ref('int_stage_spells_reconstructed') }}

),

final as (

    select
        customer_id,
        lifecycle_stage,
        lifecycle_phase,
        valid_from,
        valid_to,
        valid_to is null as is_current
    from spells

)

select * from final
