"""``intermediate/int_identities_resolved``: identity resolution between the two dbt steps.

It reads the identity links built by dbt (after the blocking quality gates on staging) and
writes the resolved persons that the marts build on. Metadata: counts only.
"""
from dagster import AssetExecutionContext, AssetKey, MaterializeResult, MetadataValue, asset

from orchestration.resources import ClmSettings
from pipelines.identity_store import resolve_in_warehouse

RESOLVED_KEY = AssetKey(["intermediate", "int_identities_resolved"])


@asset(
    key=RESOLVED_KEY,
    # the staging tables too, so that their blocking quality gates also gate identity resolution
    deps=[AssetKey(["intermediate", "int_identity_links"])] + [
        AssetKey(["staging", model]) for model in (
            "stg_crm_contacts__contacts", "stg_crm_deals__deals", "stg_surveys__responses",
            "stg_orders__orders", "stg_web_events__events")],
    group_name="intermediate",
    kinds={"python", "polars", "duckdb"},
    description=(
        "One row per source record with its resolved, run-stable customer_id (SPEC section 4): "
        "connected components over shared identifiers, shared devices linking nothing."
    ),
)
def int_identities_resolved(context: AssetExecutionContext, clm: ClmSettings) -> MaterializeResult:
    stats = resolve_in_warehouse(clm.get())
    metadata = {k: (MetadataValue.float(float(v)) if isinstance(v, float) else v)
                for k, v in stats.items() if isinstance(v, (int, float))}
    metadata["dagster/row_count"] = int(stats.get("records", 0))
    return MaterializeResult(metadata=metadata)
