{#- The contract's lists (pipelines/contract.py, SPEC) reach SQL only through the seed
    contract_values that `python -m pipelines.contract` writes: one row per list, position
    and value. `x in {{ contract_list('purchase_statuses') }}` tests membership; the generic
    test clm_in_contract (macros/tests.sql) checks a column against a list. -#}
{% macro contract_list(list_name) -%}
    (select value from {{ ref('contract_values') }} where list_name = {{ sql_string(list_name) }})
{%- endmacro %}
