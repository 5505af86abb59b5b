"""Great Expectations quality gates for the standardised staging tables.

Each ``staging.stg_*`` model has a suite (:data:`SUITES`): key columns not null
and unique, e-mail shape (the contract's one pattern, which staging normalises to),
E.164 phones, ISO 3166-1 alpha-2 countries and ISO 4217 currencies (value sets
passed in by the caller, read from the dbt seeds),
timestamps between 1990-01-01 and the day after ``as_of_date``, money >= 0,
survey scores in range per survey type, enums in their sets.

Usage (the caller reads only :func:`required_columns` from DuckDB)::

    ctx = make_context(warehouse_dir / "gx")        # once per process
    res = validate_table("stg_orders__orders", df, as_of_date=..., country_codes=...,
                         currency_codes=..., context=ctx)
    res.success, res.metadata()                       # counts only

Personal data: results are requested with ``result_format`` BASIC and
``partial_unexpected_count`` 0, so neither :class:`QualityResult`, the stored
validation results ever hold a checked value (e-mails and
phones are personal data); they hold counts and percentages only.

Design notes
- ``great_expectations`` takes several seconds to import, so it is imported
  lazily: importing this module (for :data:`SUITES` or :func:`required_columns`)
  stays cheap.
- The context is an *ephemeral* GX context: suites, the pandas data source and
  validation definitions live in memory and are registered from the code of this
  module once per context (never stale, nothing shared to race on between the
  processes of a Dagster run). Only validation results are persisted, as JSON
  files under ``<project_dir>/validations/`` with unique names, so results from
  several processes of a run sit side by side.
- Parameters that change per run (``as_of_date``, the ISO value sets) are GX suite
  parameters (``{"$PARAMETER": ...}``), so suites are built once and reused.
- Frames are brought to the dtypes GX evaluates vectorised before validation:
  GX's pandas ``between`` falls back to a per-row Python ``map`` unless a column is
  ``int64``/``float64``/``datetime64[ns]`` (DuckDB returns ``datetime64[us]``,
  ``int32`` and nullable ``Int32``), and pandas leaves pyarrow's RE2 for Python's
  ``re`` when a pattern uses ``\\s`` or ``\\d``, so the patterns avoid them.
- GX fingerprints every pandas batch under 1 GB by hashing all of it (about 2 s
  per 2M rows); the fingerprint is metadata only, so it is switched off.
- Throughput (``python -m pipelines.staging.quality 2000000``): about 1.7M rows/s for the
  11 orders expectations on one core; the key-uniqueness check (a pandas factorize
  of the string key) is half of it. A context is not meant to be shared by threads
  validating at the same time; use one per thread or run tables one after another.
"""
from __future__ import annotations

import datetime as dt
import logging
import os
import re
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from pipelines.contract import DEAL_STAGES, EMAIL_PATTERN, ORDER_STATUSES, SCORE_RANGES, SURVEY_TYPES

# Before great_expectations is ever imported (the Makefile exports it too).
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------
# Rules
# --------------------------------------------------------------------------------------

#: The shape of a normalised e-mail: the contract's one rule, which staging's macro
#: ``normalise_email`` applies too (pipelines.contract.EMAIL_PATTERN), so the gate passes
#: every e-mail staging kept and fails one that staging did not normalise. No ``\s``/``\d``
#: in patterns: pandas would evaluate those with Python's ``re`` (5x slower) instead of
#: pyarrow's RE2.
EMAIL_REGEX = EMAIL_PATTERN
#: E.164: ``+``, a non-zero country-code digit, 7 to 15 digits in all (ASCII digits only).
PHONE_REGEX = r"^\+[1-9][0-9]{6,14}$"

#: Earliest plausible timestamp in any source.
EARLIEST_DATE = dt.date(1990, 1, 1)  # before the commercial web: a default or typo, not a real record


