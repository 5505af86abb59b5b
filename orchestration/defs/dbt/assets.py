"""The dbt project as Dagster assets (models as assets, dbt tests as asset checks).

dbt runs ``dbt build`` in a subprocess with the run's vars; Python holds no DuckDB
connection meanwhile (one writer per database file).
"""

import contextlib
import os
import re
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from dagster import AssetCheckSpec, AssetDep, AssetExecutionContext, AssetKey, AssetSpec, Failure, Output
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, dbt_assets

from orchestration.resources import ClmSettings
from orchestration.defs.dbt.project import DBT_PROJECT, dbt_error_reason, duckdb_memory_limit
from orchestration.defs.policies import DAILY_FRESHNESS, OWNERS, layer_tags
from pipelines.contract import SOURCES
from pipelines.warehouse import row_counts

RAW_SOURCE = "raw"  # dbt source name of the landing tables: raw.<source> -> asset raw/<source>
RAW_META_SOURCE = "raw_meta"  # loader bookkeeping tables, written by every ingestion asset
# Each warehouse keeps its dbt target folder beside it (dbt's partial parse file survives
# between its runs; runs of one warehouse never overlap: they hold its run lock), and each
# run keeps its own dbt log, named by the run id; the newest RUN_LOGS_KEPT are kept.
RUN_LOGS_KEPT = 20


def run_target_dir(warehouse_dir: Path) -> Path:
    return Path(warehouse_dir) / "dbt" / "target"


def run_log_dir(warehouse_dir: Path, run_id: str) -> Path:
    return Path(warehouse_dir) / "dbt" / "logs" / run_id


class ClmDbtTranslator(DagsterDbtTranslator):
    """Asset keys: dbt source ``raw.<source>`` is the ingestion asset ``raw/<source>``;
    models are ``<schema>/<model>`` (e.g. ``marts/fct_orders``), grouped by their folder
    (staging, intermediate, marts). A model reading a ``raw_meta`` table (the loader's
    manifest or rejected rows) depends on all ingestion assets, since each of them writes
    those tables."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return AssetKey([dbt_resource_props["source_name"], dbt_resource_props["name"]])
        return super().get_asset_key(dbt_resource_props)

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        fqn = dbt_resource_props.get("fqn") or []
        if dbt_resource_props["resource_type"] == "seed":
            return "seeds"
        if dbt_resource_props["resource_type"] == "model" and len(fqn) > 2:
            return fqn[1]
        return super().get_group_name(dbt_resource_props) or "dbt"

    def get_owners(self, dbt_resource_props: Mapping[str, Any]) -> list[str]:
        return OWNERS

    def get_tags(self, dbt_resource_props: Mapping[str, Any]) -> Mapping[str, str]:
        return {**super().get_tags(dbt_resource_props), **layer_tags(self.get_group_name(dbt_resource_props) or "dbt")}

    def get_asset_check_spec(self, asset_spec, manifest, unique_id, project) -> AssetCheckSpec | None:
        spec = super().get_asset_check_spec(asset_spec, manifest, unique_id, project)
        if spec is None or spec.description:
            return spec
        return spec._replace(description=test_description(manifest["nodes"].get(unique_id) or {}))

    def get_asset_spec(self, manifest, unique_id, project) -> AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        if spec.key.path[0] == "marts":
            spec = spec.replace_attributes(freshness_policy=DAILY_FRESHNESS)
        if not any(dep.asset_key.path[0] == RAW_META_SOURCE for dep in spec.deps):
            return spec
        deps: list[AssetDep] = []
        seen: set[AssetKey] = set()
        for dep in spec.deps:
            replacement = (
                [AssetDep(AssetKey([RAW_SOURCE, s])) for s in SOURCES]
                if dep.asset_key.path[0] == RAW_META_SOURCE
                else [dep]
            )
            for d in replacement:
                if d.asset_key not in seen:
                    seen.add(d.asset_key)
                    deps.append(d)
        return spec.replace_attributes(deps=deps)


translator = ClmDbtTranslator()

# what a generic test checks, for the check's description in the Dagster UI
_TEST_RULES = {
    "not_null": "has no nulls",
    "unique": "has no duplicates",
    "accepted_values": "holds only the values {values}",
    "relationships": "refers to an existing {field} of {to}",
    "clm_in_contract": "holds only the values the contract allows for {contract_list}",
}


def test_description(test: Mapping[str, Any]) -> str:
    """The description of a dbt test as an asset check: the yml's own description (or
    ``meta.description``) if it has one, else a sentence naming the rule and the column."""
    own = (test.get("description") or "").strip() or ((test.get("meta") or {}).get("description") or "").strip()
    if own:
        return own
    metadata = test.get("test_metadata") or {}
    name, kwargs = metadata.get("name") or test.get("name", "test"), dict(metadata.get("kwargs") or {})
    column = test.get("column_name") or kwargs.get("column_name")
    if isinstance(kwargs.get("values"), list):
        kwargs["values"] = ", ".join(map(str, kwargs["values"]))
    if isinstance(kwargs.get("to"), str):
        kwargs["to"] = re.sub(r"^ref\(['\"]([^'\"]+)['\"]\)$", r"\1", kwargs["to"])
    rule = _TEST_RULES.get(name)
    if rule:
        try:
            rule = rule.format(**kwargs)
        except (KeyError, IndexError):
            pass
        return f"Column {column} {rule}." if column else f"The model {rule}."
    if test.get("resource_type") == "unit_test" or name.startswith("unit"):
        return f"dbt unit test {name}."
    what = f" on column {column}" if column else ""
    return f"dbt test {name}{what}: fails when its query returns rows (see the test's SQL in the dbt project)."


@contextlib.contextmanager
def _env(**values: str) -> Iterator[None]:
    """Set environment variables for the dbt subprocess (DbtCliResource passes os.environ)."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _failed_nodes(invocation) -> list[str]:
    """'<node>: <message>' for each failed dbt node, from run_results.json."""
    try:
        results = invocation.get_artifact("run_results.json").get("results", [])
    except Exception:  # no artifact: dbt failed before running anything
        return []
    out = []
    for r in results:
        if r.get("status") in ("error", "fail", "runtime error"):
            parts = r.get("unique_id", "?").split(".")
            name = parts[2] if len(parts) > 2 else parts[-1]
            lines = [ln.strip() for ln in (r.get("message") or "").splitlines() if ln.strip()]
            # "Runtime Error in model x (path)" is a heading; the next line says what happened
            if len(lines) > 1 and re.match(r"^[\w ]*Error in \w+ ", lines[0]):
                lines = lines[1:]
            out.append(f"{name}: {lines[0] if lines else r.get('status')}")
    return out


