{#- CONTRACT section 8: per purchase month (reporting timezone), channel and attribution model
    the credited purchases, first purchases, net revenue and predicted CLV of the new
    customers, beside the channel's spend of the month, ROAS and CAC. Rows for every month and
    channel with credited purchases or spend, months up to that of as_of_date. -#}
{%- set as_of = var_date('as_of_date') -%}
with

touches as (

    select * from {{ ref('int_purchase_touches_credited') }}

),

purchases as (

    select * from {{ ref('int_purchases_filtered') }}

),

predictions as (

    select * from {{ ref('int_clv_predictions_scored') }}

),

spend as (

    select * from {{ ref('int_spends_converted') }}
    where spend_date <= {{ as_of }}

),

models as (

    select value as model from {{ contract_list('attribution_models') }}

),

credited as (

    select
        {{ month_of(reporting_date('touches.purchased_at')) }} as month,
        touches.channel,
        touches.is_first_purchase,
        purchases.net_revenue,
        predictions.predicted_clv_365d,
        -- the credit columns, one per model of the contract's list attribution_models
        touches.first_touch,
        touches.last_touch,
        touches.last_non_direct,
        touches.linear,
        touches.position_based,
        touches.time_decay
    from touches
    inner join purchases using (order_id)
    left join predictions on predictions.customer_id = touches.customer_id

),

credits as (

    unpivot credited
    on first_touch, last_touch, last_non_direct, linear, position_based, time_decay
    into name model value credit

),

attributed as (

    select
        month,
        channel,
        model,
        sum(credit) as attributed_purchases,
        coalesce(sum(credit) filter (where is_first_purchase), 0) as attributed_first_purchases,
        coalesce(sum(credit * net_revenue), 0) as net_revenue,
        coalesce(sum(credit * predicted_clv_365d) filter (where is_first_purchase), 0) as new_customers_predicted_clv_365d
    from credits
    group by month, channel, model

),

monthly_spend as (

    -- spend is per channel and month, the same for every model
    select
        spend.channel,
        {{ month_of('spend.spend_date') }} as month,
        models.model,
        sum(spend.spend_reporting) as spend,
        count(*) filter (where spend.fx_rate_missing) as spend_rows_without_fx_rate
    from spend
    cross join models
    group by all

),

joined as (

    select
        month,
        channel,
        model,
        coalesce(attributed.attributed_purchases, 0) as attributed_purchases,
        coalesce(attributed.attributed_first_purchases, 0) as attributed_first_purchases,
        coalesce(attributed.net_revenue, 0) as net_revenue,
        coalesce(attributed.new_customers_predicted_clv_365d, 0) as new_customers_predicted_clv_365d,
        coalesce(monthly_spend.spend, 0) as spend,
        coalesce(monthly_spend.spend_rows_without_fx_rate, 0) as spend_rows_without_fx_rate
    from attributed
    full outer join monthly_spend using (month, channel, model)

),

final as (

    select
        month,
        channel,
        model,
        cast(attributed_purchases as double) as attributed_purchases,
        cast(attributed_first_purchases as double) as attributed_first_purchases,
        cast(net_revenue as double) as net_revenue,
        cast(new_customers_predicted_clv_365d as double) as new_customers_predicted_clv_365d,
        cast(spend as decimal(18, 4)) as spend,
        spend_rows_without_fx_rate,
        -- no spend: no ROAS and no CAC (NULL, never 0)
        cast(net_revenue / nullif(spend, 0) as double) as roas,
        cast(nullif(spend, 0) / nullif(attributed_first_purchases, 0) as double) as cac
    from joined

)

select * from final
