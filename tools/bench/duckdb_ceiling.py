"""What DuckDB itself reaches on one landing CSV, next to the project's loader.

    .venv/bin/python -m tools.bench.duckdb_ceiling data/bench/large/landing/orders/orders_2023_2024_part001.csv

Measures, each on a fresh database and best of ``--repeat`` runs:

1. reading the file (``count(*)``, all columns as text), the *ingest floor* of ``make bench``;
2. reading it with DuckDB's own type detection (``count(*)``);
3. ``CREATE TABLE AS SELECT * FROM read_csv(...)`` into an in-memory database;
4. the same into a database file, checkpointed (what *any* loader into DuckDB storage pays
   at least: no header matching, no line numbers, no rejected rows, no lineage columns);
5. ``COPY ... TO`` a Parquet file (the alternative raw layer);
6. the project's loader (``pipelines.raw.load.load_source``) on a landing folder holding
   only this file.

Prints seconds, MB/s per core (``--cores``, default this machine's cores) and rows/s. Malformed lines are
skipped by 1-5 (``ignore_errors``) and quarantined by 6.
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import duckdb


from pipelines.config import Settings
from pipelines.raw.load import load_source
from pipelines.warehouse import quote_literal


def timed_sql(db: str | None, sql: str, checkpoint: bool = False) -> float:
    if db and os.path.exists(db):
        os.remove(db)
    con = duckdb.connect(db or ":memory:")
    try:
        start = time.perf_counter()
        con.execute(sql)
        if checkpoint:
            con.execute("CHECKPOINT")
        return time.perf_counter() - start
    finally:
        con.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("csv", type=Path, help="a landing CSV file (UTF-8)")
    ap.add_argument("--source", default="orders", help="the landing source the file belongs to")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--cores", type=int, default=os.cpu_count() or 2)
    args = ap.parse_args(argv)
    path = quote_literal(str(args.csv.resolve()))
    mb = args.csv.stat().st_size / 1e6
    floor = f"SELECT count(*) FROM read_csv({path}, all_varchar = true, ignore_errors = true)"
    rows = duckdb.execute(floor).fetchone()[0]  # also brings the file into the page cache
    scan = f"read_csv({path}, ignore_errors = true)"
    with tempfile.TemporaryDirectory(prefix="ceiling-") as tmp:
        db = str(Path(tmp) / "t.duckdb")
        parquet = str(Path(tmp) / "t.parquet")
        steps = [
            ("read, all text (the ingest floor)", lambda: timed_sql(None, floor)),
            ("read, DuckDB's own types", lambda: timed_sql(None, f"SELECT count(*) FROM {scan}")),
            ("CREATE TABLE AS, in memory", lambda: timed_sql(None, f"CREATE TABLE t AS SELECT * FROM {scan}")),
            ("CREATE TABLE AS, database file", lambda: timed_sql(db, f"CREATE TABLE t AS SELECT * FROM {scan}",
                                                                 checkpoint=True)),
            ("COPY TO Parquet", lambda: timed_sql(None, f"COPY (SELECT * FROM {scan}) TO '{parquet}' "
                                                        "(FORMAT parquet)")),
        ]

        def loader() -> float:
            landing, warehouse = Path(tmp) / "landing", Path(tmp) / "warehouse"
            shutil.rmtree(landing, ignore_errors=True)
            shutil.rmtree(warehouse, ignore_errors=True)
            (landing / args.source).mkdir(parents=True)
            shutil.copy(args.csv, landing / args.source / args.csv.name)
            settings = Settings.from_env({"CLM_LANDING_DIR": str(landing), "CLM_WAREHOUSE_DIR": str(warehouse)})
            start = time.perf_counter()
            result = load_source(settings, args.source)
            seconds = time.perf_counter() - start
            if result.failed_files:
                raise SystemExit(result.failed_files[0].error)
            return seconds

        steps.append(("the project's loader (load_source)", loader))
        print(f"{args.csv.name}: {mb:,.0f} MB, {rows:,} records, {args.cores} cores")
        print(f"{'step':44s} {'seconds':>8s} {'MB/s/core':>10s} {'rows/s':>12s}")
        for label, run in steps:
            seconds = min(run() for _ in range(args.repeat))
            print(f"{label:44s} {seconds:8.2f} {mb / seconds / args.cores:10.1f} {rows / seconds:12,.0f}",
                  flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
