{#- CONTRACT section 6: CAC and payback per acquisition channel c and month m. One row per
    channel and month with spend or new customers, months up to that of as_of_date. -#}
{%- set as_of = var_date('as_of_date') -%}
with

spend as (

    select * from {{ ref('int_spends_converted') }}
    where spend_date <= {{ as_of }}

),

orders as (

    select * from {{ ref('int_orders_numbered') }}
    where is_purchase

),

acquisition as (

    select * from {{ ref('int_acquisition_channels_attributed') }}

),

cohorts as (

    select * from {{ ref('int_channel_cohorts_aggregated') }}

),

buyers as (

    -- every buyer with the time of the first purchase (dim_customers.first_order_at)
    select customer_id, min(ordered_at) as first_order_at
    from orders
    group by customer_id

),

monthly_spend as (

    select
        channel as acquisition_channel,
        {{ month_of('spend_date') }} as month,
        sum(spend_reporting) as spend,
        count(*) filter (where fx_rate_missing) as spend_rows_without_fx_rate
    from spend
    group by 1, 2

),

acquired as (

    select
        coalesce(acquisition_channel, 'unknown') as acquisition_channel,
        {{ month_of(reporting_date('first_order_at')) }} as month,
        count(*) as new_customers
    from buyers
    left join acquisition using (customer_id)
    group by 1, 2

),

joined as (

    select
        acquisition_channel,
        month,
        coalesce(monthly_spend.spend, 0) as spend,
        coalesce(monthly_spend.spend_rows_without_fx_rate, 0) as spend_rows_without_fx_rate,
        coalesce(acquired.new_customers, 0) as new_customers
    from monthly_spend
    full outer join acquired using (acquisition_channel, month)

),

with_cac as (

    select
        *,
        -- no spend (an unpaid channel, or spend without an FX rate): no CAC, NULL rather than 0
        nullif(spend, 0) / nullif(new_customers, 0) as cac
    from joined

),

payback as (

    -- the first offset at which the channel cohort's cumulative net revenue per customer
    -- reaches the CAC
    select
        with_cac.acquisition_channel,
        with_cac.month,
        cast(min(cohorts.months_since_first_order) as integer) as payback_months
    from with_cac
    inner join cohorts
        on cohorts.acquisition_channel = with_cac.acquisition_channel
        and cohorts.cohort_month = with_cac.month
        and cohorts.cumulative_net_revenue_per_customer >= with_cac.cac
    group by 1, 2

),

final as (

    select
        with_cac.acquisition_channel,
        with_cac.month,
        cast(with_cac.spend as decimal(18, 4)) as spend,
        with_cac.spend_rows_without_fx_rate,
        with_cac.new_customers,
        cast(with_cac.cac as decimal(18, 4)) as cac,
        payback.payback_months
    from with_cac
    left join payback using (acquisition_channel, month)

)

select * from final
