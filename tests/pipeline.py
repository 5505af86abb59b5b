"""Running the whole pipeline (`clm run`) from a test on a landing folder of its own."""
from __future__ import annotations

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
    from pipelines.cli import main

    mp = pytest.MonkeyPatch()
    mp.setenv("CLM_LANDING_DIR", str(root / "landing"))
    mp.setenv("CLM_WAREHOUSE_DIR", str(root / "warehouse"))
    mp.setenv("CLM_VARS", vars_json)
    try:
        return main(["run"])
    finally:
        mp.undo()
