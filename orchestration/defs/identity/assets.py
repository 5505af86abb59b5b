"""``intermediate/int_identities_resolved``: identity resolution between the two dbt steps.

It reads the identity links built by dbt (after the blocking quality gates on staging) and
writes the resolved persons that the marts build on. Metadata: counts only.
"""
from dagster import AssetExecutionContext, AssetKey, MaterializeResult, MetadataValue, asset

from orchestration.defs.dbt.assets import DBT_ASSETS
from orchestration.defs.policies import OWNERS, layer_tags
from orchestration.resources import ClmSettings
from pipelines.contract import PERSON_RECORD_KEYS
from pipelines.identity.registry import resolve_in_warehouse

RESOLVED_KEY = AssetKey(["intermediate", "int_identities_resolved"])


def person_staging_keys() -> list[AssetKey]:
    """The staging models of the sources whose records belong to persons (pipelines.contract)."""
    prefixes = tuple(f"stg_{source}__" for source in PERSON_RECORD_KEYS)
    return sorted((k for d in DBT_ASSETS for k in d.keys
                   if k.path[0] == "staging" and k.path[-1].startswith(prefixes)), key=lambda k: k.path)


@asset(
    key=RESOLVED_KEY,
    # the staging tables too, so that their blocking quality gates also gate identity resolution
    deps=[AssetKey(["intermediate", "int_identity_links"]), *person_staging_keys()],
    group_name="intermediate",
    kinds={"python", "polars", "duckdb"},
    owners=OWNERS,
    tags=layer_tags("intermediate"),
    description=(
        "One row per source record with its resolved, run-stable customer_id (CONTRACT section 4): "
        "connected components over shared identifiers, shared devices linking nothing."
    ),
)
def int_identities_resolved(context: AssetExecutionContext, clm: ClmSettings) -> MaterializeResult:
    stats = resolve_in_warehouse(clm.get())
    metadata = {k: (MetadataValue.float(float(v)) if isinstance(v, float) else v)
                for k, v in stats.items() if isinstance(v, (int, float))}
    metadata["dagster/row_count"] = int(stats.get("records", 0))
    return MaterializeResult(metadata=metadata)
