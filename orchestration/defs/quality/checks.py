"""Blocking Great Expectations gates on the staging tables (one Dagster step for all suites,
so GX starts once). A failed suite stops identity resolution and every mart downstream of that
table; check metadata holds counts only. The results are also kept in raw._quality_results for
marts.fct_quality_checks and the report (GX's Data Docs load their styles from a CDN and show
an empty page offline, so they are not where people are sent to look)."""
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetKey,
    multi_asset_check,
)

from orchestration.resources import ClmSettings
from pipelines.staging.quality import SUITES
from pipelines.staging.gates import run_quality_gates
from pipelines.staging.results import record_quality_results

CHECK_NAME = "great_expectations"


def staging_key(table: str) -> AssetKey:
    return AssetKey(["staging", table])


@multi_asset_check(
    specs=[
        AssetCheckSpec(CHECK_NAME, asset=staging_key(table), blocking=True,
                       description=f"Great Expectations suite `{table}`: keys, formats, ISO sets, ranges.")
        for table in SUITES
    ],
    name="staging_quality_gates",
)
def staging_quality_gates(context: AssetCheckExecutionContext, clm: ClmSettings):
    settings = clm.get()
    run_id = context.op_execution_context.run_id
    results = run_quality_gates(settings, run_name=run_id)
    record_quality_results(settings.warehouse_path, results, run_id)  # for fct_quality_checks and the report
    for table, result in results.items():
        failed = [r["check"] for r in result.failed]
        yield AssetCheckResult(
            asset_key=staging_key(table),
            check_name=CHECK_NAME,
            passed=result.success,
            severity=AssetCheckSeverity.ERROR,
            description=(f"{table}: {len(failed)} of {len(result.results)} expectations failed: {', '.join(failed)}"
                         if failed else f"{table}: {len(result.results)} expectations passed"),
            metadata=result.metadata(),
        )
