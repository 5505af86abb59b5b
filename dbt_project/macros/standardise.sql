{#- Content standardisation shared by the staging models (CONTRACT section 4).
    Each macro is the single definition of its rule; dbt unit tests on the staging
    models exercise them with edge cases. -#}

{#- Email: trimmed, lower-cased, googlemail.com = gmail.com; NULL when blank or not
    shaped like an address. The shape is the contract's one e-mail rule
    (pipelines/contract.py EMAIL_PATTERN, handed to SQL by the generated macro
    email_pattern()), which the staging quality gates check as well. -#}
{% macro normalise_email(expr) -%}
    case
        when regexp_matches(lower(trim({{ expr }})), {{ email_pattern() }})
            then regexp_replace(lower(trim({{ expr }})), '@googlemail\.com$', '@gmail.com')
    end
{%- endmacro %}

{#- Key under which a country name or code is looked up in seed country_aliases:
    lower-cased, accents stripped, everything but a-z and 0-9 removed. -#}
{% macro country_key(expr) -%}
    nullif(regexp_replace(lower(strip_accents(trim({{ expr }}))), '[^a-z0-9]', '', 'g'), '')
{%- endmacro %}

{#- Currency code: trimmed, upper-cased; validity is checked against seed currencies. -#}
{% macro currency_code(expr) -%}
    nullif(upper(trim({{ expr }})), '')
{%- endmacro %}

{#- A UTC timestamp as wall-clock time in the reporting timezone. -#}
{% macro to_reporting_tz(ts) -%}
    timezone({{ var_string('reporting_timezone') }}, timezone('UTC', {{ ts }}))
{%- endmacro %}

{#- Lower-cased, trimmed free text; NULL when blank. -#}
{% macro clean_lower(expr) -%}
    nullif(lower(trim({{ expr }})), '')
{%- endmacro %}

{#- The reporting-timezone calendar day of a UTC timestamp. -#}
{% macro reporting_date(ts) -%}
    cast({{ to_reporting_tz(ts) }} as date)
{%- endmacro %}

{#- The first day of the month of a date. -#}
{% macro month_of(day) -%}
    cast(date_trunc('month', {{ day }}) as date)
{%- endmacro %}

{#- Installed by every dbt run (on-run-start): the email rule as a DuckDB macro, so that
    Python (clm erase, the loader's erasure filter) applies the very same normalisation. -#}
{% macro clm_install_sql_macros() -%}
    create or replace macro main.clm_normalise_email(value) as ({{ normalise_email('value') }})
{%- endmacro %}

{#- Whether a person is held out of an audience (not activated, to measure its lift): the first
    32 bits of md5(customer_id || ':' || audience) as a fraction of 2^32, below
    audience_holdout_share. Deterministic for a person and audience, on any engine. -#}
{% macro is_holdout(customer_id, audience) -%}
    (cast(('0x' || substr(md5({{ customer_id }} || ':' || {{ audience }}), 1, 8)) as ubigint) / 4294967296.0
        < {{ var('audience_holdout_share') | float }})
{%- endmacro %}
