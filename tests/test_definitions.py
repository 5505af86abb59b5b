from __future__ import annotations

import json

import pytest
from dagster import AssetCheckKey, AssetKey

from orchestration.defs.dbt.project import prepare_manifest
from pipelines.contract import SOURCES

STAGING_MODELS = {
    "crm_contacts": "stg_crm_contacts__contacts",
    "crm_deals": "stg_crm_deals__deals",
    "web_events": "stg_web_events__events",
    "orders": "stg_orders__orders",
    "marketing_spend": "stg_marketing_spend__spends",
    "surveys": "stg_surveys__responses",
    "fx_rates": "stg_fx_rates__rates",
}


@pytest.fixture(scope="module")
def defs():
    from orchestration.definitions import defs

    return defs


@pytest.fixture(scope="module")
def graph(defs):
    return defs.resolve_asset_graph()


def test_definitions_load_with_job_schedule_and_sensor(defs):
    job = defs.resolve_job_def("clm_all")
    assert job is not None
    schedule = defs.resolve_schedule_def("clm_daily")
    assert schedule.cron_schedule == "0 6 * * *"
    assert schedule.execution_timezone == "Europe/Berlin"
    assert schedule.job_name == "clm_all"
    sensor = defs.resolve_sensor_def("landing_files")
    assert sensor.job_name == "clm_all"
    # every step writes the same DuckDB file: one step at a time
    assert job.executor_def.name == "in_process"


def test_asset_keys(graph):
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {f"raw/{s}" for s in SOURCES} <= keys
    assert {f"staging/{m}" for m in STAGING_MODELS.values()} <= keys
    assert "marts/fct_source_loads" in keys
    assert "serving/snapshot" in keys
    # dbt sources are not separate (stub) assets: raw/<source> is the ingestion asset
    assert not any(k.startswith(("raw_meta/",)) for k in keys)
    for source in SOURCES:
        node = graph.get(AssetKey(["raw", source]))
        assert node.is_materializable and node.group_name == "ingestion"


def test_dbt_source_maps_to_ingestion_asset(graph):
    from orchestration.defs.dbt.assets import translator

    manifest = json.loads(prepare_manifest().read_text())
    props = manifest["sources"]["source.clm.raw.orders"]
    assert translator.get_asset_key(props) == AssetKey(["raw", "orders"])
    # the first model reading each raw table (base_ models where a phone lookup sits between)
    first_readers = {**STAGING_MODELS, "crm_contacts": "base_crm_contacts__contacts",
                     "orders": "base_orders__orders"}
    for source, model in first_readers.items():
        parents = graph.get(AssetKey(["staging", model])).parent_keys
        assert AssetKey(["raw", source]) in parents
        assert {p for p in parents if p.path[0] == "raw"} == {AssetKey(["raw", source])}


def test_loader_manifest_mart_depends_on_every_ingestion_asset(graph):
    parents = graph.get(AssetKey(["marts", "fct_source_loads"])).parent_keys
    assert parents == {AssetKey(["raw", s]) for s in SOURCES}


def test_serving_snapshot_depends_on_all_marts(graph):
    marts = {k for k in graph.get_all_asset_keys() if k.path[0] == "marts"}
    assert marts
    assert graph.get(AssetKey(["serving", "snapshot"])).parent_keys == marts


def test_rejected_share_checks_exist_and_block(graph):
    for source in SOURCES:
        key = AssetCheckKey(AssetKey(["raw", source]), "max_rejected_share")
        assert key in graph.asset_check_keys
        assert graph.get_check_spec(key).blocking


def test_dbt_tests_are_blocking_checks(graph):
    key = AssetCheckKey(
        AssetKey(["staging", "stg_orders__orders"]), "not_null_stg_orders__orders_order_id"
    )
    assert key in graph.asset_check_keys
    assert graph.get_check_spec(key).blocking


def test_quality_gates_block_identity_and_marts(graph):
    from orchestration.defs.quality.checks import CHECK_NAME

    for model in STAGING_MODELS.values():
        check = graph.get_check_spec(AssetCheckKey(AssetKey(["staging", model]), CHECK_NAME))
        assert check.blocking, model
    identity = graph.get(AssetKey(["intermediate", "int_identities_resolved"]))
    assert AssetKey(["intermediate", "int_identity_links"]) in identity.parent_keys
    # the marts build on resolved persons, in the second dbt step
    assert AssetKey(["intermediate", "int_identities_resolved"]) in graph.get(
        AssetKey(["marts", "customer_identities"])).parent_keys


def test_clv_fit_check_reports_without_blocking(graph):
    key = AssetCheckKey(AssetKey(["marts", "clv_model_params"]), "clv_fit")
    assert key in graph.asset_check_keys
    assert not graph.get_check_spec(key).blocking
