"""Runtime configuration: folders from the environment, business-rule vars.

The defaults of the business rules live in ``dbt_project/dbt_project.yml``
(``vars:``); ``CLM_VARS`` (a JSON object) overrides them. ``as_of_date`` is
resolved here (today in ``reporting_timezone`` when not set) so that Python and
dbt evaluate everything on the same day.
"""
from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"


class ConfigError(ValueError):
    """A setting is malformed; the message names the setting."""


def default_vars() -> dict:
    with open(DBT_PROJECT_DIR / "dbt_project.yml", encoding="utf-8") as fh:
        return dict(yaml.safe_load(fh)["vars"])


def resolve_vars(overrides: dict | str | None = None, today: dt.date | None = None) -> dict:
    """Defaults from dbt_project.yml, overridden by ``overrides`` (dict or JSON text).

    Unknown keys are an error (a typo must not silently fall back to a default).
    """
    values = default_vars()
    if isinstance(overrides, str):
        try:
            overrides = json.loads(overrides) if overrides.strip() else {}
        except json.JSONDecodeError as exc:
            raise ConfigError(f"CLM_VARS is not valid JSON: {exc}") from exc
    overrides = overrides or {}
    if not isinstance(overrides, dict):
        raise ConfigError("CLM_VARS must be a JSON object")
    unknown = sorted(set(overrides) - set(values))
    if unknown:
        raise ConfigError(f"CLM_VARS has unknown keys: {', '.join(unknown)}")
    values.update(overrides)
    try:
        ZoneInfo(values["reporting_timezone"])
        for tz in (values.get("source_timezones") or {}).values():
            ZoneInfo(tz)
    except Exception as exc:  # ZoneInfoNotFoundError, ValueError
        raise ConfigError(f"unknown timezone in CLM_VARS: {exc}") from exc
    if values.get("as_of_date") in (None, ""):
        now = dt.datetime.now(ZoneInfo(values["reporting_timezone"]))
        values["as_of_date"] = (today or now.date()).isoformat()
    else:
        try:
            values["as_of_date"] = dt.date.fromisoformat(str(values["as_of_date"])).isoformat()
        except ValueError as exc:
            raise ConfigError(f"as_of_date must be YYYY-MM-DD, got {values['as_of_date']!r}") from exc
    values["source_timezones"] = dict(values.get("source_timezones") or {})
    values["source_date_formats"] = dict(values.get("source_date_formats") or {})
    return values


@dataclass(frozen=True)
class Settings:
    landing_dir: Path
    warehouse_dir: Path
    vars: dict

    @classmethod
    def from_env(cls, env: dict | None = None) -> "Settings":
        env = os.environ if env is None else env
        landing = Path(env.get("CLM_LANDING_DIR") or PROJECT_ROOT / "data" / "landing")
        warehouse = Path(env.get("CLM_WAREHOUSE_DIR") or PROJECT_ROOT / "data" / "warehouse")
        return cls(
            landing_dir=landing.resolve(),
            warehouse_dir=warehouse.resolve(),
            vars=resolve_vars(env.get("CLM_VARS")),
        )

    @property
    def warehouse_path(self) -> Path:
        return self.warehouse_dir / "clm.duckdb"

    @property
    def serving_path(self) -> Path:
        return self.warehouse_dir / "serving.duckdb"

    def source_timezone(self, source: str) -> str:
        return self.vars["source_timezones"].get(source, self.vars["reporting_timezone"])

    def source_date_format(self, source: str) -> str | None:
        return self.vars["source_date_formats"].get(source)

    @cached_property
    def dbt_vars_json(self) -> str:
        return json.dumps(self.vars, sort_keys=True)
