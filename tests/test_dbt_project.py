"""The dbt project's house rules, read from its manifest (dbt_project/target/manifest.json,
refreshed by ``ensure_manifest``) and its files: the layers read in one direction (staging
1:1 with its raw source, intermediate never from marts), every folder documents its models,
and the contract's lists and patterns reach dbt only through what pipelines/contract.py
writes."""
from __future__ import annotations

from pipelines import contract


def test_the_dbt_macro_of_contract_patterns_is_the_contract():
    assert contract.MACRO_PATH.read_text(encoding="utf-8") == contract.macro_sql(), (
        "dbt_project/macros/contract_patterns.sql is stale: run `.venv/bin/python -m pipelines.contract`")
