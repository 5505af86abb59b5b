"""Dagster definitions of the warehouse: ``dagster dev -m orchestration.definitions``."""
from dagster import Definitions, in_process_executor

from orchestration.assets.dbt import DBT_ASSETS
from orchestration.assets.identity import int_identities_resolved
from orchestration.assets.ingestion import ingestion_assets
from orchestration.assets.publish import serving_snapshot
from orchestration.checks import clv_fit, staging_quality_gates
from orchestration.resources import resources
from orchestration.schedules import all_assets_job, daily_schedule
from orchestration.sensors import landing_files_sensor

ALL_ASSETS = [*ingestion_assets, *DBT_ASSETS, int_identities_resolved, serving_snapshot]
ALL_CHECKS = [staging_quality_gates, clv_fit]

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
