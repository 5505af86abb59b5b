"""``serving/snapshot``: the marts schema republished as serving.duckdb for BI tools.

It depends on every dbt mart, so it only runs when all of them were built and no blocking
check failed upstream in the run.
"""
from dagster import AssetExecutionContext, AssetKey, MaterializeResult, MetadataValue, asset

from orchestration.defs.dbt.assets import mart_keys
from orchestration.resources import ClmSettings
from pipelines.serving.publish import publish_serving

SNAPSHOT_KEY = AssetKey(["serving", "snapshot"])


@asset(
    key=SNAPSHOT_KEY,
    deps=mart_keys(),
    group_name="serving",
    kinds={"duckdb"},
    description="serving.duckdb: a copy of schema marts (views as tables), swapped in atomically.",
)
def serving_snapshot(context: AssetExecutionContext, clm: ClmSettings) -> MaterializeResult:
    settings = clm.get()
    result = publish_serving(settings.warehouse_path, settings.serving_path)
    return MaterializeResult(
        metadata={
            "tables": result["tables"],
            "rows": MetadataValue.json(result["rows"]),
            "path": MetadataValue.path(result["path"]),
            "seconds": MetadataValue.float(result["seconds"]),
            "dagster/row_count": sum(result["rows"].values()),
        }
    )
