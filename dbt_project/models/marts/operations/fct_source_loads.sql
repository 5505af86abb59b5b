-- One row per landing file loaded into schema raw (by content), plus one row per file that the
-- latest load of its source failed or skipped, with the reason (the loader's raw._file_issues).
with

manifest as (

    select * from {{ source('raw_meta', '_manifest') }}

),

file_issues as (

    select * from {{ source('raw_meta', '_file_issues') }}

),

loaded as (

    select
        cast(source as varchar) as source,
        cast(file_name as varchar) as file_name,
        cast(file_hash as varchar) as file_hash,
        cast('loaded' as varchar) as status,
        cast(null as varchar) as reason,
        cast(loaded_at as timestamp) as loaded_at,
        cast(loaded_at as timestamp) as checked_at,
        cast(rows_loaded as bigint) as rows_loaded,
        cast(rows_rejected as bigint) as rows_rejected,
        cast(coalesce(rows_erased, 0) as bigint) as rows_erased,
        cast(dialect as varchar) as dialect,
        cast(extra_columns as varchar[]) as unknown_columns
    from manifest

),

not_loaded as (

    select
        cast(source as varchar) as source,
        cast(file_name as varchar) as file_name,
        cast(file_hash as varchar) as file_hash,
        cast(status as varchar) as status,
        cast(reason as varchar) as reason,
        cast(null as timestamp) as loaded_at,
        cast(seen_at as timestamp) as checked_at,
        cast(0 as bigint) as rows_loaded,
        cast(0 as bigint) as rows_rejected,
        cast(0 as bigint) as rows_erased,
        cast(null as varchar) as dialect,
        cast(null as varchar[]) as unknown_columns
    from file_issues

),

final as (

    select * from loaded
    union all
    select * from not_loaded

)

select * from final