#: Suite parameters supplied at validation time.
P_COUNTRIES = "country_codes"
P_CURRENCIES = "currency_codes"
P_EARLIEST = "earliest_timestamp"
P_LATEST = "latest_timestamp"

_KINDS = ("not_null", "unique", "compound_unique", "regex", "in_set", "between", "timestamp")


@dataclass(frozen=True)
class Check:
    """One expectation, GX-independent so that importing this module stays cheap.

    kind: ``not_null`` | ``unique`` | ``compound_unique`` | ``regex`` | ``in_set`` |
    ``between`` (numbers) | ``timestamp`` (between ``EARLIEST_DATE`` and the day after
    ``as_of_date``). ``value_set_param`` names a set passed in at validation time
    (``country_codes``/``currency_codes``) instead of a fixed ``value_set``.
    ``when`` restricts the check to rows where ``column == value``.
    """

    name: str
    kind: str
    columns: tuple[str, ...]
    regex: str | None = None
    value_set: tuple[Any, ...] | None = None
    value_set_param: str | None = None
    min_value: float | None = None
    max_value: float | None = None
    strict_min: bool = False
    when: tuple[str, str] | None = None

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"unknown check kind {self.kind!r}")

    @property
    def column(self) -> str:
        return self.columns[0]

    @property
    def needed_columns(self) -> tuple[str, ...]:
        return self.columns + ((self.when[0],) if self.when else ())


@dataclass(frozen=True)
class SuiteSpec:
    table: str
    checks: tuple[Check, ...]

    @property
    def columns(self) -> tuple[str, ...]:
        """Every column the suite reads, in first-use order."""
        seen: dict[str, None] = {}
        for check in self.checks:
            for col in check.needed_columns:
                seen.setdefault(col, None)
        return tuple(seen)

    def columns_of_kind(self, *kinds: str) -> set[str]:
        return {c.column for c in self.checks if c.kind in kinds}


# Small builders so that the suites below read like the rules.
def _not_null(col: str) -> Check:
    return Check(f"{col} not null", "not_null", (col,))


def _key(col: str) -> tuple[Check, Check]:
    return _not_null(col), Check(f"{col} unique", "unique", (col,))


def _compound_key(*cols: str) -> Check:
    return Check(f"{'+'.join(cols)} unique", "compound_unique", tuple(cols))


def _email(col: str) -> Check:
    return Check(f"{col} e-mail shape", "regex", (col,), regex=EMAIL_REGEX)


def _phone(col: str) -> Check:
    return Check(f"{col} E.164", "regex", (col,), regex=PHONE_REGEX)


def _country(col: str = "country") -> Check:
    return Check(f"{col} ISO 3166-1 alpha-2", "in_set", (col,), value_set_param=P_COUNTRIES)


def _currency(col: str = "currency") -> Check:
    return Check(f"{col} ISO 4217", "in_set", (col,), value_set_param=P_CURRENCIES)


def _timestamp(col: str) -> Check:
    return Check(f"{col} in range", "timestamp", (col,))


def _non_negative(col: str) -> Check:
    return Check(f"{col} >= 0", "between", (col,), min_value=0)


def _enum(col: str, values: Iterable[str]) -> Check:
    return Check(f"{col} in set", "in_set", (col,), value_set=tuple(values))


def _spec(table: str, *checks: Check | tuple[Check, ...]) -> SuiteSpec:
    flat: list[Check] = []
    for item in checks:
        flat.extend(item if isinstance(item, tuple) else (item,))
    names = [c.name for c in flat]
    assert len(names) == len(set(names)), f"duplicate check names in {table}"
    return SuiteSpec(table, tuple(flat))


