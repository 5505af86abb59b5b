{#- The dated facts the early-warning reasons read (pipelines/lifecycle/early_warning.py):
    cancellations, NPS and CES answers, lost deals and web sessions, per person. This model only
    maps sources to signals; the rules (windows, thresholds) live in the Python module. Days are
    reporting-timezone days; facts after as_of_date are kept here and ignored by the rules. -#}
with

identities as (

    select * from {{ source('intermediate', 'int_identities_resolved') }}

),

orders as (

    select * from {{ ref('int_orders_numbered') }}

),

surveys as (

    select * from {{ ref('stg_surveys__responses') }}

),

deals as (

    select * from {{ ref('stg_crm_deals__deals') }}

),

sessions as (

    select * from {{ ref('int_sessions_aggregated') }}

),

cancellations as (

    select customer_id, 'cancellation' as signal, ordered_date as day, cast(null as double) as value,
        ordered_at as happened_at
    from orders
    where customer_id is not null and status in {{ contract_list('cancellation_statuses') }}

),

answers as (

    select
        identities.customer_id,
        surveys.survey_type as signal,
        {{ reporting_date('surveys.responded_at') }} as day,
        cast(surveys.score as double) as value,
        surveys.responded_at as happened_at
    from surveys
    inner join identities on identities.source = 'surveys' and identities.source_key = surveys.response_id
    where surveys.survey_type in ('nps', 'ces') and surveys.score is not null

),

lost_deals as (

    -- a lost deal without closed_at counts as lost on the day it was created
    select
        identities.customer_id,
        'deal_lost' as signal,
        greatest(deals.created_date, coalesce({{ reporting_date('deals.closed_at') }}, deals.created_date)) as day,
        cast(null as double) as value,
        cast(null as timestamp) as happened_at
    from deals
    inner join identities on identities.source = 'crm_deals' and identities.source_key = deals.deal_id
    where deals.deal_stage = 'lost'

),

visits as (

    select customer_id, 'session' as signal, {{ reporting_date('started_at') }} as day, cast(null as double) as value,
        started_at as happened_at
    from sessions
    where customer_id is not null

),

final as (

    select * from cancellations
    union all select * from answers
    union all select * from lost_deals
    union all select * from visits

)

select * from final
