{#- The contract's lists (pipelines/contract.py, docs/CONTRACT.md) reach SQL only through the seed
    contract_values that `python -m pipelines.contract` writes: one row per list, position
    and value. In a model, `x in {{ contract_list('purchase_statuses') }}` tests membership
    (the model depends on the seed); the generic test clm_in_contract (macros/tests.sql)
    checks a column against a list. -#}
{% macro contract_list(list_name) -%}
    (select value from {{ ref('contract_values') }} where list_name = {{ sql_string(list_name) }})
{%- endmacro %}

{#- The same subquery for generic tests, naming the seed's table without ref(). A test that
    ref()s the seed gets the seed as a second parent, and dbt's (default, eager) indirect
    selection then runs every such test in the first of the pipeline's two dbt steps, which
    builds the seeds, before the model under test is built in the second step, and leaves it
    out of the second step. The seed is still built before the tests read it: seeds have no
    parents, and dbt runs every node without parents before any deeper node (graph queue
    scores by depth; one thread). -#}
{% macro contract_list_in_test(list_name) -%}
    {%- set seed = graph.nodes.get('seed.' ~ project_name ~ '.contract_values') if execute else none -%}
    {%- set relation = api.Relation.create(database=seed.database, schema=seed.schema, identifier=seed.alias) if seed else 'contract_values' -%}
    (select value from {{ relation }} where list_name = {{ sql_string(list_name) }})
{%- endmacro %}
