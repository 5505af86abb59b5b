"""The daily job of all assets, scheduled at 06:00 Europe/Berlin."""
from dagster import AssetSelection, DefaultScheduleStatus, ScheduleDefinition, define_asset_job

ALL_ASSETS_JOB_NAME = "clm_all"

all_assets_job = define_asset_job(
    ALL_ASSETS_JOB_NAME,
    selection=AssetSelection.all(),
    description="Load new landing files, build the dbt project, publish serving.duckdb.",
)

daily_schedule = ScheduleDefinition(
    name="clm_daily",
    job=all_assets_job,
    cron_schedule="0 6 * * *",
    execution_timezone="Europe/Berlin",
    default_status=DefaultScheduleStatus.RUNNING,
)
