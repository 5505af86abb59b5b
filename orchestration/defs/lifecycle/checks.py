"""A non-blocking check on the CLV models: fitted and converged, with their diagnostics."""
import duckdb
from dagster import AssetCheckResult, AssetCheckSeverity, AssetKey, MetadataValue, asset_check

from orchestration.resources import ClmSettings
from pipelines.lifecycle.clv import fit_report

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


VALIDATION_KEY = AssetKey(["marts", "churn_risk_validation"])


@asset_check(
    asset=VALIDATION_KEY,
    name="churn_risk_beats_recency",
    blocking=False,
    description=("The early-warning score ranks the buyers of the backtest better than days since the last "
                 "purchase alone (AUC of churn_risk at least that of recency). A warning, never a failed run."),
)
def churn_risk_beats_recency(clm: ClmSettings) -> AssetCheckResult:
    settings = clm.get()
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        rows = dict(con.execute("SELECT scorer, auc FROM marts.churn_risk_validation").fetchall())
    finally:
        con.close()
    ours, baseline = rows.get("churn_risk"), rows.get("recency")
    passed = ours is not None and baseline is not None and ours >= baseline
    return AssetCheckResult(
        passed=passed,
        severity=AssetCheckSeverity.WARN,
        description=(f"churn_risk AUC {ours:.3f} vs recency {baseline:.3f}" if ours is not None and baseline is not None
                     else "no AUC: too few buyers at the cutoff, or the models could not be fitted"),
        metadata={"auc_churn_risk": MetadataValue.float(float(ours if ours is not None else float("nan"))),
                  "auc_recency": MetadataValue.float(float(baseline if baseline is not None else float("nan")))},
    )
