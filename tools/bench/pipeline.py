"""``make bench SCALE=small|medium|large``: generate demo data, run the pipeline, report.

Prints per-stage seconds, rows per second, MB/s per core, peak memory, the
*ingest floor* (seconds DuckDB needs to read every landing file once, counting
rows, on all cores) and the pipeline's ingestion time as a multiple of it; then the
lifecycle micro-benchmarks of ``tools.bench.lifecycle`` (stage spells, the monthly
stage grid, the cohort grid in Polars vs pandas vs DuckDB) for as many persons.
This is a measurement script, not a test: numbers go into docs/BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time
from pathlib import Path

import duckdb

from pipelines.config import PROJECT_ROOT, Settings, resolve_vars
from pipelines.raw.files import inspect_file, list_landing_files
from pipelines.warehouse import quote_literal
from pipelines.contract import SOURCES

SCALES = {"tiny": 200, "small": 10_000, "medium": 100_000, "large": 1_000_000}
AS_OF = "2025-12-31"


def _peak_rss_mb() -> tuple[float, float]:
    self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return self_kb / 1024, children_kb / 1024


def ensure_data(landing: Path, customers: int, seed: int) -> tuple[float | None, dict]:
    """Generate the landing set unless the same one is already there."""
    manifest = landing / "_truth" / "manifest.json"
    if manifest.exists():
        meta = json.loads(manifest.read_text())
        if meta.get("customers") == customers and meta.get("seed") == seed:
            return None, meta["rows"]
    from tools.demo.generate import generate

    started = time.perf_counter()
    summary = generate(landing, customers, seed)
    return time.perf_counter() - started, {s: summary.get(s, 0) for s in SOURCES}


def ingest_floor(landing: Path) -> tuple[float, int, int]:
    """Seconds for DuckDB to read every landing file once (all columns as text)."""
    con = duckdb.connect()
    total_seconds, total_bytes, total_rows = 0.0, 0, 0
    seen: set[str] = set()
    for source in SOURCES:
        for path in list_landing_files(landing, source).files:
            info = inspect_file(path, landing)
            if info.content_hash in seen:  # a re-delivered copy is not read by the pipeline either
                continue
            seen.add(info.content_hash)
            p = quote_literal(str(path))
            comp = "'gzip'" if info.compressed else "'none'"
            json_comp = "'gzip'" if info.compressed else "'uncompressed'"
            if info.format == "parquet":
                sql = f"SELECT count(*) FROM read_parquet({p})"
            elif info.format in ("json", "ndjson"):
                fmt = "'array'" if info.format == "json" else "'newline_delimited'"
                sql = (f"SELECT count(*) FROM read_json_objects({p}, format={fmt}, compression={json_comp}, "
                       "ignore_errors=true)")
            else:
                enc = "latin-1" if info.encoding != "utf-8" else "utf-8"
                sql = (f"SELECT count(*) FROM read_csv({p}, all_varchar=true, header=true, "
                       f"compression={comp}, encoding='{enc}', ignore_errors=true)")
            started = time.perf_counter()
            total_rows += con.execute(sql).fetchone()[0]
            total_seconds += time.perf_counter() - started
            total_bytes += info.size
    con.close()
    return total_seconds, total_bytes, total_rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", choices=sorted(SCALES), default="small")
    parser.add_argument("--customers", type=int, help="override the scale's customer count")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--dir", type=Path, help="where data goes (default data/bench/<scale>)")
    parser.add_argument("--skip-lifecycle", action="store_true",
                        help="skip the Polars / pandas / DuckDB lifecycle and cohort micro-benchmarks")
    args = parser.parse_args(argv)
    customers = args.customers or SCALES[args.scale]
    root = args.dir or PROJECT_ROOT / "data" / "bench" / args.scale
    landing, warehouse = root / "landing", root / "warehouse"
    cores = os.cpu_count() or 1
    print(f"bench scale={args.scale} customers={customers:,} on {platform.processor() or platform.machine()}, "
          f"{cores} cores, DuckDB {duckdb.__version__}")

    gen_seconds, rows_written = ensure_data(landing, customers, args.seed)
    landing_bytes = sum(p.stat().st_size for s in SOURCES for p in list_landing_files(landing, s).files)
    print(f"demo data: {sum(rows_written.values()):,} rows, {landing_bytes / 1e6:,.0f} MB in {landing} "
          + (f"generated in {gen_seconds:.1f}s" if gen_seconds is not None else "(reused)"))

    floor_seconds, floor_bytes, floor_rows = ingest_floor(landing)
    print(f"ingest floor: {floor_seconds:.2f}s to read {floor_rows:,} rows / {floor_bytes / 1e6:,.0f} MB once "
          f"({floor_bytes / 1e6 / floor_seconds / cores:,.0f} MB/s per core)")

    # A fresh warehouse every time: the run loads every file.
    for name in ("clm.duckdb", "clm.duckdb.wal", "serving.duckdb"):
        (warehouse / name).unlink(missing_ok=True)
    settings = Settings(landing.resolve(), warehouse.resolve(), resolve_vars({"as_of_date": AS_OF}))
    from orchestration.run import run_all

    started = time.perf_counter()
    outcome = run_all(settings, progress=lambda line: None)
    wall = time.perf_counter() - started
    if not outcome.success:
        print(f"pipeline FAILED: {outcome.reason}")
        return 1

    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    per_source = con.execute(
        """SELECT source, count(*), sum(file_size), sum(rows_loaded), sum(rows_rejected), sum(seconds)
           FROM raw._manifest GROUP BY source ORDER BY source"""
    ).fetchall()
    con.close()
    print()
    print(f"{'stage':<34}{'seconds':>9}{'rows':>14}{'rows/s':>13}{'MB/s/core':>11}")
    ingest_seconds = ingest_bytes = ingest_rows = 0
    for source, _files, size, loaded, rejected, seconds in per_source:
        rows = loaded + rejected
        ingest_seconds += seconds
        ingest_bytes += size
        ingest_rows += rows
        print(f"{'raw/' + source:<34}{seconds:>9.2f}{rows:>14,}{rows / seconds:>13,.0f}"
              f"{size / 1e6 / seconds / cores:>11.1f}")
    print(f"{'ingestion total':<34}{ingest_seconds:>9.2f}{ingest_rows:>14,}{ingest_rows / ingest_seconds:>13,.0f}"
          f"{ingest_bytes / 1e6 / ingest_seconds / cores:>11.1f}")
    for key, asset in outcome.assets.items():
        if not key.startswith("raw/") and asset.seconds is not None:
            rows = f"{asset.rows:,}" if asset.rows is not None else ""
            print(f"{key:<34}{asset.seconds:>9.2f}{rows:>14}")
    # The quality gates once more, on their own, for their rate (the run's check step is not
    # an asset, so the runner reports no timing for it).
    from pipelines.staging.gates import run_quality_gates

    started = time.perf_counter()
    results = run_quality_gates(settings)
    gx_seconds = time.perf_counter() - started
    gx_rows = sum(r.rows for r in results.values())
    print(f"{'quality gates (GX, 7 suites)':<34}{gx_seconds:>9.2f}{gx_rows:>14,}{gx_rows / gx_seconds:>13,.0f}")
    staging_seconds = sum(a.seconds or 0 for k, a in outcome.assets.items() if k.startswith("staging/"))
    print(f"{'staging models + quality gates':<34}{staging_seconds + gx_seconds:>9.2f}{gx_rows:>14,}"
          f"{gx_rows / (staging_seconds + gx_seconds):>13,.0f}")
    peak_self, peak_children = _peak_rss_mb()
    print()
    print(f"pipeline wall time: {wall:.1f}s (includes Dagster and dbt start-up)")
    print(f"ingestion vs floor: {ingest_seconds:.2f}s / {floor_seconds:.2f}s = {ingest_seconds / floor_seconds:.1f}x")
    print(f"peak memory: {peak_self:,.0f} MB (this process), {peak_children:,.0f} MB (largest child: dbt)")
    if not args.skip_lifecycle:
        # the Polars stage and cohort computations alone, on synthetic facts for as many
        # persons, with the pandas and DuckDB yardsticks of the cohort grid
        from tools.bench import lifecycle as bench_lifecycle

        print()
        bench_lifecycle.main(["--persons", str(customers)])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
