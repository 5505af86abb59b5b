"""Runtime configuration: folders from the environment, business-rule vars.

The defaults of the business rules live in ``dbt_project/dbt_project.yml`` (``vars:``);
``CLM_VARS`` (a JSON object) overrides them. :class:`BusinessRules` is the one definition of
each var's type and range: every value is validated here, before anything is written, and a
bad one is a :class:`ConfigError` with a one-line reason (``clm`` exits 2). ``as_of_date`` is
resolved here (today in ``reporting_timezone`` when not set) so that Python and dbt evaluate
everything on the same day. The validated values reach SQL only as quoted literals: the
loader quotes them (``pipelines.warehouse.quote_literal``), dbt models through the macros of
``dbt_project/macros/vars.sql``.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipelines.contract import SOURCES

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"


class ConfigError(ValueError):
    """A setting is malformed; the message names the setting."""


Days = Annotated[int, Field(ge=1, le=36500)]


class BusinessRules(BaseModel):
    """The vars of CONTRACT section 5 with their types and ranges (strict: "abc", 90.0 or true
    are no day counts; unknown names are refused, so that a typo never falls back to a
    default)."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    as_of_date: dt.date | None = None
    reporting_timezone: str
    reporting_currency: str
    at_risk_after_days: Days
    churn_after_days: Days
    loyal_min_orders: Annotated[int, Field(ge=1, le=100000)]
    loyal_window_days: Days
    opportunity_min_lead_score: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    high_intent_window_days: Days
    conversion_window_days: Days
    session_timeout_minutes: Annotated[int, Field(ge=1, le=1440)]
    trial_days: Days
    max_rejected_share: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
    churn_risk_horizon_days: Days
    risk_band_medium: Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)]
    risk_band_high: Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)]
    audience_holdout_share: Annotated[float, Field(ge=0, lt=1, allow_inf_nan=False)]
    cart_abandon_hours: Annotated[int, Field(ge=1, le=24 * 365)]
    replenishment_grace_days: Days
    reason_recent_days: Days
    reason_survey_days: Days
    declining_window_days: Days
    nps_detractor_max: Annotated[int, Field(ge=0, le=10)]
    ces_high_effort_max: Annotated[int, Field(ge=1, le=7)]
    attribution_lookback_days: Days
    attribution_max_touches: Annotated[int, Field(ge=1, le=1000)]
    time_decay_half_life_days: Annotated[int, Field(ge=1, le=36500)]
    source_timezones: dict[str, str] = Field(default_factory=dict)
    source_date_formats: dict[str, str] = Field(default_factory=dict)

    @field_validator("as_of_date", mode="before")
    @classmethod
    def _iso_date(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        try:
            parsed = dt.date.fromisoformat(value)
        except ValueError:
            parsed = None
        if parsed is None or len(value) != 10:
            raise ValueError(f"must be a date written YYYY-MM-DD (got {value[:40]!r})")
        return parsed

    @field_validator("reporting_currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        if not re.fullmatch("[A-Z]{3}", value):
            raise ValueError(f"must be a three-letter ISO 4217 code such as EUR (got {value[:40]!r})")
        return value

    @field_validator("reporting_timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        return _zone(value)

    @field_validator("source_timezones")
    @classmethod
    def _source_timezones(cls, value: dict[str, str]) -> dict[str, str]:
        _known_sources(value)
        return {source: _zone(tz) for source, tz in value.items()}

    @field_validator("source_date_formats")
    @classmethod
    def _source_formats(cls, value: dict[str, str]) -> dict[str, str]:
        _known_sources(value)
        for source, fmt in value.items():
            if "%" not in fmt or len(fmt) > 100:
                raise ValueError(f"the format of {source} must be a strptime format such as %d/%m/%Y "
                                 f"(got {fmt[:40]!r})")
        return value

    @model_validator(mode="after")
    def _order(self) -> "BusinessRules":
        if self.at_risk_after_days >= self.churn_after_days:
            raise ValueError("at_risk_after_days must be smaller than churn_after_days "
                             f"(got {self.at_risk_after_days} and {self.churn_after_days})")
        if self.risk_band_medium >= self.risk_band_high:
            raise ValueError("risk_band_medium must be smaller than risk_band_high "
                             f"(got {self.risk_band_medium} and {self.risk_band_high})")
        return self


def _zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except Exception:  # ZoneInfoNotFoundError, ValueError for malformed keys
        raise ValueError(f"unknown timezone {name!r}") from None
    return name


def _known_sources(value: dict) -> None:
    unknown = sorted(set(value) - set(SOURCES))
    if unknown:
        raise ValueError(f"unknown source {unknown[0]!r} (sources: {', '.join(SOURCES)})")


def default_vars() -> dict:
    with open(DBT_PROJECT_DIR / "dbt_project.yml", encoding="utf-8") as fh:
        return dict(yaml.safe_load(fh)["vars"])


def _one_line(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(p) for p in error["loc"])
    message = error["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, "):]
    elif error["type"] == "extra_forbidden":
        return f"CLM_VARS has an unknown var {where!r} (known: {', '.join(BusinessRules.model_fields)})"
    else:
        shown = repr(error.get("input"))
        message = f"{message[0].lower()}{message[1:]} (got {shown if len(shown) <= 60 else shown[:57] + '...'})"
    return f"CLM_VARS: {where}: {message}" if where else f"CLM_VARS: {message}"


def resolve_vars(overrides: dict | str | None = None, today: dt.date | None = None) -> dict:
    """Defaults from dbt_project.yml, overridden by ``overrides`` (dict or JSON text),
    validated by :class:`BusinessRules`; raises ConfigError with a one-line reason."""
    values = default_vars()
    if isinstance(overrides, str):
        try:
            overrides = json.loads(overrides) if overrides.strip() else {}
        except json.JSONDecodeError as exc:
            raise ConfigError(f"CLM_VARS is not valid JSON: {exc}") from None
    overrides = overrides or {}
    if not isinstance(overrides, dict):
        raise ConfigError("CLM_VARS must be a JSON object")
    values.update(overrides)
    try:
        rules = BusinessRules(**values)
    except ValidationError as exc:
        raise ConfigError(_one_line(exc)) from None
    resolved = rules.model_dump(mode="json")
    if rules.as_of_date is None:
        now = dt.datetime.now(ZoneInfo(rules.reporting_timezone))
        resolved["as_of_date"] = (today or now.date()).isoformat()
    return resolved


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
