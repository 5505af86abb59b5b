"""The house rules that keep the code base one clear house: every module imports on its own
(no import cycles), domain code never imports Dagster or the tools, and every list of sources,
keys, statuses, stages and survey types is the one in pipelines/contract.py."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pipelines import contract
from pipelines.config import PROJECT_ROOT

PACKAGES = ("pipelines", "orchestration", "tools")


def modules() -> list[str]:
    out = []
    for package in PACKAGES:
        for path in sorted((PROJECT_ROOT / package).rglob("*.py")):
            parts = path.relative_to(PROJECT_ROOT).with_suffix("").parts
            out.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return out


def test_every_module_imports_on_its_own_in_a_fresh_interpreter():
    """One interpreter per module, importing only it: an import cycle shows as an ImportError
    whatever was imported before (the bug that broke `clm erase` for every user)."""
    script = ("import importlib, subprocess, sys\n"
              "failed = []\n"
              "for m in sys.argv[1:]:\n"
              "    r = subprocess.run([sys.executable, '-c', f'import {m}'], capture_output=True, text=True)\n"
              "    if r.returncode: failed.append(m + ': ' + (r.stderr.strip().splitlines() or ['?'])[-1])\n"
              "print('\\n'.join(failed))\n")
    found = subprocess.run([sys.executable, "-c", script, *modules()], capture_output=True, text=True,
                           cwd=PROJECT_ROOT, timeout=900, check=True).stdout.strip()
    assert found == ""


def _imports(path: Path) -> set[str]:
    import ast

    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("path", sorted((PROJECT_ROOT / "pipelines").rglob("*.py")), ids=lambda p: p.name)
def test_domain_code_imports_neither_dagster_nor_orchestration_nor_tools(path):
    assert _imports(path) & {"dagster", "dagster_dbt", "orchestration", "tools"} == set()


def test_the_dbt_seed_is_the_contract():
    assert contract.SEED_PATH.read_text(encoding="utf-8") == contract.seed_csv(), (
        "dbt_project/seeds/contract_values.csv is stale: run `.venv/bin/python -m pipelines.contract`")


def test_lists_derived_from_the_contract_equal_it():
    from pipelines.identity import graph
    from pipelines.lifecycle import stages
    from pipelines.privacy import erasure
    from pipelines.staging import quality
    from tools.demo import generate

    assert graph.SOURCES == tuple(contract.PERSON_RECORD_KEYS)
    assert graph.ID_TYPES == contract.IDENTIFIER_TYPES
    assert erasure.RECORD_KEYS == contract.PERSON_RECORD_KEYS
    assert stages.STAGES == contract.LIFECYCLE_STAGES and stages.PHASES == contract.PHASE_OF_STAGE
    assert (quality.ORDER_STATUSES, quality.DEAL_STAGES, quality.SURVEY_TYPES) == (
        contract.ORDER_STATUSES, contract.DEAL_STAGES, contract.SURVEY_TYPES)
    assert quality.SCORE_RANGES == contract.SCORE_RANGES
    assert set(generate.EVENTS) == set(contract.KNOWN_EVENTS)  # the generator's order drives its random picks
    assert generate.STATUSES == contract.ORDER_STATUSES and generate.DEAL_STAGES == contract.DEAL_STAGES
    assert tuple(generate.SOURCES) == tuple(contract.SOURCES)
    for source in contract.PERSON_RECORD_KEYS.values():
        assert source  # every person source names its record key column
    for name, spec in contract.SOURCES.items():
        for column, values in spec.allowed_values.items():
            assert values == contract.contract_lists()[{"status": "order_statuses", "deal_stage": "deal_stages",
                                                        "survey_type": "survey_types"}[column]], (name, column)
