with

validated as (

    select * from {{ ref('int_clv_holdout_validated') }}

),

final as (

    select
        frequency_bucket,
        customers,
        predicted_purchases,
        actual_purchases,
        predicted_purchases - actual_purchases as error,
        calibration_end,
        holdout_days
    from validated

)

select * from final
