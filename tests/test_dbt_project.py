"""The dbt project's house rules, read from its manifest (dbt_project/target/manifest.json,
refreshed by ``prepare_manifest``) and its files: the layers read in one direction (staging
1:1 with its raw source, intermediate never from marts), every folder documents its models,
and the contract's lists and patterns reach dbt only through what pipelines/contract.py
writes."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from orchestration.defs.dbt.project import prepare_manifest
from pipelines import contract
from pipelines.config import DBT_PROJECT_DIR

MODELS_DIR = DBT_PROJECT_DIR / "models"


@pytest.fixture(scope="module")
def manifest() -> dict:
    return json.loads(prepare_manifest().read_text())


def models(manifest: dict) -> dict[str, dict]:
    return {uid: n for uid, n in manifest["nodes"].items() if n["resource_type"] == "model"}


def layer(node: dict) -> str:
    """staging, intermediate or marts: the first folder under models/."""
    return node["fqn"][1]


def parents(manifest: dict, node: dict) -> list[dict]:
    """The nodes and sources ``node`` reads (its direct dependencies)."""
    return [manifest["nodes"].get(uid) or manifest["sources"][uid] for uid in node["depends_on"]["nodes"]]


def test_every_layer_is_a_known_folder(manifest):
    assert {layer(n) for n in models(manifest).values()} == {"staging", "intermediate", "marts"}


def test_intermediate_models_never_read_a_mart(manifest):
    wrong = sorted(f"{n['name']} reads {p['name']}" for n in models(manifest).values() if layer(n) == "intermediate"
                   for p in parents(manifest, n) if p["resource_type"] == "model" and layer(p) == "marts")
    assert wrong == []


def test_marts_read_intermediate_models_not_other_marts(manifest):
    wrong = sorted(f"{n['name']} reads {p['name']}" for n in models(manifest).values() if layer(n) == "marts"
                   for p in parents(manifest, n) if p["resource_type"] == "model" and layer(p) == "marts")
    assert wrong == []


def test_staging_models_read_only_their_own_source(manifest):
    """staging/<source>/: stg_<source>__* and base_<source>__* read the raw table <source> and
    base_<source>__ models of the same folder, besides seeds and the seed lookups of
    staging/seeds/ (stg_seeds__*); never another source or another source's model."""
    wrong = []
    for node in models(manifest).values():
        if layer(node) != "staging":
            continue
        folder = node["fqn"][2]
        if not re.match(rf"^(stg|base)_{folder}__\w+$", node["name"]):
            wrong.append(f"{node['name']} is in staging/{folder}/")
        for parent in parents(manifest, node):
            kind = parent["resource_type"]
            ok = (
                kind == "seed"
                or (kind == "source" and parent["source_name"] == "raw" and parent["name"] == folder)
                or (kind == "model" and layer(parent) == "staging" and (
                    parent["fqn"][2] == "seeds" or (parent["fqn"][2] == folder and parent["name"].startswith(f"base_{folder}__"))))
            )
            if not ok:
                wrong.append(f"{node['name']} reads {kind} {parent.get('source_name', '')}{parent['name']}")
    assert wrong == []


def test_every_raw_source_has_its_staging_folder(manifest):
    folders = {n["fqn"][2] for n in models(manifest).values() if layer(n) == "staging"}
    assert set(contract.SOURCES) <= folders


def test_every_model_folder_has_its_models_yml():
    folders = sorted({p.parent for p in MODELS_DIR.rglob("*") if p.suffix in (".sql", ".py")})
    assert folders
    missing = [str(f.relative_to(MODELS_DIR)) for f in folders if not (f / f"_{f.name}__models.yml").is_file()]
    assert missing == []


def test_every_model_is_documented_in_its_own_folders_yml(manifest):
    wrong = []
    for node in models(manifest).values():
        folder = Path(node["original_file_path"]).parent
        expected = f"clm://{folder / f'_{folder.name}__models.yml'}"
        if node["patch_path"] != expected:
            wrong.append(f"{node['name']}: {node['patch_path']}")
    assert wrong == []


def test_unit_tests_sit_beside_their_models(manifest):
    by_name = {n["name"]: n for n in models(manifest).values()}
    wrong = [t["name"] for t in manifest["unit_tests"].values()
             if Path(t["original_file_path"]).parent != Path(by_name[t["model"]]["original_file_path"]).parent]
    assert wrong == []


def test_every_model_states_its_grain(manifest):
    assert sorted(n["name"] for n in models(manifest).values() if "Grain:" not in n["description"]) == []


def test_every_mart_enforces_its_contract(manifest):
    marts = [n for n in models(manifest).values() if layer(n) == "marts"]
    assert marts
    assert sorted(n["name"] for n in marts if not n["config"]["contract"]["enforced"]) == []
    undocumented = sorted(f"{n['name']}.{c['name']}" for n in marts for c in n["columns"].values()
                          if not c.get("description") or not c.get("data_type"))
    assert undocumented == []


def test_no_accepted_values_repeats_a_contract_list(manifest):
    lists = {name: set(values) for name, values in contract.contract_lists().items()}
    wrong = []
    for node in manifest["nodes"].values():
        meta = node.get("test_metadata") or {}
        if node["resource_type"] == "test" and meta.get("name") == "accepted_values":
            values = {str(v) for v in meta["kwargs"]["values"]}
            wrong += [f"{node['name']} repeats {name}" for name, known in lists.items() if values == known]
    assert wrong == []


