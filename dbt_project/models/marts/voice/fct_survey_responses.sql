with

surveys as (

    select * from {{ ref('stg_surveys__responses') }}

),

identities as (

    select * from {{ source('intermediate', 'int_identities_resolved') }}
    where source = 'surveys'

),

spells as (

    select * from {{ ref('int_stage_spells_reconstructed') }}

),

categorised as (

    select * from {{ ref('int_reason_texts_categorised') }}
    where origin = 'survey_comment'

),

responses as (

    select
        surveys.response_id,
        identities.customer_id,
        surveys.survey_type,
        surveys.score,
        surveys.responded_at,
        {{ reporting_date('surveys.responded_at') }} as responded_on
    from surveys
    inner join identities on identities.source_key = surveys.response_id
    where {{ reporting_date('surveys.responded_at') }} <= {{ var_date('as_of_date') }}

),

with_stage_before as (

    -- the stage held on the day before the response: the answer given on the day a person
    -- became a customer shows what they were before (the response can itself change the stage)
    select responses.*, spells.lifecycle_stage as lifecycle_stage_before
    from responses
    left join spells
        on spells.customer_id = responses.customer_id
        and spells.valid_from <= responses.responded_on - 1
        -- an open spell as a far date, not an OR: DuckDB plans an OR in a join condition as a
        -- nested loop over every pair (33 s at the medium scale instead of 0.1 s)
        and coalesce(spells.valid_to, date '9999-12-31') > responses.responded_on - 1

),

final as (

    select
        with_stage_before.response_id,
        with_stage_before.customer_id,
        with_stage_before.survey_type,
        with_stage_before.score,
        with_stage_before.responded_at,
        with_stage_before.responded_on,
        with_stage_before.lifecycle_stage_before,
        categorised.category as comment_category
    from with_stage_before
    left join categorised on categorised.source_key = with_stage_before.response_id

)

select * from final
