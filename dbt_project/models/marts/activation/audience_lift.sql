with

entries as (

    select * from {{ ref('int_audience_entries_listed') }}

),

purchases as (

    select * from {{ ref('int_purchases_filtered') }}
    where ordered_date <= {{ var_date('as_of_date') }}

),

followed as (

    -- whether the person bought within 30 and 90 days after entering (NULL while that window
    -- has not passed as_of_date)
    select
        entries.audience,
        entries.customer_id,
        entries.entered_on,
        {{ is_holdout('entries.customer_id', 'entries.audience') }} as is_holdout,
        case when entries.entered_on + 30 <= {{ var_date('as_of_date') }} then
            coalesce(bool_or(purchases.ordered_date <= entries.entered_on + 30), false) end as purchased_30d,
        case when entries.entered_on + 90 <= {{ var_date('as_of_date') }} then
            coalesce(bool_or(purchases.ordered_date <= entries.entered_on + 90), false) end as purchased_90d
    from entries
    left join purchases
        on purchases.customer_id = entries.customer_id
        and purchases.ordered_date > entries.entered_on
        and purchases.ordered_date <= entries.entered_on + 90
    group by 1, 2, 3, 4

),

final as (

    select
        cast(audience as varchar) as audience,
        cast(date_trunc('month', entered_on) as date) as entry_month,
        cast(count(*) filter (where not is_holdout) as bigint) as members,
        cast(count(*) filter (where is_holdout) as bigint) as holdout_members,
        cast(avg(purchased_30d::int) filter (where not is_holdout) as double) as purchased_30d_share,
        cast(avg(purchased_30d::int) filter (where is_holdout) as double) as holdout_purchased_30d_share,
        cast(avg(purchased_90d::int) filter (where not is_holdout) as double) as purchased_90d_share,
        cast(avg(purchased_90d::int) filter (where is_holdout) as double) as holdout_purchased_90d_share,
        cast(avg(purchased_30d::int) filter (where not is_holdout)
             - avg(purchased_30d::int) filter (where is_holdout) as double) as lift_30d,
        cast(avg(purchased_90d::int) filter (where not is_holdout)
             - avg(purchased_90d::int) filter (where is_holdout) as double) as lift_90d
    from followed
    group by all

)

select * from final
