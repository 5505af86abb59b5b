{#- Money in the reporting currency: the latest FX rate on or before the day (in the
    reporting timezone) of the record. `fx_asof_join` adds the join, `fx_rate` the rate
    (1 for the reporting currency and for records without a currency, which are taken to
    be in the reporting currency; NULL when no rate is known — such rows are flagged
    `fx_rate_missing` and excluded from revenue, never silently 0). -#}
{% macro fx_asof_join(alias, currency_expr, day_expr) -%}
    asof left join {{ ref('stg_fx_rates__rates') }} as {{ alias }}
        on {{ alias }}.currency = {{ currency_expr }}
        and {{ day_expr }} >= {{ alias }}.rate_date
{%- endmacro %}

{% macro fx_rate(alias, currency_expr) -%}
    case
        when {{ currency_expr }} is null or {{ currency_expr }} = '{{ var("reporting_currency") }}' then 1.0
        else {{ alias }}.rate_to_reporting
    end
{%- endmacro %}

{#- Latest record per business key: the last updated, then the last loaded. -#}
{% macro latest_per_key(key_columns, updated_at=none) -%}
    qualify row_number() over (
        partition by {{ key_columns }}
        order by {% if updated_at %}{{ updated_at }} desc nulls last, {% endif %}_loaded_at desc, _source_file desc, _row_number desc
    ) = 1
{%- endmacro %}
