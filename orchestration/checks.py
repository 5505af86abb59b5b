"""Blocking Great Expectations gates on the staging tables (one Dagster step for all suites,
so GX starts once and the Data Docs are built once). A failed suite stops identity resolution
and every mart downstream of that table; check metadata holds counts only."""
import duckdb
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetKey,
    MetadataValue,
    asset_check,
    multi_asset_check,
)

from orchestration.resources import ClmSettings
from pipelines.clv import fit_report
from pipelines.quality import SUITES
from pipelines.quality_gates import run_quality_gates

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
    results, docs = run_quality_gates(clm.get(), run_name=context.op_execution_context.run_id)
    for table, result in results.items():
        failed = [r["check"] for r in result.failed]
        yield AssetCheckResult(
            asset_key=staging_key(table),
            check_name=CHECK_NAME,
            passed=result.success,
            severity=AssetCheckSeverity.ERROR,
            description=(f"{table}: {len(failed)} of {len(result.results)} expectations failed: {', '.join(failed)}"
                         if failed else f"{table}: {len(result.results)} expectations passed"),
            metadata={**result.metadata(), "data_docs": MetadataValue.path(str(docs))},
        )


CLV_PARAMS_KEY = AssetKey(["marts", "clv_model_params"])


@asset_check(
    asset=CLV_PARAMS_KEY,
    name="clv_fit",
    blocking=False,
    description=("BG/NBD and Gamma-Gamma fitted and converged; parameters, the frequency/spend "
                 "independence check and the calibration/holdout comparison as metadata. A warning, "
                 "never a failed run: without a fit the CLV columns are NULL."),
)
def clv_fit(clm: ClmSettings) -> AssetCheckResult:
    settings = clm.get()
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        report = fit_report(con.execute("SELECT * FROM marts.clv_model_params").pl(),
                            con.execute("SELECT * FROM marts.clv_holdout_validation").pl())
    finally:
        con.close()
    metadata = {k: (MetadataValue.float(float(v)) if isinstance(v, float) else v)
                for k, v in report.items() if v is not None}
    return AssetCheckResult(
        passed=report["fitted"],
        severity=AssetCheckSeverity.WARN,
        description=("CLV models fitted" if report["fitted"] else
                     "CLV models not fitted or not converged (too few buyers, or no interior maximum): "
                     "p_alive, expected_orders_365d and predicted_clv_365d are NULL"),
        metadata=metadata,
    )
