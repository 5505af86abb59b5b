-- One row per landing file loaded into schema raw (a small operational mart so that
-- serving.duckdb has content before the customer marts exist).
with

manifest as (

    select * from {{ source('raw_meta', '_manifest') }}

),

loads as (

    select
        cast(source as varchar) as source,
        cast(file_name as varchar) as file_name,
        cast(file_hash as varchar) as file_hash,
        cast(loaded_at as timestamp) as loaded_at,
        cast(rows_loaded as bigint) as rows_loaded,
        cast(rows_rejected as bigint) as rows_rejected,
        cast(coalesce(rows_erased, 0) as bigint) as rows_erased,
        cast(dialect as varchar) as dialect,
        cast(extra_columns as varchar[]) as unknown_columns
    from manifest

),

final as (

    select * from loads

)

select * from final
