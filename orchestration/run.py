"""Run every asset in this process (what ``clm run`` does) and report in plain words.

``run_all`` materialises all assets with the in-process executor (one step at a time: every
step writes the same DuckDB file), prints progress lines a person can follow, and returns
a :class:`RunOutcome` whose ``reason`` names the failed asset or blocking check.
"""
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

from orchestration.resources import resources
from pipelines.config import Settings
from orchestration.defs.dbt.project import DbtError
from pipelines.warehouse import run_lock

JOB_NAME = "clm_run"
_LOGGER_KEY = "clm_progress"


@dataclass
class AssetOutcome:
    asset: str  # "raw/orders", "staging/stg_orders__orders", "serving/snapshot"
    status: str = "skipped"  # materialized | failed | skipped
    seconds: float | None = None
    rows: int | None = None  # rows loaded (raw), rows published (marts, serving)
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


def _key(key: AssetKey) -> str:
    return key.to_user_string()


def _value(metadata: dict, name: str, default=None):
    entry = metadata.get(name)
    if entry is None:
        return default
    return getattr(entry, "value", entry)


def _first_line(text: str | None) -> str:
    for line in (text or "").strip().splitlines():
        if line.strip():
            return line.strip()
    return ""


def _error_text(event: DagsterEvent) -> str:
    data = event.step_failure_data
    if data is None:
        return event.message or ""
    if data.user_failure_data is not None and data.user_failure_data.description:
        return _first_line(data.user_failure_data.description)
    error = data.error
    # the innermost cause is the user's exception; outer layers are Dagster's wrappers
    while error is not None and error.cause is not None:
        error = error.cause
    if error is None:
        return event.message or ""
    message = error.message
    if error.cls_name and message.split(":", 1)[0].endswith(error.cls_name):
        message = message.split(":", 1)[1]  # "pkg.module.SomeError: text" -> "text"
    text = _first_line(message)
    return f"{error.cls_name}: {text}" if error.cls_name else text


