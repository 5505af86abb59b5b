"""The dbt project as Dagster sees it (``DbtProject``), which dbt to run, and DuckDB's memory
limit inside dbt.

The Dagster definitions are built from the project's manifest. ``DBT_PROJECT.prepare_if_dev()``
re-parses it under ``dagster dev`` (so edited models appear in the UI); ``prepare_manifest()``
parses it for ``make setup`` and before every ``clm run`` (dbt's partial parsing makes that
cheap when nothing changed), so a run never builds from a manifest older than the models.

dbt runs as a subprocess (never in this process' DuckDB connection): DuckDB allows one
writer per database file, so Python must not hold a connection to the warehouse while
dbt runs.
"""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from dagster_dbt import DbtProject

from pipelines.config import DBT_PROJECT_DIR



def _this_virtualenvs_dbt_on_path() -> None:
    """dagster-dbt runs ``dbt`` from PATH; a virtualenv used without activation (``.venv/bin/clm``,
    ``.venv/bin/dagster dev``) has its dbt next to its Python, so that folder goes first."""
    folder = str(Path(sys.executable).parent)
    if (Path(folder) / "dbt").exists() and os.environ.get("PATH", "").split(os.pathsep)[0] != folder:
        os.environ["PATH"] = folder + os.pathsep + os.environ.get("PATH", "")


_this_virtualenvs_dbt_on_path()
DBT_PROJECT = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR, target_path="target")
DBT_PROJECT.prepare_if_dev()


def prepare_manifest() -> Path:
    """Parse the dbt project into ``dbt_project/target/manifest.json`` (raises dagster-dbt's
    DagsterDbtCliRuntimeError with dbt's output when the project does not parse)."""
    DBT_PROJECT.preparer.prepare(DBT_PROJECT)
    return DBT_PROJECT.manifest_path


# Share of the machine's memory DuckDB may use inside a dbt run (its own default is 80 %). The
# Polars models run in the same process, and the orchestrating process beside it: at 1M
# customers the stage-spell model and DuckDB's pages together outgrew a 24 GB machine with
# DuckDB's default (docs/BENCHMARKS.md). Beyond the limit DuckDB spills to disk.
DUCKDB_MEMORY_SHARE = 0.4


def duckdb_memory_limit() -> str:
    """DuckDB's ``memory_limit`` for dbt runs: ``CLM_DUCKDB_MEMORY_LIMIT`` if set (e.g. ``12GB``),
    else DUCKDB_MEMORY_SHARE of the physical memory."""
    configured = os.environ.get("CLM_DUCKDB_MEMORY_LIMIT", "").strip()
    if configured:
        return configured
    import psutil

    return f"{int(psutil.virtual_memory().total * DUCKDB_MEMORY_SHARE / 2**20)}MiB"


def dbt_error_reason(text: str) -> str:
    """The first line that says what went wrong in dbt's error output (after dagster-dbt's
    "Errors parsed from dbt logs:"), skipping headings such as "Encountered an error:"."""
    marker = "Errors parsed from dbt logs:"
    detail = text.split(marker, 1)[1] if marker in text else text
    for line in detail.splitlines():
        line = line.strip()
        if not line or line.endswith(":") or line.startswith("The dbt CLI process"):
            continue
        line = re.sub(r"\s*See also https?://\S+$", "", line)
        return line[:300]
    return ""


def mart_descriptions(schema: str = "marts") -> dict:
    """The dbt docs of every model in ``schema``: table -> {"description", "columns": {name: text}}
    (what the serving snapshot puts on its tables and columns as comments)."""
    import json

    manifest = json.loads(DBT_PROJECT.manifest_path.read_text())
    return {node["alias"] or node["name"]: {
        "description": node.get("description") or "",
        "columns": {name: col.get("description") or "" for name, col in (node.get("columns") or {}).items()},
    } for node in manifest["nodes"].values() if node["resource_type"] == "model" and node.get("schema") == schema}
