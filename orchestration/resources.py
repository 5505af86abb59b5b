"""Resources: the project settings, and dbt.

Settings are resolved at run time (``Settings.from_env()``), so a schedule or sensor run
sees the environment of the run worker. ``run_all`` passes explicit values instead.

Every asset needs ``clm``, so its set-up is where a Dagster run starts: the vars are
validated there (nothing is written with bad ones) and the warehouse's run lock is taken
for the whole run (``pipelines.warehouse.run_lock``): a run from the UI, the schedule or
the sensor never overlaps ``clm run``, ``clm erase`` or another run.
"""

import contextlib
import logging
import os

from dagster import ConfigurableResource, InitResourceContext
from dagster_dbt import DbtCliResource

from orchestration.defs.dbt.project import DBT_PROJECT
from pipelines.config import Settings
from pipelines.warehouse import run_lock


class ClmSettings(ConfigurableResource):
    """Folders and business-rule vars of a run; unset fields come from the environment
    (``CLM_LANDING_DIR``, ``CLM_WAREHOUSE_DIR``, ``CLM_VARS``)."""

    landing_dir: str | None = None
    warehouse_dir: str | None = None
    vars_json: str | None = None  # a CLM_VARS-style JSON object

    def get(self) -> Settings:
        env = dict(os.environ)
        if self.landing_dir:
            env["CLM_LANDING_DIR"] = self.landing_dir
        if self.warehouse_dir:
            env["CLM_WAREHOUSE_DIR"] = self.warehouse_dir
        if self.vars_json is not None:
            env["CLM_VARS"] = self.vars_json
        return Settings.from_env(env)

    @contextlib.contextmanager
    def yield_for_execution(self, context: InitResourceContext):
        settings = self.get()  # a ConfigError here fails the run before anything is written
        _tag_run_with_vars(context, settings)
        with run_lock(settings.warehouse_dir, f"dagster run {context.run_id or ''}".strip()):
            yield self

    @classmethod
    def from_settings(cls, settings: Settings) -> "ClmSettings":
        return cls(
            landing_dir=str(settings.landing_dir),
            warehouse_dir=str(settings.warehouse_dir),
            vars_json=settings.dbt_vars_json,
        )


def run_tags(settings: Settings) -> dict[str, str]:
    """The tags that show a run's vars in the UI (clm/as_of_date, clm/vars)."""
    return {"clm/as_of_date": settings.vars["as_of_date"], "clm/vars": settings.dbt_vars_json}


def _tag_run_with_vars(context: InitResourceContext, settings: Settings) -> None:
    """Runs started from the launchpad (or by a job without the schedule's tags) get the vars they
    resolved as tags too; tags already there are left as they are."""
    instance, run = getattr(context, "instance", None), getattr(context, "dagster_run", None)
    if instance is None or run is None:
        return
    missing = {k: v for k, v in run_tags(settings).items() if k not in (run.tags or {})}
    if missing:
        try:
            instance.add_run_tags(run.run_id, missing)
        except Exception:  # tags are for people; a storage that refuses them must not stop the run
            logging.getLogger(__name__).warning("could not tag run %s with its vars", run.run_id, exc_info=True)


def dbt_resource() -> DbtCliResource:
    return DbtCliResource(project_dir=DBT_PROJECT)


def resources(settings: Settings | None = None) -> dict:
    return {
        "clm": ClmSettings.from_settings(settings) if settings is not None else ClmSettings(),
        "dbt": dbt_resource(),
    }
