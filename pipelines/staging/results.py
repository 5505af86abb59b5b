"""The quality gates' latest results kept in the warehouse (``raw._quality_results``), so that
people can read them offline: ``marts.fct_quality_checks`` and the report's quality section.
Counts only, never a checked value."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

from pipelines.staging.quality import QualityResult
from pipelines.warehouse import connect, quote_literal

TABLE = "raw._quality_results"


def record_quality_results(warehouse_path: Path, results: dict[str, QualityResult], run_id: str) -> int:
    """Replace the stored results of the gates in ``results`` with these; returns rows written."""
    checked = quote_literal(dt.datetime.now(dt.timezone.utc).replace(tzinfo=None).isoformat(sep=" "))
    rows = []
    for gate, result in results.items():
        for r in result.results:
            failures = r.get("unexpected_count")
            rows.append("(" + ", ".join([
                quote_literal(gate), quote_literal(r["check"]), str(int(result.rows)),
                "NULL" if failures is None else str(int(failures)), "true" if r["success"] else "false",
                quote_literal(run_id), f"{checked}::TIMESTAMP"]) + ")")
    con = connect(warehouse_path)
    try:
        con.execute("CREATE SCHEMA IF NOT EXISTS raw")
        con.execute(f"""CREATE TABLE IF NOT EXISTS {TABLE} (
            gate VARCHAR NOT NULL, expectation VARCHAR NOT NULL, rows_checked BIGINT NOT NULL, failures BIGINT,
            passed BOOLEAN NOT NULL, run_id VARCHAR NOT NULL, checked_at TIMESTAMP NOT NULL)""")
        con.execute("BEGIN TRANSACTION")
        gates = ", ".join(quote_literal(g) for g in results) or "NULL"
        con.execute(f"DELETE FROM {TABLE} WHERE gate IN ({gates})")
        if rows:
            con.execute(f"INSERT INTO {TABLE} VALUES {', '.join(rows)}")
        con.execute("COMMIT")
    finally:
        con.close()
    return len(rows)
