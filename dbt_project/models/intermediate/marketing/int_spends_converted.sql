{#- Every marketing spend row with the spend in the reporting currency: that day's FX rate or
    the latest before it (macros/fx.sql); no rate known = flagged, reporting spend NULL (left
    out of CAC and counted, never 0). -#}
with

spends as (

    select * from {{ ref('stg_marketing_spend__spends') }}

),

converted as (

    select
        spends.*,
        {{ fx_rate('fx', 'spends.currency') }} as fx_rate
    from spends
    {{ fx_asof_join('fx', 'spends.currency', 'spends.spend_date') }}

),

final as (

    select
        * exclude (fx_rate),
        fx_rate,
        fx_rate is null as fx_rate_missing,
        cast(spend * fx_rate as decimal(18, 4)) as spend_reporting
    from converted

)

select * from final