def test_contract_tests_name_lists_the_contract_has(manifest):
    names = [node["test_metadata"]["kwargs"]["list_name"] for node in manifest["nodes"].values()
             if node["resource_type"] == "test" and (node.get("test_metadata") or {}).get("name") == "clm_in_contract"]
    assert names and set(names) <= set(contract.contract_lists())


def test_no_model_lists_order_statuses_in_sql(manifest):
    """The purchase rule and the no-revenue rule are the contract's lists (seed contract_values),
    never a literal list of statuses in a model."""
    statuses = set(contract.ORDER_STATUSES)
    wrong = []
    for node in models(manifest).values():
        for literal_list in re.findall(r"\bin\s*\(([^()]*)\)", node["raw_code"], re.IGNORECASE):
            if {v.strip().strip("'\"") for v in literal_list.split(",")} & statuses:
                wrong.append(f"{node['name']}: in ({literal_list})")
    assert wrong == []
    converted = next(n for n in models(manifest).values() if n["name"] == "int_orders_converted")
    assert "contract_list('purchase_statuses')" in converted["raw_code"]


def test_the_purchases_projection_exists_once(manifest):
    """Every model that needs purchases reads int_purchases_filtered (or int_orders_numbered with
    its is_purchase flag); no Python model filters or projects orders itself."""
    wrong = [n["name"] for n in models(manifest).values()
             if n["language"] == "python" and re.search(r"is_purchase|ordered_date, net_revenue", n["raw_code"])]
    assert wrong == []


def test_models_identity_resolution_needs_are_in_the_first_dbt_step(manifest):
    """The first dbt step (STAGING_SELECTION) builds int_identity_links and everything it reads,
    so that the quality gates and identity resolution run between the two steps."""
    from orchestration.defs.dbt.assets import clm_dbt_models, clm_dbt_staging

    first = {key.path[-1] for key in clm_dbt_staging.keys}
    second = {key.path[-1] for key in clm_dbt_models.keys}
    nodes = manifest["nodes"]
    links = next(uid for uid, n in models(manifest).items() if n["name"] == "int_identity_links")
    needed, todo = set(), [links]
    while todo:
        uid = todo.pop()
        if uid in nodes and uid not in needed:
            needed.add(uid)
            todo += nodes[uid]["depends_on"].get("nodes", [])
    names = {nodes[uid]["name"] for uid in needed if nodes[uid]["resource_type"] in ("model", "seed")}
    assert "int_identity_links" in names and "stg_orders__orders" in names
    assert names <= first
    # and nothing that reads the resolved persons is built before them
    assert not any(p["name"] == "int_identities_resolved" for n in models(manifest).values()
                   if n["name"] in first for p in parents(manifest, n))
    assert first.isdisjoint(second)


def test_every_data_test_reads_models_of_one_dbt_step(manifest):
    """dbt's eager indirect selection runs a test when any of its parents is selected: a test
    reading a model of each step would run in the first step, before its mart exists, and be
    left out of the second (why clm_in_contract reads the seed without ref())."""
    from orchestration.defs.dbt.assets import clm_dbt_models, clm_dbt_staging

    first = {key.path[-1] for key in clm_dbt_staging.keys}
    second = {key.path[-1] for key in clm_dbt_models.keys}
    wrong = []
    for node in manifest["nodes"].values():
        if node["resource_type"] != "test":
            continue
        names = {manifest["nodes"][uid]["name"] for uid in node["depends_on"]["nodes"] if uid in manifest["nodes"]}
        if names & first and names & second:
            wrong.append(f"{node['name']}: {sorted(names & first)} and {sorted(names & second)}")
    assert wrong == []


def test_retired_relations_are_no_current_models(manifest):
    text = (DBT_PROJECT_DIR / "macros" / "retired_relations.sql").read_text()
    retired = set(re.findall(r"\('(?:staging|intermediate|marts)', '(\w+)'\)", text))
    assert retired
    assert retired.isdisjoint({n["name"] for n in models(manifest).values()})


def test_the_dbt_macro_of_contract_patterns_is_the_contract():
    assert contract.MACRO_PATH.read_text(encoding="utf-8") == contract.macro_sql(), (
        "dbt_project/macros/contract_patterns.sql is stale: run `.venv/bin/python -m pipelines.contract`")


def test_the_raw_sources_dbt_reads_are_the_contract(manifest):
    """Every raw table as dbt's sources yml describes it has exactly the contract's columns and
    types (pipelines/contract.py), plus the loader's lineage columns."""
    from pipelines.contract import LINEAGE_COLUMNS, SOURCES
    from pipelines.raw.parse import SQL_TYPES

    for name, spec in SOURCES.items():
        [source] = [s for s in manifest["sources"].values() if s["source_name"] == "raw" and s["name"] == name]
        declared = {c: (info.get("data_type") or "").upper() for c, info in source["columns"].items()}
        expected = {c.name: SQL_TYPES[c.type].replace(" ", "") for c in spec.columns}
        assert {c: t.replace(" ", "") for c, t in declared.items() if c not in LINEAGE_COLUMNS} == expected, name
        assert set(LINEAGE_COLUMNS) <= set(declared), name