SUITES: dict[str, SuiteSpec] = {
    spec.table: spec
    for spec in (
        _spec(
            "stg_crm_contacts__contacts",
            _key("contact_id"),
            _timestamp("created_at"),
            _timestamp("updated_at"),
            _email("email"),
            _phone("phone"),
            _country(),
            _email("referred_by_email"),
            Check("lead_score 0-100", "between", ("lead_score",), min_value=0, max_value=100),
            Check("marketing_consent boolean", "in_set", ("marketing_consent",),
                  value_set=(True, False)),
        ),
        _spec(
            "stg_crm_deals__deals",
            _key("deal_id"),
            _not_null("contact_id"),
            _timestamp("created_at"),
            _timestamp("closed_at"),
            _enum("deal_stage", DEAL_STAGES),
            _currency(),
            _non_negative("amount"),
        ),
        _spec(
            "stg_web_events__events",
            _key("event_id"),
            _timestamp("event_at"),
            _not_null("anonymous_id"),
            _email("email"),
            _country(),
        ),
        _spec(
            "stg_orders__orders",
            _key("order_id"),
            _timestamp("ordered_at"),
            _email("email"),
            _phone("phone"),
            _country(),
            _currency(),
            _enum("status", ORDER_STATUSES),
            _non_negative("total_amount"),
            _non_negative("discount_amount"),
            _non_negative("refunded_amount"),
        ),
        _spec(
            "stg_marketing_spend__spends",
            _not_null("spend_date"),
            _not_null("channel"),
            _compound_key("spend_date", "channel", "campaign"),
            _timestamp("spend_date"),
            _currency(),
            _non_negative("spend"),
        ),
        _spec(
            "stg_surveys__responses",
            _key("response_id"),
            _timestamp("responded_at"),
            _enum("survey_type", SURVEY_TYPES),
            *(
                Check(f"score {kind} {lo}-{hi}", "between", ("score",), min_value=lo,
                      max_value=hi, when=("survey_type", kind))
                for kind, (lo, hi) in SCORE_RANGES.items()
            ),
            _email("email"),
        ),
        _spec(
            "stg_fx_rates__rates",
            _not_null("rate_date"),
            _not_null("currency"),
            _compound_key("rate_date", "currency"),
            _timestamp("rate_date"),
            _currency(),
            Check("rate_to_reporting > 0", "between", ("rate_to_reporting",), min_value=0,
                  strict_min=True),
        ),
    )
}


def _spec_for(table: str) -> SuiteSpec:
    name = table.split(".")[-1]  # accept "staging.stg_x" as well as "stg_x"
    try:
        return SUITES[name]
    except KeyError:
        raise KeyError(f"no quality suite for table {table!r}; known: {', '.join(SUITES)}") from None


def required_columns(table: str) -> list[str]:
    """The columns :func:`validate_table` needs for ``table`` (read only these)."""
    return list(_spec_for(table).columns)


# --------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------


@dataclass
class QualityResult:
    """Outcome of one suite on one frame. Holds counts only, never data values."""

    table: str
    success: bool
    rows: int
    seconds: float
    results: list[dict] = field(default_factory=list)

    @property
    def failed(self) -> list[dict]:
        return [r for r in self.results if not r["success"]]

    def metadata(self) -> dict:
        """Flat, JSON-serialisable metadata for a Dagster asset check (counts only)."""
        meta: dict[str, Any] = {
            "table": self.table,
            "rows": self.rows,
            "seconds": round(self.seconds, 3),
            "rows_per_second": int(self.rows / self.seconds) if self.seconds > 0 else 0,
            "expectations": len(self.results),
            "failed_expectations": len(self.failed),
        }
        for r in self.results:
            if r["unexpected_count"] is not None:
                meta[f"unexpected: {r['check']}"] = r["unexpected_count"]
            if "error" in r:
                meta[f"error: {r['check']}"] = r["error"]
        if self.failed:
            meta["failed_checks"] = ", ".join(r["check"] for r in self.failed)
        return meta


_ERROR_CLASS = re.compile(r"^(?:[\w.]+\.)?(\w+(?:Error|Exception))\b", re.MULTILINE)


