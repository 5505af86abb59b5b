"""Running the whole pipeline (`clm run`) from a test on a landing folder of its own."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest


def query(db: Path, sql: str) -> list[tuple]:
    """Rows of ``sql`` on the DuckDB file ``db``, opened read-only for the query only."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def run_clm(root: Path, vars_json: str) -> int:
    """`clm run` on ``root/landing`` into ``root/warehouse`` with CLM_VARS ``vars_json``; the exit code."""
    from orchestration.cli import main

    mp = pytest.MonkeyPatch()
    mp.setenv("CLM_LANDING_DIR", str(root / "landing"))
    mp.setenv("CLM_WAREHOUSE_DIR", str(root / "warehouse"))
    mp.setenv("CLM_VARS", vars_json)
    try:
        return main(["run"])
    finally:
        mp.undo()


CLM = Path(sys.executable).parent / "clm"  # the console script, as a user runs it


def clm(*args: str, root: Path | None = None, vars_json: str | None = None, env: dict | None = None,
        timeout: float = 900) -> subprocess.CompletedProcess:
    """Run the `clm` console script in a subprocess (landing and warehouse under ``root``)."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CLM_")}
    if root is not None:
        environ["CLM_LANDING_DIR"] = str(root / "landing")
        environ["CLM_WAREHOUSE_DIR"] = str(root / "warehouse")
    if vars_json is not None:
        environ["CLM_VARS"] = vars_json
    environ.update(env or {})
    return subprocess.run([str(CLM), *args], env=environ, capture_output=True, text=True, timeout=timeout,
                          check=False)
