"""The monthly stage grid (SPEC customer_stages_monthly): a thin wrapper around
pipelines.lifecycle.monthly_stages over the stage spells."""
import json


def model(dbt, session):
    dbt.config(materialized="table")
    from pipelines.lifecycle import LifecycleRules, monthly_members, monthly_stages

    rules = LifecycleRules.from_vars(json.loads(dbt.config.get("lifecycle_rules")))
    facts = dbt.ref("int_lifecycle_facts_collected").filter("fact in ('contact', 'purchase')").pl().lazy()
    spells = dbt.ref("int_stage_spells_reconstructed").pl().lazy()
    return monthly_stages(spells, monthly_members(facts, rules), rules.as_of_date).collect()