def _exception_class(info: Any) -> str | None:
    """Class name of the first (root-cause) exception in GX's exception_info, if any.

    ``exception_info`` is one ``{"raised_exception", "exception_message",
    "exception_traceback"}`` dict, or a dict of them keyed by metric. Messages are
    never passed on: they can quote data values.
    """
    if not info:
        return None
    if isinstance(info, dict) and "raised_exception" in info:
        if not info.get("raised_exception"):
            return None
        match = _ERROR_CLASS.search(info.get("exception_traceback") or "")
        return match.group(1) if match else "Exception"
    if isinstance(info, dict):
        for value in info.values():
            if found := _exception_class(value):
                return found
        return None
    if getattr(info, "raised_exception", False):  # ExceptionInfo object
        match = _ERROR_CLASS.search(getattr(info, "exception_traceback", None) or "")
        return match.group(1) if match else "Exception"
    return None


def _summarise(check: Check, gx_result: Any) -> dict:
    """The counts of one ExpectationValidationResult; drops every value GX returned."""
    config = gx_result.expectation_config
    kwargs = config.kwargs
    res = gx_result.result or {}
    out = {
        "check": check.name,
        "expectation": config.type,
        "columns": list(kwargs.get("column_list") or [kwargs.get("column")]),
        "success": bool(gx_result.success),
        "element_count": res.get("element_count"),
        "unexpected_count": res.get("unexpected_count"),
        "unexpected_percent": res.get("unexpected_percent"),
    }
    if check.when:
        out["condition"] = f"{check.when[0]} == {check.when[1]!r}"
    if error := _exception_class(gx_result.exception_info):
        out["success"] = False
        out["error"] = error
    return out


# --------------------------------------------------------------------------------------
# Great Expectations plumbing (lazy)
# --------------------------------------------------------------------------------------

RESULT_FORMAT = {
    "result_format": "BASIC",
    "partial_unexpected_count": 0,
    "include_unexpected_rows": False,
}
DATASOURCE = "clm_staging"
BATCH_DEFINITION = "whole_frame"

_lock = threading.RLock()
_contexts: dict[str | None, Any] = {}  # make_context cache, by resolved project dir
_registries: dict[int, tuple[Any, dict[str, Any]]] = {}  # id(context) -> (context, defs)
_project_dirs: dict[int, Path | None] = {}


def _gx():
    import great_expectations as gx
    import great_expectations.execution_engine.pandas_execution_engine as pandas_engine

    # The per-batch fingerprint hashes the whole frame (~1 s per 1M rows) and only
    # ends up in batch_markers metadata.
    if getattr(pandas_engine, "HASH_THRESHOLD", 0) > 0:
        pandas_engine.HASH_THRESHOLD = 0
    return gx


def make_context(project_dir: Path | None = None):
    """An ephemeral GX context whose validation results persist in ``project_dir``.

    ``project_dir`` (e.g. ``<warehouse_dir>/gx``) receives ``validations/*.json``;
    ``None`` keeps results in memory. Cached per directory, so call it freely.
    """
    key = str(Path(project_dir).resolve()) if project_dir is not None else None
    with _lock:
        if key in _contexts:
            return _contexts[key]
        gx = _gx()
        from great_expectations.data_context.types.base import (
            DataContextConfig,
            InMemoryStoreBackendDefaults,
            ProgressBarsConfig,
        )

        defaults = InMemoryStoreBackendDefaults()
        stores = defaults.stores
        if key is not None:
            results_dir = Path(key) / "validations"
            results_dir.mkdir(parents=True, exist_ok=True)
            stores[defaults.validation_results_store_name]["store_backend"] = {
                "class_name": "TupleFilesystemStoreBackend",
                "base_directory": str(results_dir),
            }
        config = DataContextConfig(
            stores=stores,
            expectations_store_name=defaults.expectations_store_name,
            validation_results_store_name=defaults.validation_results_store_name,
            checkpoint_store_name=defaults.checkpoint_store_name,
            data_docs_sites={},
            analytics_enabled=False,
            progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
        )
        context = gx.get_context(project_config=config, mode="ephemeral")
        _contexts[key] = context
        _project_dirs[id(context)] = Path(key) if key is not None else None
        return context