# dbt runs in two steps so that the Great Expectations gates on the staging tables and the
# identity resolution (Python) sit between them: staging (with seeds and the identity links)
# first, then everything that builds on resolved persons.
STAGING_SELECTION = "fqn:clm.staging resource_type:seed int_identity_links"


def _build_dbt_assets(name: str, select: str = "fqn:*", exclude: str | None = None):
    @dbt_assets(
        manifest=DBT_PROJECT.manifest_path,
        project=DBT_PROJECT,
        dagster_dbt_translator=translator,
        name=name,
        select=select,
        exclude=exclude,
    )
    def _dbt(context: AssetExecutionContext, dbt: DbtCliResource, clm: ClmSettings):
        yield from _run_dbt_build(context, dbt, clm)

    return _dbt


def _run_dbt_build(context: AssetExecutionContext, dbt: DbtCliResource, clm: ClmSettings):
    settings = clm.get()
    target_dir = run_target_dir(settings.warehouse_dir)
    log_dir = run_log_dir(settings.warehouse_dir, context.run_id)
    target_dir.mkdir(parents=True, exist_ok=True)
    log_dir.mkdir(parents=True, exist_ok=True)
    _prune_run_logs(log_dir.parent)
    (target_dir / "run_results.json").unlink(missing_ok=True)  # never report a stale result
    # dbt builds one model at a time (profiles.yml threads: 1), so the Polars models and
    # DuckDB each use every core in turn
    polars_threads = os.environ.get("POLARS_MAX_THREADS") or str(os.cpu_count() or 1)
    with _env(CLM_WAREHOUSE_DIR=str(settings.warehouse_dir.resolve()), DBT_SEND_ANONYMOUS_USAGE_STATS="false",
              POLARS_MAX_THREADS=polars_threads, CLM_DUCKDB_MEMORY_LIMIT=duckdb_memory_limit()):
        invocation = dbt.cli(
            ["build", "--vars", settings.dbt_vars_json, "--log-path", str(log_dir)],
            context=context,
            raise_on_error=False,
            target_path=target_dir,
        )
        # the events wait until dbt has exited: only then can this process open the database (one
        # writer per file) to count the rows of each model built, for the materialisations
        events = list(invocation.stream())
    yield from _with_row_counts(context, events, settings.warehouse_path)
    if not invocation.is_successful():
        failed = _failed_nodes(invocation)
        if failed:
            description = "; ".join(failed[:5]) + (f" (+{len(failed) - 5} more)" if len(failed) > 5 else "")
        else:  # e.g. a compilation error or a database that cannot be opened: no run results
            description = dbt_error_reason(str(invocation.get_error() or "")) or (
                f"dbt exited with code {invocation.process.returncode}")
        raise Failure(description=f"{description} (log: {log_dir / 'dbt.log'})")


def _with_row_counts(context: AssetExecutionContext, events: list, warehouse_path: Path) -> Iterator:
    """The events of a dbt build, each model's Output with ``dagster/row_count``."""
    keys = {e.output_name: context.asset_key_for_output(e.output_name) for e in events if isinstance(e, Output)}
    counts = row_counts(warehouse_path, [tuple(k.path) for k in keys.values() if len(k.path) == 2])
    for event in events:
        if isinstance(event, Output) and tuple(keys[event.output_name].path) in counts:
            event = event.with_metadata({**(event.metadata or {}),
                                         "dagster/row_count": counts[tuple(keys[event.output_name].path)]})
        yield event


def _prune_run_logs(logs: Path) -> None:
    runs = sorted((p for p in logs.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in runs[RUN_LOGS_KEPT:]:
        shutil.rmtree(old, ignore_errors=True)


clm_dbt_staging = _build_dbt_assets("clm_dbt_staging", select=STAGING_SELECTION)
clm_dbt_models = _build_dbt_assets("clm_dbt_models", exclude=STAGING_SELECTION)
DBT_ASSETS = [clm_dbt_staging, clm_dbt_models]


def mart_keys() -> list[AssetKey]:
    return sorted((k for d in DBT_ASSETS for k in d.keys if k.path[0] == "marts"), key=lambda k: k.path)
