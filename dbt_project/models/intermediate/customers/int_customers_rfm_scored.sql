{#- RFM as of as_of_date for buyers: recency (days since the last purchase day), frequency
    (purchases), monetary (net revenue of the purchases), each scored 1-5 by quintile
    (ntile(5); 5 = most recent / most frequent / highest), ties broken by customer_id; the
    segment from the R x F map in seed rfm_segments. -#}
with

purchases as (

    select * from {{ ref('int_purchases_filtered') }}

),

segments as (

    select * from {{ ref('rfm_segments') }}

),

buyers as (

    select
        customer_id,
        {{ var_date('as_of_date') }} - max(ordered_date) as recency_days,
        count(*) as frequency,
        coalesce(sum(net_revenue), 0) as monetary
    from purchases
    group by customer_id

),

scored as (

    select
        *,
        ntile(5) over (order by recency_days desc, customer_id) as rfm_recency_score,
        ntile(5) over (order by frequency, customer_id) as rfm_frequency_score,
        ntile(5) over (order by monetary, customer_id) as rfm_monetary_score
    from buyers

),

final as (

    select
        scored.customer_id,
        scored.recency_days,
        scored.frequency,
        scored.monetary,
        cast(scored.rfm_recency_score as integer) as rfm_recency_score,
        cast(scored.rfm_frequency_score as integer) as rfm_frequency_score,
        cast(scored.rfm_monetary_score as integer) as rfm_monetary_score,
        segments.rfm_segment
    from scored
    left join segments
        on segments.r_score = scored.rfm_recency_score and segments.f_score = scored.rfm_frequency_score

)

select * from final