def _expectation(check: Check):
    gx = _gx()
    E = gx.expectations
    common: dict[str, Any] = {"meta": {"check": check.name}}
    if check.when:
        from great_expectations.expectations.row_conditions import Column

        common["row_condition"] = Column(check.when[0]) == check.when[1]
    col = check.column
    if check.kind == "not_null":
        return E.ExpectColumnValuesToNotBeNull(column=col, **common)
    if check.kind == "unique":
        return E.ExpectColumnValuesToBeUnique(column=col, **common)
    if check.kind == "compound_unique":
        return E.ExpectCompoundColumnsToBeUnique(column_list=list(check.columns), **common)
    if check.kind == "regex":
        return E.ExpectColumnValuesToMatchRegex(column=col, regex=check.regex, **common)
    if check.kind == "in_set":
        value_set = (
            {"$PARAMETER": check.value_set_param} if check.value_set_param else list(check.value_set)
        )
        return E.ExpectColumnValuesToBeInSet(column=col, value_set=value_set, **common)
    if check.kind == "between":
        return E.ExpectColumnValuesToBeBetween(
            column=col, min_value=check.min_value, max_value=check.max_value,
            strict_min=check.strict_min, **common,
        )
    if check.kind == "timestamp":
        return E.ExpectColumnValuesToBeBetween(
            column=col, min_value={"$PARAMETER": P_EARLIEST},
            max_value={"$PARAMETER": P_LATEST}, strict_max=True, **common,
        )
    raise AssertionError(check.kind)


def _definitions(context) -> dict[str, Any]:
    """Validation definitions of every suite, registered once per context."""
    with _lock:
        entry = _registries.get(id(context))
        if entry is not None and entry[0] is context:
            return entry[1]
        gx = _gx()
        try:
            datasource = context.data_sources.get(DATASOURCE)
        except (KeyError, ValueError, LookupError):
            datasource = context.data_sources.add_pandas(DATASOURCE)
        defs: dict[str, Any] = {}
        for table, spec in SUITES.items():
            try:
                asset = datasource.get_asset(table)
            except LookupError:
                asset = datasource.add_dataframe_asset(table)
            try:
                batch_def = asset.get_batch_definition(BATCH_DEFINITION)
            except (KeyError, ValueError, LookupError):
                batch_def = asset.add_batch_definition_whole_dataframe(BATCH_DEFINITION)
            suite = gx.ExpectationSuite(
                name=table,
                expectations=[_expectation(c) for c in spec.checks],
                meta={"source": "pipelines.staging.quality"},
            )
            suite = context.suites.add_or_update(suite)
            vd = gx.ValidationDefinition(name=table, data=batch_def, suite=suite)
            defs[table] = context.validation_definitions.add_or_update(vd)
        _registries[id(context)] = (context, defs)
        return defs


# --------------------------------------------------------------------------------------
# Frame preparation: dtypes GX evaluates vectorised
# --------------------------------------------------------------------------------------

# Whole seconds, representable in every datetime64 unit (ns covers 1677..2262).
_NS_LOW = pd.Timestamp("1678-01-01")
_NS_HIGH = pd.Timestamp("2262-01-01")


def _as_ns_timestamps(s: pd.Series) -> pd.Series:
    if not (pd.api.types.is_datetime64_any_dtype(s.dtype)):
        try:
            s = pd.to_datetime(s)  # DATE as objects, ISO strings
        except (TypeError, ValueError, OverflowError):
            return s  # leave it; GX reports the expectation as failed with an exception
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        s = s.dt.tz_convert("UTC").dt.tz_localize(None)
    if s.dtype != np.dtype("datetime64[ns]"):
        # Out-of-ns-range values stay out of the checked range after clipping.
        if (s < _NS_LOW).any() or (s > _NS_HIGH).any():
            s = s.clip(lower=_NS_LOW, upper=_NS_HIGH)
        s = s.astype("datetime64[ns]")
    return s


