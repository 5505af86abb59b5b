"""Run every asset in this process (what ``clm run`` does) and report in plain words.

``run_all`` materialises all assets with the in-process executor (one step at a time: every
step writes the same DuckDB file). While the run goes, each event Dagster reports is turned
into one progress line by :func:`progress_line`; the hook that receives the events is a Dagster
logger (``@logger``, Dagster's documented way to receive a run's events as they happen).
Afterwards the :class:`RunOutcome` is read from the run's result (``ExecuteInProcessResult``):
materialisations, check evaluations and step failures, whose ``reason`` names the failed asset
or blocking check in one line.
"""
from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

from dagster import (
    AssetKey,
    DagsterEvent,
    DagsterEventType,
    DagsterInstance,
    Definitions,
    define_asset_job,
    in_process_executor,
    logger,
)
from dagster_dbt.errors import DagsterDbtCliRuntimeError

from orchestration.defs.dbt.project import dbt_error_reason, prepare_manifest
from orchestration.resources import resources
from pipelines.config import Settings
from pipelines.warehouse import run_lock

JOB_NAME = "clm_run"
_LOGGER_KEY = "clm_progress"


@dataclass
class AssetOutcome:
    asset: str  # "raw/orders", "staging/stg_orders__orders", "serving/snapshot"
    status: str = "skipped"  # materialized | failed | skipped
    seconds: float | None = None
    rows: int | None = None  # rows loaded (raw), rows published (serving, and each mart in it)
    detail: str = ""


@dataclass
class RunOutcome:
    success: bool
    reason: str  # one line: what failed first, or a summary on success
    assets: dict[str, AssetOutcome] = field(default_factory=dict)
    failed_checks: list[str] = field(default_factory=list)  # "asset:check: description"
    checks_passed: int = 0
    run_id: str = ""
    seconds: float = 0.0
    not_run: list[str] = field(default_factory=list)  # steps that never started (an upstream failure)


def _value(metadata: dict, name: str, default=None):
    entry = (metadata or {}).get(name)
    return default if entry is None else getattr(entry, "value", entry)


def _first_line(text: str | None) -> str:
    return next((line.strip() for line in (text or "").splitlines() if line.strip()), "")


def error_text(event: DagsterEvent) -> str:
    """One line for a failed step: the innermost cause (the user's exception), not Dagster's wrappers."""
    data = event.step_failure_data
    if data is None:
        return _first_line(event.message)
    if data.user_failure_data is not None and data.user_failure_data.description:
        return _first_line(data.user_failure_data.description)
    error = data.error
    while error is not None and error.cause is not None:
        error = error.cause
    if error is None:
        return _first_line(event.message)
    message = error.message
    if error.cls_name and message.split(":", 1)[0].endswith(error.cls_name):
        message = message.split(":", 1)[1]  # "pkg.module.SomeError: text" -> "text"
    text = _first_line(message)
    if "DagsterAssetCheckFailedError" in (error.cls_name or "") + text:
        return "a blocking check failed"
    return f"{error.cls_name}: {text}" if error.cls_name else text


def _check_detail(evaluation) -> str:
    if evaluation.description:
        return evaluation.description
    failures = _value(evaluation.metadata, "dagster_dbt/failed_row_count") or _value(evaluation.metadata, "failures")
    return f"{failures} failing rows" if failures not in (None, "") else "failed"


def _is_blocking_error(evaluation) -> bool:
    severity = getattr(getattr(evaluation, "severity", None), "value", "ERROR")
    return bool(getattr(evaluation, "blocking", False)) and severity == "ERROR"


