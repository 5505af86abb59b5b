"""What the Dagster UI shows about the project: a description on every check, row counts on
every dbt model's materialisation, freshness on the marts and the report, retries on ingestion,
owners, the seeds' own group, one run at a time, and the run's vars in its tags."""
from __future__ import annotations

import datetime as dt

import pytest
import yaml
from dagster import AssetKey, DagsterEventType, DagsterInstance, EventRecordsFilter

from orchestration.defs.dbt.project import prepare_manifest
from pipelines.config import PROJECT_ROOT
from tests.pipeline import query


@pytest.fixture(scope="module")
def graph():
    prepare_manifest()
    from orchestration.definitions import defs

    return defs.resolve_asset_graph()


def test_every_check_has_a_description(graph):
    checks = [graph.get_check_spec(k) for k in graph.asset_check_keys]
    assert len(checks) > 150
    assert [c.key.to_user_string() for c in checks if not (c.description or "").strip()] == []


def test_generated_check_descriptions_name_column_and_rule():
    from orchestration.defs.dbt.assets import test_description

    assert test_description({"test_metadata": {"name": "not_null", "kwargs": {"column_name": "customer_id"}},
                             "column_name": "customer_id"}) == "Column customer_id has no nulls."
    assert test_description({"test_metadata": {"name": "accepted_values", "kwargs": {"values": ["a", "b"]}},
                             "column_name": "stage"}) == "Column stage holds only the values a, b."
    assert test_description({"test_metadata": {"name": "relationships",
                                               "kwargs": {"to": "ref('dim_customers')", "field": "customer_id"}},
                             "column_name": "customer_id"}) == (
        "Column customer_id refers to an existing customer_id of dim_customers.")
    assert test_description({"description": "Revenue never negative.", "test_metadata": {"name": "x"}}) == (
        "Revenue never negative.")
    assert test_description({"name": "assert_balanced"}).startswith("dbt test assert_balanced: fails when")


def test_groups_owners_freshness_and_retries(graph):
    specs = {k: graph.get(k) for k in graph.get_all_asset_keys()}
    seeds = [k for k, n in specs.items() if n.group_name == "seeds"]
    assert AssetKey(["staging", "reason_categories"]) in seeds or any(k.path[-1] == "reason_categories" for k in seeds)
    assert "dbt" not in {n.group_name for n in specs.values()}
    assert all(n.owners == ["team:data-engineering"] for k, n in specs.items() if k.path[0] != "raw_meta")
    fresh = {k for k, n in specs.items() if n.freshness_policy is not None}
    marts = {k for k in specs if k.path[0] == "marts"}
    assert marts and marts <= fresh and AssetKey(["serving", "report"]) in fresh
    policy = specs[AssetKey(["serving", "report"])].freshness_policy
    assert policy.fail_window.to_timedelta() == dt.timedelta(hours=26)
    from orchestration.definitions import defs

    job = defs.resolve_job_def("clm_all")
    retries = {node.name: node.definition.retry_policy for node in job.graph.node_dict.values()}
    assert retries["raw__orders"] is not None and retries["raw__orders"].max_retries == 2


def test_the_instance_runs_one_run_at_a_time(tmp_path, monkeypatch):
    config = PROJECT_ROOT / "orchestration" / "dagster.yaml"
    assert yaml.safe_load(config.read_text())["concurrency"]["runs"]["max_concurrent_runs"] == 1
    (tmp_path / "dagster.yaml").write_text(config.read_text())
    instance = DagsterInstance.from_config(str(tmp_path))
    try:
        assert instance.get_concurrency_config().run_queue_config.max_concurrent_runs == 1
    finally:
        instance.dispose()


@pytest.fixture(scope="module")
def run_instance(demo_warehouse):
    instance = DagsterInstance.from_config(str(demo_warehouse / "dagster_home"))
    yield instance
    instance.dispose()


def test_dbt_materialisations_carry_row_counts(run_instance, demo_warehouse):
    records = run_instance.get_event_records(EventRecordsFilter(event_type=DagsterEventType.ASSET_MATERIALIZATION))
    counts = {}
    for record in records:
        mat = record.event_log_entry.dagster_event.step_materialization_data.materialization
        if mat.asset_key.path[0] in ("staging", "intermediate", "marts"):
            counts[tuple(mat.asset_key.path)] = mat.metadata.get("dagster/row_count")
    assert len(counts) > 60 and [k for k, v in counts.items() if v is None] == []
    warehouse = demo_warehouse / "warehouse" / "clm.duckdb"
    for key in [("marts", "fct_orders"), ("marts", "dim_customers"), ("staging", "stg_orders__orders")]:
        assert counts[key].value == query(warehouse, f"SELECT count(*) FROM {key[0]}.{key[1]}")[0][0], key


def test_the_run_shows_its_vars_in_its_tags(run_instance):
    runs = run_instance.get_runs()
    assert len(runs) == 1
    assert runs[0].tags["clm/as_of_date"] == "2025-12-31"
    assert '"as_of_date": "2025-12-31"' in runs[0].tags["clm/vars"] or '"as_of_date":"2025-12-31"' in runs[0].tags["clm/vars"]