def _as_float(s: pd.Series) -> pd.Series:
    if s.dtype in (np.dtype("float64"), np.dtype("int64")):
        return s
    try:
        values = pd.to_numeric(s)
    except (TypeError, ValueError):
        return s  # leave it; GX reports the expectation as failed with an exception
    if pd.api.types.is_bool_dtype(values.dtype):
        return s
    return pd.Series(values.to_numpy(dtype="float64", na_value=np.nan), index=s.index, name=s.name)


def _prepare(spec: SuiteSpec, df: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in spec.columns if c not in df.columns]
    if missing:
        raise ValueError(f"{spec.table}: frame lacks columns {', '.join(missing)}")
    frame = df.loc[:, list(spec.columns)]  # never mutates the caller's frame
    conversions = {}
    for col in spec.columns_of_kind("timestamp"):
        conversions[col] = _as_ns_timestamps(frame[col])
    for col in spec.columns_of_kind("between"):
        conversions[col] = _as_float(frame[col])
    if conversions:
        frame = frame.assign(**conversions)
    return frame


# --------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------


def validate_table(
    table: str,
    df: pd.DataFrame,
    *,
    as_of_date: dt.date,
    country_codes: set[str],
    currency_codes: set[str],
    context=None,
    earliest_date: dt.date = EARLIEST_DATE,
    run_name: str | None = None,
) -> QualityResult:
    """Run ``table``'s suite on ``df`` (only :func:`required_columns` are read).

    Timestamps must lie in ``[earliest_date, as_of_date + 2 days)``, i.e. on or
    before the calendar day after ``as_of_date`` (UTC, naive). ``context`` defaults
    to a process-wide in-memory context; pass :func:`make_context` to keep results
    on disk. ``run_name`` (e.g. the Dagster run id) groups the stored results.
    """
    spec = _spec_for(table)
    started = time.perf_counter()
    context = context if context is not None else make_context(None)
    definition = _definitions(context)[spec.table]
    frame = _prepare(spec, df)

    earliest = dt.datetime.combine(earliest_date, dt.time())
    latest = max(dt.datetime.combine(as_of_date + dt.timedelta(days=2), dt.time()), earliest)
    parameters = {
        P_COUNTRIES: sorted(country_codes),
        P_CURRENCIES: sorted(currency_codes),
        P_EARLIEST: earliest.isoformat(),
        P_LATEST: latest.isoformat(),
    }
    from great_expectations.core.run_identifier import RunIdentifier

    run_id = RunIdentifier(run_name=run_name, run_time=dt.datetime.now(dt.timezone.utc))
    try:
        gx_result = definition.run(
            batch_parameters={"dataframe": frame},
            expectation_parameters=parameters,
            result_format=dict(RESULT_FORMAT),
            run_id=run_id,
        )
    finally:
        _release_batches(context)
    checks = {c.name: c for c in spec.checks}
    results = []
    for r in gx_result.results:
        name = (r.expectation_config.meta or {}).get("check")
        results.append(_summarise(checks[name], r))
    order = {c.name: i for i, c in enumerate(spec.checks)}
    results.sort(key=lambda r: order[r["check"]])
    return QualityResult(
        table=spec.table,
        success=bool(gx_result.success) and all(r["success"] for r in results),
        rows=len(frame),
        seconds=time.perf_counter() - started,
        results=results,
    )


def _release_batches(context) -> None:
    """Drop the frames GX keeps after a validation.  The pandas execution engine caches each
    batch's data until the next batch of the same asset replaces it, so without this the
    largest staging frame (49M web events at 1M customers: 5-7 GB) stays in the process after
    the gates, for every later step of the run."""
    with _lock:
        try:
            manager = context.data_sources.get(DATASOURCE).get_execution_engine().batch_manager
            manager.batch_data_cache.clear()
            manager.reset_batch_cache()
        except Exception as exc:  # pragma: no cover - GX internals moved; memory only, not results
            log.warning("could not release GX's batch cache (%s)", type(exc).__name__)