def progress_line(event: DagsterEvent, labels: dict[str, str]) -> str | None:
    """The progress line for one event of the run (None for events not worth a line).
    ``labels``: step key -> what a person calls the step ("dbt build (models)", "raw/orders")."""
    kind, step = event.event_type, event.step_key or ""
    label = labels.get(step, step or "run")
    if kind == DagsterEventType.STEP_START and label.startswith("dbt build"):
        return f"{label} started"
    if kind == DagsterEventType.STEP_SUCCESS and label.startswith("dbt build"):
        return f"{label} done"
    if kind == DagsterEventType.STEP_FAILURE:
        return f"{label} FAILED: {error_text(event)}"
    if kind == DagsterEventType.STEP_SKIPPED:
        return f"{label} skipped (an upstream step failed)"
    if kind == DagsterEventType.ASSET_CHECK_EVALUATION:
        evaluation = event.event_specific_data
        if evaluation.passed:
            return None
        name = f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"
        return (f"blocking check {name} FAILED: {_check_detail(evaluation)}" if _is_blocking_error(evaluation)
                else f"check {name} warned: {_check_detail(evaluation)}")
    if kind != DagsterEventType.ASSET_MATERIALIZATION:
        return None
    mat = event.step_materialization_data.materialization
    key, md = mat.asset_key.to_user_string(), mat.metadata or {}
    if mat.asset_key.path[0] == "raw":
        files, dup, skipped = (_value(md, n, 0) for n in ("files_loaded", "files_duplicate", "files_skipped"))
        extra = (f", {dup} already loaded" if dup else "") + (f", {skipped} skipped" if skipped else "")
        lines = [f"{key}: {_value(md, 'rows_loaded', 0):,} rows loaded, {_value(md, 'rows_rejected', 0):,} rejected "
                 f"({_value(md, 'rejected_share', 0.0) or 0.0:.1%}) from {files} new file{'s' if files != 1 else ''}"
                 f"{extra}"]
        lines += [f"  {f.get('error')}" for f in _value(md, "files", []) or [] if f.get("status") == "skipped"]
        return "\n".join(lines)
    if key == "serving/snapshot":
        rows = _value(md, "rows", {}) or {}
        return f"{key}: {_value(md, 'tables', len(rows))} tables, {sum(rows.values()):,} rows published to " \
               f"{_value(md, 'path', '')}"
    seconds = _value(md, "Execution Duration")
    return f"{key}: built" + (f" ({float(seconds):.1f}s)" if seconds is not None else "")


class _Forward(logging.Handler):
    """Hands the Dagster events of the run to a callback (the run's logger is nothing else)."""

    def __init__(self, on_event: Callable[[DagsterEvent], None]):
        super().__init__(level=logging.DEBUG)
        self.on_event = on_event

    def emit(self, record: logging.LogRecord) -> None:
        event = getattr(record, "dagster_event", None) or (getattr(record, "dagster_meta", None) or {}).get(
            "dagster_event")
        if isinstance(event, DagsterEvent):
            try:
                self.on_event(event)
            except Exception:  # progress reporting must never break a run
                logging.getLogger(__name__).debug("progress line failed", exc_info=True)


def _progress_logger(on_event: Callable[[DagsterEvent], None]):
    @logger(description="clm run progress (events only)")
    def clm_progress(_init_context):
        log = logging.getLogger(f"clm.run.progress.{id(on_event)}")
        log.setLevel(logging.DEBUG)
        log.propagate = False
        log.handlers = [_Forward(on_event)]
        return log

    return clm_progress


def outcome_of(result, step_assets: dict[str, list[str]], labels: dict[str, str]) -> RunOutcome:
    """The run's outcome from its result: every asset's status, the failed checks, one reason."""
    assets = {key: AssetOutcome(key) for keys in step_assets.values() for key in keys}
    for event in result.get_asset_materialization_events():
        mat = event.step_materialization_data.materialization
        outcome = assets.setdefault(mat.asset_key.to_user_string(), AssetOutcome(mat.asset_key.to_user_string()))
        md = mat.metadata or {}
        outcome.status = "materialized"
        if mat.asset_key.path[0] == "raw":
            outcome.rows, outcome.seconds = _value(md, "rows_loaded"), _value(md, "seconds")
        elif outcome.asset == "serving/snapshot":
            rows = _value(md, "rows", {}) or {}
            outcome.rows, outcome.seconds = sum(rows.values()), _value(md, "seconds")
            for table, count in rows.items():
                assets.setdefault(f"marts/{table}", AssetOutcome(f"marts/{table}")).rows = count
        else:
            seconds = _value(md, "Execution Duration")
            outcome.seconds = round(float(seconds), 3) if seconds is not None else None
    failed_checks, failed_check_steps, passed = [], set(), 0
    for event in result.all_events:
        if event.event_type != DagsterEventType.ASSET_CHECK_EVALUATION:
            continue
        evaluation = event.event_specific_data
        if evaluation.passed:
            passed += 1
        elif _is_blocking_error(evaluation):
            failed_checks.append(f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}: "
                                 f"{_check_detail(evaluation)}")
            failed_check_steps.add(labels.get(event.step_key, event.step_key))
    step_failures = []
    for event in result.get_step_failure_events():
        label, why = labels.get(event.step_key, event.step_key), error_text(event)
        step_failures.append((label, why))
        keys = step_assets.get(event.step_key, [])
        for key in keys:
            if len(keys) == 1:
                assets[key].status, assets[key].detail = "failed", why
            elif assets[key].status != "materialized":
                assets[key].detail = f"not built: {why}"
    started = {e.step_key for e in result.all_events if e.event_type == DagsterEventType.STEP_START}
    not_run = [labels.get(step, step) for step in step_assets if step not in started]
    for outcome in assets.values():
        if outcome.status == "skipped" and not outcome.detail:
            outcome.detail = "not run: an upstream asset or blocking check failed"
    # Every asset must have been materialised: a skipped step is a failure, not a success.
    success = result.success and not failed_checks and not not_run
    failed_steps = [label for label, _ in step_failures]
    if failed_checks:
        reason = f"blocking check {failed_checks[0]}"
        others = [c.split(": ", 1)[0] for c in failed_checks[1:]]
        others += [label for label in failed_steps if label not in failed_check_steps]
    elif step_failures:
        reason = f"{step_failures[0][0]} failed: {step_failures[0][1]}"
        others = failed_steps[1:]
    elif not_run:
        reason, others = f"not run: {', '.join(not_run)}", []
    elif not result.success:
        reason, others = "run failed", []
    else:
        built = sum(a.status == "materialized" for a in assets.values())
        reason, others = f"{built} assets materialised, {passed} checks passed", []
    if others:
        reason += f" (also failed: {', '.join(dict.fromkeys(others))})"
    return RunOutcome(success=success, reason=reason, assets=dict(sorted(assets.items())),
                      failed_checks=failed_checks, checks_passed=passed, run_id=result.run_id, not_run=not_run)


