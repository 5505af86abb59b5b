{#- Every CRM deal with its amount in the reporting currency: the latest FX rate on or before
    the deal's creation day (reporting timezone; macros/fx.sql); no rate known for a deal with
    an amount = flagged, reporting amount NULL (never 0). -#}
with

deals as (

    select * from {{ ref('stg_crm_deals__deals') }}

),

converted as (

    select
        deals.*,
        {{ fx_rate('fx', 'deals.currency') }} as fx_rate
    from deals
    {{ fx_asof_join('fx', 'deals.currency', 'deals.created_date') }}

),

final as (

    select
        * exclude (fx_rate),
        fx_rate,
        amount is not null and fx_rate is null as fx_rate_missing,
        cast(amount * fx_rate as decimal(18, 4)) as amount_reporting
    from converted

)

select * from final