class _Tracker(logging.Handler):
    """Receives the run's Dagster events, prints progress lines and collects the outcome."""

    def __init__(
        self,
        progress: Callable[[str], None],
        step_assets: dict[str, list[str]],
        dbt_steps: dict[str, str],
        started: float,
    ):
        super().__init__(level=logging.DEBUG)
        self.progress = progress
        self.step_assets = step_assets
        self.dbt_steps = dbt_steps  # step key -> label
        self.started = started
        self.step_started: dict[str, float] = {}
        self.assets: dict[str, AssetOutcome] = {}
        self.failed_checks: list[str] = []
        self.failed_check_steps: set[str] = set()  # labels of steps failed by a blocking check
        self.checks_passed = 0
        self.checks_passed_by_step: dict[str, int] = {}
        self.step_failures: list[tuple[str, str]] = []  # (step label, reason)
        self.run_failure = ""

    # -- helpers -------------------------------------------------------------------------
    def _say(self, text: str) -> None:
        self.progress(f"[{time.perf_counter() - self.started:5.1f}s] {text}")

    def _label(self, step_key: str | None) -> str:
        if step_key in self.dbt_steps:
            return self.dbt_steps[step_key]
        keys = self.step_assets.get(step_key or "", [])
        return keys[0] if len(keys) == 1 else (step_key or "run")

    def _asset(self, key: str) -> AssetOutcome:
        return self.assets.setdefault(key, AssetOutcome(key))

    # -- logging.Handler -----------------------------------------------------------------
    def emit(self, record: logging.LogRecord) -> None:
        event = getattr(record, "dagster_event", None)
        if event is None:
            event = (getattr(record, "dagster_meta", None) or {}).get("dagster_event")
        if not isinstance(event, DagsterEvent):
            return
        try:
            self.on_event(event)
        except Exception:  # progress reporting must never break a run
            logging.getLogger(__name__).debug("progress handler failed", exc_info=True)

    def on_event(self, event: DagsterEvent) -> None:
        kind = event.event_type
        now = time.perf_counter()
        if kind == DagsterEventType.STEP_START:
            self.step_started[event.step_key] = now
            if event.step_key in self.dbt_steps:
                self._say(f"{self.dbt_steps[event.step_key]} started")
        elif kind == DagsterEventType.ASSET_MATERIALIZATION:
            self._on_materialization(event, now)
        elif kind == DagsterEventType.ASSET_CHECK_EVALUATION:
            self._on_check(event)
        elif kind == DagsterEventType.STEP_FAILURE:
            label, reason = self._label(event.step_key), _error_text(event)
            if "DagsterAssetCheckFailedError" in reason:
                reason = "a blocking check failed"
            self.step_failures.append((label, reason))
            keys = self.step_assets.get(event.step_key, [])
            for key in keys:
                outcome = self._asset(key)
                if len(keys) == 1:
                    outcome.status, outcome.detail = "failed", reason
                elif outcome.status != "materialized":
                    outcome.status, outcome.detail = "skipped", f"not built: {reason}"
            self._say(f"{label} FAILED: {reason}")
        elif kind == DagsterEventType.STEP_SKIPPED:
            self._say(f"{self._label(event.step_key)} skipped (an upstream step failed)")
        elif kind == DagsterEventType.STEP_SUCCESS and event.step_key in self.dbt_steps:
            built = [k for k in self.step_assets.get(event.step_key, []) if self._asset(k).status == "materialized"]
            tests = self.checks_passed_by_step.get(event.step_key, 0)
            self._say(f"{self.dbt_steps[event.step_key]} done: {len(built)} models built, {tests} tests passed")
        elif kind == DagsterEventType.RUN_FAILURE:
            self.run_failure = _first_line(event.message)

    def _on_materialization(self, event: DagsterEvent, now: float) -> None:
        mat = event.step_materialization_data.materialization
        key = _key(mat.asset_key)
        md = dict(mat.metadata or {})
        outcome = self._asset(key)
        outcome.status = "materialized"
        if mat.asset_key.path[0] == "raw":
            loaded, rejected = _value(md, "rows_loaded", 0), _value(md, "rows_rejected", 0)
            share = _value(md, "rejected_share", 0.0) or 0.0
            outcome.rows = loaded
            outcome.seconds = _value(md, "seconds")
            files = _value(md, "files_loaded", 0)
            dup = _value(md, "files_duplicate", 0)
            skipped = _value(md, "files_skipped", 0)
            extra = (f", {dup} already loaded" if dup else "") + (f", {skipped} skipped" if skipped else "")
            outcome.detail = f"{files} new file(s){extra}"
            self._say(
                f"{key}: {loaded:,} rows loaded, {rejected:,} rejected ({share:.1%}) "
                f"from {files} new file{'s' if files != 1 else ''}{extra}"
            )
            for entry in _value(md, "files", []) or []:
                if entry.get("status") == "skipped":
                    self._say(f"  {entry.get('error')}")
        elif key == "serving/snapshot":
            rows = _value(md, "rows", {}) or {}
            outcome.rows = sum(rows.values())
            outcome.seconds = _value(md, "seconds")
            for table, count in rows.items():
                mart = self._asset(f"marts/{table}")
                mart.rows = count
            self._say(
                f"{key}: {_value(md, 'tables', len(rows))} tables, {outcome.rows:,} rows "
                f"published to {_value(md, 'path', '')}"
            )
        else:
            seconds = _value(md, "Execution Duration")
            if seconds is None:
                seconds = now - self.step_started.get(event.step_key, now)
            outcome.seconds = round(float(seconds), 3)
            self._say(f"{key}: built ({outcome.seconds:.1f}s)")

    def _on_check(self, event: DagsterEvent) -> None:
        evaluation = event.event_specific_data
        if evaluation.passed:
            self.checks_passed += 1
            step = event.step_key or ""
            self.checks_passed_by_step[step] = self.checks_passed_by_step.get(step, 0) + 1
            return
        name = f"{_key(evaluation.asset_key)}:{evaluation.check_name}"
        md = dict(evaluation.metadata or {})
        detail = evaluation.description or ""
        if not detail:
            failures = _value(md, "dagster_dbt/failed_row_count") or _value(md, "failures")
            detail = f"{failures} failing rows" if failures not in (None, "") else "failed"
        blocking = bool(getattr(evaluation, "blocking", False))
        severity = getattr(getattr(evaluation, "severity", None), "value", "ERROR")
        if blocking and severity == "ERROR":
            self.failed_checks.append(f"{name}: {detail}")
            self.failed_check_steps.add(self._label(event.step_key))
            self._say(f"blocking check {name} FAILED: {detail}")
        else:
            self._say(f"check {name} warned: {detail}")


class _Discard(io.TextIOBase):
    def write(self, text: str) -> int:
        return len(text)


def _progress_logger(handler: logging.Handler):
    @logger(description="clm run progress (events only)")
    def clm_progress(_init_context):
        log = logging.getLogger(f"clm.run.progress.{id(handler)}")
        log.setLevel(logging.DEBUG)
        log.propagate = False
        log.handlers = [handler]
        return log

    return clm_progress


