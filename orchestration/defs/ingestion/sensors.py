"""Landing-folder sensor: request a run of all assets when new export files arrive.

A file is "new" when its content hash (sha256, streamed) has not been seen before, so a
re-delivered byte copy under another name does not trigger a run (the loader would skip
it anyway). Hashes are cached in the cursor by (path, size, mtime): unchanged files are
not re-read on every tick. The sensor never opens the DuckDB warehouse: a run holds its
write lock. A run it requests carries the vars of its environment (``orchestration.defs.schedules``);
while another run holds the warehouse it waits, leaving the new files unseen.
"""
import hashlib
import json
import time
from pathlib import Path

from dagster import (
    DagsterRunStatus,
    DefaultSensorStatus,
    RunsFilter,
    SensorEvaluationContext,
    SensorResult,
    sensor,
)

from orchestration.defs.schedules import ALL_ASSETS_JOB_NAME, all_assets_job, busy_reason, run_request_for
from pipelines.config import ConfigError, Settings
from pipelines.raw.files import hash_file, list_landing_files
from pipelines.contract import SOURCES

# Files modified more recently than this may still be being written; look again next tick.
MIN_FILE_AGE_SECONDS = 30
CURSOR_VERSION = 1
_IN_PROGRESS = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
]


def parse_cursor(cursor: str | None) -> tuple[dict[str, list], set[str]]:
    """(file cache {path: [size, mtime_ns, sha256]}, seen hashes) from a cursor string."""
    if not cursor:
        return {}, set()
    try:
        data = json.loads(cursor)
        if data.get("v") != CURSOR_VERSION:
            return {}, set()
        return dict(data.get("files") or {}), set(data.get("seen") or [])
    except (ValueError, AttributeError, TypeError):
        return {}, set()


def dump_cursor(files: dict[str, list], seen: set[str]) -> str:
    return json.dumps(
        {"v": CURSOR_VERSION, "files": files, "seen": sorted(seen)},
        sort_keys=True,
        separators=(",", ":"),
    )


def scan_landing(
    landing_dir: Path,
    cache: dict[str, list],
    min_age_seconds: float = MIN_FILE_AGE_SECONDS,
    now: float | None = None,
) -> dict[str, list]:
    """Current settled landing files as {path: [size, mtime_ns, sha256]}, re-hashing only
    files whose (size, mtime) differ from ``cache``."""
    now = time.time() if now is None else now
    files: dict[str, list] = {}
    for source in SOURCES:
        for path in list_landing_files(landing_dir, source).files:
            try:
                st = path.stat()
            except OSError:
                continue  # vanished meanwhile
            if now - st.st_mtime < min_age_seconds:
                continue
            key = str(path)
            cached = cache.get(key)
            if cached and cached[0] == st.st_size and cached[1] == st.st_mtime_ns:
                files[key] = cached
                continue
            try:
                digest = hash_file(path)
            except OSError:
                continue
            files[key] = [st.st_size, st.st_mtime_ns, digest]
    return files


def run_key_for(hashes) -> str:
    return hashlib.sha256("\n".join(sorted(hashes)).encode()).hexdigest()


def _run_in_progress(context: SensorEvaluationContext) -> bool:
    try:
        instance = context.instance
    except Exception:  # built without an instance (tests)
        return False
    runs = instance.get_runs(
        filters=RunsFilter(job_name=ALL_ASSETS_JOB_NAME, statuses=_IN_PROGRESS), limit=1
    )
    return bool(runs)


@sensor(
    name="landing_files",
    job=all_assets_job,
    minimum_interval_seconds=60,
    default_status=DefaultSensorStatus.RUNNING,
    description="Runs all assets when files with unseen content arrive in CLM_LANDING_DIR/<source>/.",
)
def landing_files_sensor(context: SensorEvaluationContext):
    try:
        settings = Settings.from_env()
        landing_dir = settings.landing_dir
    except ConfigError as exc:
        return SensorResult(skip_reason=f"invalid settings: {exc}", cursor=context.cursor)
    cache, seen = parse_cursor(context.cursor)
    files = scan_landing(landing_dir, cache)
    new_hashes = sorted({entry[2] for entry in files.values()} - seen)
    if not new_hashes:
        return SensorResult(skip_reason="no new landing files", cursor=dump_cursor(files, seen))
    busy = "a run is in progress" if _run_in_progress(context) else busy_reason(settings)
    if busy:
        # keep the hash cache, but leave the new hashes unseen until the run has finished
        return SensorResult(
            skip_reason=f"{len(new_hashes)} new file(s) waiting: {busy}",
            cursor=dump_cursor(files, seen),
        )
    new_files = sorted(Path(p).relative_to(landing_dir).as_posix() for p, e in files.items() if e[2] in new_hashes)
    context.log.info(f"{len(new_hashes)} new landing file(s): {', '.join(new_files[:10])}")
    return SensorResult(
        run_requests=[
            run_request_for(settings, run_key=run_key_for(new_hashes),
                            tags={"clm/trigger": "landing_files", "clm/new_files": str(len(new_hashes))})
        ],
        cursor=dump_cursor(files, seen | set(new_hashes)),
    )
