"""Dagster definitions of the warehouse: ``dagster dev -m orchestration.definitions``.

One folder per area under ``defs/`` (ingestion, dbt, quality, identity, lifecycle, serving),
each with its assets, checks and sensors; the domain code they call is in ``pipelines/``.
"""
from dagster import Definitions, in_process_executor

from orchestration.defs.dbt.assets import DBT_ASSETS
from orchestration.defs.identity.assets import int_identities_resolved
from orchestration.defs.ingestion.assets import ingestion_assets
from orchestration.defs.ingestion.sensors import landing_files_sensor
from orchestration.defs.lifecycle.checks import churn_risk_beats_recency, clv_fit
from orchestration.defs.quality.checks import staging_quality_gates
from orchestration.defs.schedules import all_assets_job, daily_schedule
from orchestration.defs.serving.assets import lifecycle_report, serving_snapshot
from orchestration.resources import resources

ALL_ASSETS = [*ingestion_assets, *DBT_ASSETS, int_identities_resolved, serving_snapshot, lifecycle_report]
ALL_CHECKS = [staging_quality_gates, clv_fit, churn_risk_beats_recency]

defs = Definitions(
    assets=ALL_ASSETS,
    asset_checks=ALL_CHECKS,
    jobs=[all_assets_job],
    schedules=[daily_schedule],
    sensors=[landing_files_sensor],
    resources=resources(),
    # One step at a time: every step writes the same DuckDB file (one writer per file).
    executor=in_process_executor,
)
