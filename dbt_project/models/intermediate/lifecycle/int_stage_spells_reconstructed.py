"""Lifecycle stage spells per person (CONTRACT section 5): a thin wrapper around
pipelines.lifecycle.stages.stage_spells, which holds the rules. Vars arrive through the
model's ``lifecycle_rules`` config (JSON, set in _intermediate__models.yml)."""
import json


def model(dbt, session):
    dbt.config(materialized="table")
    from pipelines.lifecycle.stages import LifecycleRules, stage_spells

    rules = LifecycleRules.from_vars(json.loads(dbt.config.get("lifecycle_rules")))
    facts = dbt.ref("int_lifecycle_facts_collected").pl().lazy()
    return stage_spells(facts, rules).collect()
