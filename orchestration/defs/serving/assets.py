"""``serving/snapshot``: the marts schema republished as serving.duckdb for BI tools.

It depends on every dbt mart, so it only runs when all of them were built and no blocking
check failed upstream in the run.
"""
from dagster import AssetExecutionContext, AssetKey, MaterializeResult, MetadataValue, asset

import importlib.metadata

from orchestration.defs.dbt.assets import mart_keys
from orchestration.defs.dbt.project import mart_descriptions
from orchestration.defs.policies import DAILY_FRESHNESS, OWNERS, layer_tags
from orchestration.resources import ClmSettings
from pipelines.serving.publish import publish_serving
from pipelines.serving.report import build_report, report_dir

SNAPSHOT_KEY = AssetKey(["serving", "snapshot"])


@asset(
    key=SNAPSHOT_KEY,
    deps=mart_keys(),
    group_name="serving",
    kinds={"duckdb"},
    owners=OWNERS,
    tags=layer_tags("serving"),
    freshness_policy=DAILY_FRESHNESS,
    description=("serving.duckdb: a copy of schema marts (views as tables) with warehouse_info and the dbt docs "
                 "as comments, swapped in atomically; Parquet copies in serving/parquet/."),
)
def serving_snapshot(context: AssetExecutionContext, clm: ClmSettings) -> MaterializeResult:
    settings = clm.get()
    info = {"as_of_date": settings.vars["as_of_date"], "vars": settings.vars, "run_id": context.run_id,
            "project_version": importlib.metadata.version("customer-lifecycle-warehouse")}
    result = publish_serving(settings.warehouse_path, settings.serving_path, info, mart_descriptions())
    return MaterializeResult(
        metadata={
            "tables": result["tables"],
            "rows": MetadataValue.json(result["rows"]),
            "path": MetadataValue.path(result["path"]),
            "parquet": MetadataValue.path(result["parquet"]),
            "as_of_date": settings.vars["as_of_date"],
            "seconds": MetadataValue.float(result["seconds"]),
            "dagster/row_count": sum(result["rows"].values()),
        }
    )


REPORT_KEY = AssetKey(["serving", "report"])


@asset(
    key=REPORT_KEY,
    deps=[SNAPSHOT_KEY],
    group_name="serving",
    kinds={"html", "python"},
    owners=OWNERS,
    tags=layer_tags("serving"),
    freshness_policy=DAILY_FRESHNESS,
    description=("report/index.html: the lifecycle manager's self-contained page (CONTRACT section 9), built from "
                 "the published snapshot only."),
)
def lifecycle_report(context: AssetExecutionContext, clm: ClmSettings) -> MaterializeResult:
    settings = clm.get()
    path = build_report(settings.serving_path, report_dir(settings))
    return MaterializeResult(metadata={"path": MetadataValue.path(str(path)),
                                       "bytes": path.stat().st_size,
                                       "as_of_date": settings.vars["as_of_date"]})