def _reason(tracker: _Tracker, run_succeeded: bool) -> str:
    """One line: the first failed blocking check, else the first failed step, naming any
    other failures; a summary when everything succeeded."""
    failed_steps = [label for label, _ in tracker.step_failures]
    if tracker.failed_checks:
        first = tracker.failed_checks[0]
        reason = f"blocking check {first}"
        others = [c.split(": ", 1)[0] for c in tracker.failed_checks[1:]]
        # the step of a failed blocking check fails too; name only other steps
        others += [label for label in failed_steps if label not in tracker.failed_check_steps]
    elif tracker.step_failures:
        label, why = tracker.step_failures[0]
        reason, others = f"{label} failed: {why}", failed_steps[1:]
    elif not run_succeeded:
        return tracker.run_failure or "run failed"
    else:
        built = sum(a.status == "materialized" for a in tracker.assets.values())
        return f"{built} assets materialised, {tracker.checks_passed} checks passed"
    if others:
        reason += f" (also failed: {', '.join(dict.fromkeys(others))})"
    return reason


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

    def say(line: str) -> None:  # progress reaches the real stdout even while dbt's is muted
        with contextlib.redirect_stdout(real_stdout):
            progress(line)

    started = time.perf_counter()
    try:
        # imported here: building the definitions parses the dbt project if it changed
        from orchestration.defs.dbt.assets import clm_dbt_models, clm_dbt_staging
        from orchestration.definitions import ALL_ASSETS, ALL_CHECKS
    except DbtError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        reason = f"the dbt project does not parse: {lines[-1] if lines else exc}"
        say(f"FAILED: {reason}")
        return RunOutcome(success=False, reason=reason, seconds=round(time.perf_counter() - started, 3))
    step_assets: dict[str, list[str]] = {}
    all_keys: list[str] = []
    for assets_def in ALL_ASSETS:
        keys = sorted((_key(k) for k in assets_def.keys))
        step_assets[assets_def.node_def.name] = keys
        all_keys.extend(keys)

    dbt_steps = {clm_dbt_staging.node_def.name: "dbt build (staging)",
                 clm_dbt_models.node_def.name: "dbt build (models)"}
    tracker = _Tracker(say, step_assets, dbt_steps, started)
    defs = Definitions(
        assets=ALL_ASSETS,
        asset_checks=ALL_CHECKS,
        jobs=[define_asset_job(JOB_NAME)],
        resources=resources(settings),
        loggers={_LOGGER_KEY: _progress_logger(tracker)},
        executor=in_process_executor,
    )
    job = defs.resolve_job_def(JOB_NAME)
    say(
        f"clm run: landing {settings.landing_dir}, warehouse {settings.warehouse_dir}, "
        f"as_of_date {settings.vars['as_of_date']}"
    )
    instance = _instance()
    quiet = contextlib.nullcontext() if verbose else contextlib.redirect_stdout(_Discard())
    try:
        with warnings.catch_warnings(), quiet:
            warnings.simplefilter("ignore")
            result = job.execute_in_process(
                instance=instance,
                raise_on_error=False,
                run_config={"loggers": {_LOGGER_KEY: {}}},
            )
    finally:
        instance.dispose()

    for key in all_keys:
        outcome = tracker._asset(key)
        if outcome.status == "skipped" and not outcome.detail:
            outcome.detail = "not run: an upstream asset or blocking check failed"
    elapsed = round(time.perf_counter() - started, 3)
    not_run = [tracker._label(step) for step in step_assets if step not in tracker.step_started]
    # Every asset must have been materialised: a skipped step is a failure, not a success.
    succeeded = result.success and not tracker.failed_checks and not not_run
    if not_run:
        say(f"[{elapsed:5.1f}s] not run (upstream failed): {', '.join(not_run)}")
    reason = _reason(tracker, succeeded)
    if not succeeded and not_run and reason.endswith("checks passed"):
        reason = f"not run: {', '.join(not_run)}"
    say(f"[{elapsed:5.1f}s] {'OK' if succeeded else 'FAILED'}: {reason}")
    return RunOutcome(
        success=succeeded,
        reason=reason,
        assets={k: tracker.assets[k] for k in sorted(tracker.assets)},
        failed_checks=list(tracker.failed_checks),
        checks_passed=tracker.checks_passed,
        run_id=result.run_id,
        seconds=elapsed,
    )
