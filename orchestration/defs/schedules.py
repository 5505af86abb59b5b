"""The daily job of all assets, scheduled at 06:00 Europe/Berlin.

The schedule and the landing sensor start runs with the vars they resolve from their own
environment (``CLM_VARS``, as ``clm run`` reads it), passed to the run as the ``clm``
resource's config and shown in the run's tags, so that a run started by either evaluates the
same ``as_of_date`` as ``clm run`` would. While another run holds the warehouse they skip,
saying who holds it.
"""
from dagster import (
    AssetSelection,
    DefaultScheduleStatus,
    RunRequest,
    ScheduleEvaluationContext,
    SkipReason,
    define_asset_job,
    schedule,
)

from orchestration.resources import run_tags
from pipelines.config import ConfigError, Settings
from pipelines.warehouse import describe_holder, lock_holder

ALL_ASSETS_JOB_NAME = "clm_all"

all_assets_job = define_asset_job(
    ALL_ASSETS_JOB_NAME,
    selection=AssetSelection.all(),
    description="Load new landing files, build the dbt project, publish serving.duckdb.",
)


def run_request_for(settings: Settings, run_key: str | None = None, tags: dict | None = None) -> RunRequest:
    """A run of all assets with exactly these settings' vars (config of the ``clm`` resource)."""
    return RunRequest(
        run_key=run_key,
        run_config={"resources": {"clm": {"config": {"vars_json": settings.dbt_vars_json}}}},
        tags={**run_tags(settings), **(tags or {})},
    )


def busy_reason(settings: Settings) -> str | None:
    holder = lock_holder(settings.warehouse_dir)
    return None if holder is None else f"the warehouse is busy: {describe_holder(holder)}"


@schedule(
    name="clm_daily",
    job=all_assets_job,
    cron_schedule="0 6 * * *",
    execution_timezone="Europe/Berlin",
    default_status=DefaultScheduleStatus.RUNNING,
    description="Runs all assets daily at 06:00 with the vars of CLM_VARS (as clm run).",
)
def daily_schedule(context: ScheduleEvaluationContext):
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        return SkipReason(f"invalid settings: {exc}")
    busy = busy_reason(settings)
    if busy:
        return SkipReason(busy)
    return run_request_for(settings, tags={"clm/trigger": "schedule"})
