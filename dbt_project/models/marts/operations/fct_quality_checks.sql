with

results as (

    select * from {{ source('raw_meta', '_quality_results') }}

),

final as (

    select
        cast(gate as varchar) as gate,
        cast(expectation as varchar) as expectation,
        cast(rows_checked as bigint) as rows_checked,
        cast(failures as bigint) as failures,
        cast(passed as boolean) as passed,
        cast(run_id as varchar) as run_id,
        cast(checked_at as timestamp) as checked_at
    from results

)

select * from final