class _Discard(io.TextIOBase):
    def write(self, text: str) -> int:
        return len(text)


def _instance() -> DagsterInstance:
    if os.environ.get("DAGSTER_HOME"):
        return DagsterInstance.get()
    return DagsterInstance.ephemeral()


def run_all(
    settings: Settings, progress: Callable[[str], None] = print, verbose: bool = False
) -> RunOutcome:
    """Materialise every asset in-process; never raises for a failed asset or check.

    Holds the warehouse's run lock throughout (raises WarehouseBusy when another run holds
    it). Without ``verbose`` the dbt console output that dagster-dbt echoes to stdout is
    swallowed (each run's dbt log is in ``<warehouse>/dbt/logs/<run id>/dbt.log``); progress
    lines still reach the real stdout.
    """
    with run_lock(settings.warehouse_dir, "clm run"):
        return _run_all(settings, progress, verbose)


def _run_all(settings: Settings, progress: Callable[[str], None], verbose: bool) -> RunOutcome:
    real_stdout = sys.stdout
    started = time.perf_counter()

    def say(line: str) -> None:  # progress reaches the real stdout even while dbt's is muted
        with contextlib.redirect_stdout(real_stdout):
            for part in line.splitlines():
                progress(f"[{time.perf_counter() - started:5.1f}s] {part}")

    try:
        prepare_manifest()
    except DagsterDbtCliRuntimeError as exc:
        reason = f"the dbt project does not parse: {dbt_error_reason(str(exc)) or _first_line(str(exc))}"
        say(f"FAILED: {reason}")
        return RunOutcome(success=False, reason=reason, seconds=round(time.perf_counter() - started, 3))
    from orchestration.defs.dbt.assets import clm_dbt_models, clm_dbt_staging
    from orchestration.definitions import ALL_ASSETS, ALL_CHECKS

    step_assets = {a.node_def.name: sorted(k.to_user_string() for k in a.keys) for a in ALL_ASSETS}
    labels = {step: keys[0] if len(keys) == 1 else step for step, keys in step_assets.items()}
    labels.update({clm_dbt_staging.node_def.name: "dbt build (staging)", clm_dbt_models.node_def.name: "dbt build (models)"})

    def on_event(event: DagsterEvent) -> None:
        line = progress_line(event, labels)
        if line:
            say(line)

    defs = Definitions(
        assets=ALL_ASSETS,
        asset_checks=ALL_CHECKS,
        jobs=[define_asset_job(JOB_NAME)],
        resources=resources(settings),
        loggers={_LOGGER_KEY: _progress_logger(on_event)},
        executor=in_process_executor,
    )
    say(f"clm run: landing {settings.landing_dir}, warehouse {settings.warehouse_dir}, "
        f"as_of_date {settings.vars['as_of_date']}")
    instance = _instance()
    quiet = contextlib.nullcontext() if verbose else contextlib.redirect_stdout(_Discard())
    try:
        with warnings.catch_warnings(), quiet:
            warnings.simplefilter("ignore")
            result = defs.resolve_job_def(JOB_NAME).execute_in_process(
                instance=instance, raise_on_error=False, run_config={"loggers": {_LOGGER_KEY: {}}})
    finally:
        instance.dispose()
    outcome = outcome_of(result, step_assets, labels)
    outcome.seconds = round(time.perf_counter() - started, 3)
    if outcome.not_run:
        say(f"not run (upstream failed): {', '.join(outcome.not_run)}")
    say(f"{'OK' if outcome.success else 'FAILED'}: {outcome.reason}")
    return outcome