def prune_validation_results(context, keep_runs: int) -> int:
    """Delete all but the newest ``keep_runs`` stored results per suite; returns deletions."""
    project_dir = _project_dirs.get(id(context))
    if project_dir is None:
        return 0
    removed = 0
    root = project_dir / "validations"
    for suite_dir in (p for p in root.iterdir() if p.is_dir()) if root.exists() else ():
        # <suite>/<run_name>/<run_time %Y%m%dT%H%M%S.%fZ>/<batch>.json: run_time sorts.
        runs = sorted(
            (p for p in suite_dir.glob("*/*") if p.is_dir()), key=lambda p: p.name, reverse=True
        )
        for old in runs[keep_runs:]:
            shutil.rmtree(old, ignore_errors=True)
            removed += 1
        for run_dir in suite_dir.iterdir():
            if run_dir.is_dir() and not any(run_dir.iterdir()):
                run_dir.rmdir()
    return removed


# --------------------------------------------------------------------------------------
# Throughput measurement: python -m pipelines.staging.quality [ROWS]
# --------------------------------------------------------------------------------------


def synthetic_orders(rows: int, seed: int = 0) -> pd.DataFrame:
    """A clean ``stg_orders__orders`` frame with DuckDB's dtypes (``datetime64[us]``)."""
    rng = np.random.default_rng(seed)
    ids = np.arange(rows)
    customer = rng.integers(0, max(rows // 3, 1), rows)
    countries = np.array(["DE", "AT", "CH", "FR", "NL", "US", "GB"])
    currencies = np.array(["EUR", "EUR", "CHF", "EUR", "EUR", "USD", "GBP"])
    geo = rng.integers(0, len(countries), rows)
    seconds = rng.integers(0, 3 * 365 * 86_400, rows)
    total = np.round(rng.gamma(2.0, 40.0, rows), 2)
    return pd.DataFrame(
        {
            "order_id": pd.array(np.char.add("o-", ids.astype(str)), dtype="str"),
            "ordered_at": (np.datetime64("2023-01-01T00:00:00", "us")
                           + seconds.astype("timedelta64[s]")).astype("datetime64[us]"),
            "email": pd.array(np.char.add(np.char.add("customer", customer.astype(str)),
                                          "@example.com"), dtype="str"),
            "phone": pd.array(np.char.add("+4915", (10_000_000 + customer).astype(str)), dtype="str"),
            "country": pd.array(countries[geo], dtype="str"),
            "currency": pd.array(currencies[geo], dtype="str"),
            "status": pd.array(np.array(ORDER_STATUSES)[rng.integers(0, 5, rows)], dtype="str"),
            "total_amount": total,
            "discount_amount": np.round(total * rng.random(rows) * 0.1, 2),
            "refunded_amount": np.zeros(rows),
        }
    )


def main(argv: list[str] | None = None) -> None:
    import argparse
    import sys

    parser = argparse.ArgumentParser(description="Measure validate_table throughput.")
    parser.add_argument("rows", nargs="?", type=int, default=2_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    _gx()
    print(f"import great_expectations: {time.perf_counter() - started:.1f} s")
    df = synthetic_orders(args.rows)
    started = time.perf_counter()
    context = make_context(None)
    _definitions(context)
    print(f"context + suites: {time.perf_counter() - started:.2f} s")
    countries = {"DE", "AT", "CH", "FR", "NL", "US", "GB"}
    currencies = {"EUR", "CHF", "USD", "GBP"}
    for _ in range(args.repeat):
        res = validate_table("stg_orders__orders", df, as_of_date=dt.date(2025, 12, 31),
                             country_codes=countries, currency_codes=currencies, context=context)
        print(f"{res.rows:,} rows, {len(res.results)} expectations: {res.seconds:.2f} s, "
              f"{res.rows / res.seconds:,.0f} rows/s, success={res.success}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
