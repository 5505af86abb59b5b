"""Helpers around the dbt project: where it is, which dbt to run, a fresh manifest.

dbt runs as a subprocess (never in this process' DuckDB connection): DuckDB allows one
writer per database file, so Python must not hold a connection to the warehouse while
dbt runs.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from pipelines.config import DBT_PROJECT_DIR

DBT_PROFILES_DIR = DBT_PROJECT_DIR
DBT_TARGET_DIR = DBT_PROJECT_DIR / "target"
MANIFEST_PATH = DBT_TARGET_DIR / "manifest.json"

# What the manifest is built from; a newer file here makes the manifest stale.
_INPUT_DIRS = ("models", "macros", "seeds", "tests", "snapshots", "analyses")
_INPUT_FILES = ("dbt_project.yml", "profiles.yml", "packages.yml", "dependencies.yml")


class DbtError(RuntimeError):
    """A dbt command failed; the message carries dbt's output."""


def dbt_executable() -> str:
    """The dbt of this virtualenv (next to the running Python), else dbt on PATH."""
    candidate = Path(sys.executable).parent / ("dbt.exe" if os.name == "nt" else "dbt")
    if candidate.exists():
        return str(candidate)
    found = shutil.which("dbt")
    if found:
        return found
    raise DbtError("dbt executable not found (expected next to the Python interpreter or on PATH)")


def _newest_input_mtime(project_dir: Path) -> float:
    newest = 0.0
    for name in _INPUT_FILES:
        path = project_dir / name
        if path.exists():
            newest = max(newest, path.stat().st_mtime)
    for name in _INPUT_DIRS:
        folder = project_dir / name
        if not folder.is_dir():
            continue
        for path in folder.rglob("*"):
            # a directory's mtime changes when a file is added, renamed or deleted
            newest = max(newest, path.stat().st_mtime)
        newest = max(newest, folder.stat().st_mtime)
    return newest


def manifest_is_stale(manifest_path: Path = MANIFEST_PATH, project_dir: Path = DBT_PROJECT_DIR) -> bool:
    if not manifest_path.exists():
        return True
    return manifest_path.stat().st_mtime < _newest_input_mtime(project_dir)


# Share of the machine's memory DuckDB may use inside a dbt run (its own default is 80 %). The
# Polars models run in the same process, and the orchestrating process beside it: at 1M
# customers the stage-spell model needs 7.5 GB of its own while DuckDB had kept 8 GB of pages,
# and the run was killed for memory on a 24 GB machine. Beyond the limit DuckDB spills to disk.
DUCKDB_MEMORY_SHARE = 0.4


def duckdb_memory_limit() -> str:
    """DuckDB's ``memory_limit`` for dbt runs: ``CLM_DUCKDB_MEMORY_LIMIT`` if set (e.g. ``12GB``),
    else DUCKDB_MEMORY_SHARE of the physical memory."""
    configured = os.environ.get("CLM_DUCKDB_MEMORY_LIMIT", "").strip()
    if configured:
        return configured
    import psutil

    return f"{int(psutil.virtual_memory().total * DUCKDB_MEMORY_SHARE / 2**20)}MiB"


def dbt_env(warehouse_dir: Path | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    if warehouse_dir is not None:
        env["CLM_WAREHOUSE_DIR"] = str(Path(warehouse_dir).resolve())
    return env


@contextlib.contextmanager
def _parse_lock(target_dir: Path):
    """Serialise concurrent parses (UI code server and run workers may start together)."""
    target_dir.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # Windows: no lock; parses there are rare and idempotent
        yield
        return
    with open(target_dir / ".parse.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ensure_manifest(force: bool = False) -> Path:
    """Path of ``dbt_project/target/manifest.json``, running ``dbt parse`` first when it is
    missing or older than any model, macro, seed, test or project file (or ``force``)."""
    if not force and not manifest_is_stale():
        return MANIFEST_PATH
    with _parse_lock(DBT_TARGET_DIR):
        if force or manifest_is_stale():
            cmd = [
                dbt_executable(),
                "parse",
                "--project-dir",
                str(DBT_PROJECT_DIR),
                "--profiles-dir",
                str(DBT_PROFILES_DIR),
                "--target-path",
                str(DBT_TARGET_DIR),
                "--quiet",
            ]
            proc = subprocess.run(
                cmd,
                cwd=DBT_PROJECT_DIR,
                env=dbt_env(),
                capture_output=True,
                text=True,
                check=False,
            )
            if proc.returncode != 0 or not MANIFEST_PATH.exists():
                output = (proc.stdout + proc.stderr).strip()
                raise DbtError(f"dbt parse failed (exit code {proc.returncode}):\n{output}")
            # dbt keeps the manifest's mtime if nothing changed; mark it fresh explicitly
            os.utime(MANIFEST_PATH)
    return MANIFEST_PATH
