"""What DuckDB and GX themselves reach on the staging tables of a warehouse, next to the pipeline.

    .venv/bin/python -m tools.bench.staging_ceiling data/bench/medium/warehouse

Run after ``make bench`` (or ``clm run``) has built the warehouse. For every staging table
with a quality suite it measures, on 2 cores:

- *bare copy*: ``CREATE TABLE AS SELECT * FROM raw.<source>`` into a scratch database file,
  checkpointed: DuckDB writing the raw rows with no transformation at all, the ceiling of any
  materialised staging model;
- *staging copy*: the same for the staging table itself (its rows, already standardised);
- *read*: the columns its suite needs into pandas (``quality_gates.read_columns``, what the gate reads);
- *GX*: the suite on that frame (``pipelines.staging.quality.validate_table``).

The warehouse is opened read-only; the scratch file goes to a temporary directory. A
measurement, not a test: numbers go into docs/BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from pathlib import Path

import duckdb


from pipelines.warehouse import quote_ident, quote_literal
from pipelines.staging.quality import SUITES, make_context, validate_table
from pipelines.staging.gates import read_columns

# staging table -> the raw table it standardises
RAW_OF = {
    "stg_crm_contacts__contacts": "crm_contacts",
    "stg_crm_deals__deals": "crm_deals",
    "stg_web_events__events": "web_events",
    "stg_orders__orders": "orders",
    "stg_marketing_spend__spends": "marketing_spend",
    "stg_surveys__responses": "surveys",
    "stg_fx_rates__rates": "fx_rates",
}


def _timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("warehouse_dir", type=Path, help="folder holding clm.duckdb")
    ap.add_argument("--as-of", default="2025-12-31", help="as_of_date for the timestamp checks")
    args = ap.parse_args(argv)
    warehouse = (args.warehouse_dir / "clm.duckdb").resolve()
    context = make_context(None)
    totals = {"rows": 0, "bare": 0.0, "staging": 0.0, "read": 0.0, "gx": 0.0}
    print(f"{'table':<30}{'rows':>12}{'bare copy':>11}{'staging copy':>14}{'read':>8}{'GX':>8}")
    copies: dict[str, tuple[int, float, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        con = duckdb.connect(str(Path(tmp) / "scratch.duckdb"))
        con.execute(f"ATTACH {quote_literal(str(warehouse))} AS wh (READ_ONLY)")
        for table in SUITES:
            rows = con.execute(f"SELECT count(*) FROM wh.staging.{quote_ident(table)}").fetchone()[0]

            def copy(source: str) -> None:
                con.execute(f"CREATE OR REPLACE TABLE copied AS SELECT * FROM {source}")
                con.execute("CHECKPOINT")

            bare = _timed(lambda: copy(f"wh.raw.{quote_ident(RAW_OF[table])}"))
            staging = _timed(lambda: copy(f"wh.staging.{quote_ident(table)}"))
            con.execute("DROP TABLE copied")
            con.execute("CHECKPOINT")
            copies[table] = rows, bare, staging
        con.close()
    con = duckdb.connect(str(warehouse), read_only=True)
    countries = {r[0] for r in con.execute("SELECT DISTINCT country_code FROM seeds.country_aliases").fetchall()}
    currencies = {r[0] for r in con.execute("SELECT currency_code FROM seeds.currencies").fetchall()}
    for table, (rows, bare, staging) in copies.items():
        frame = None

        def read() -> None:
            nonlocal frame
            frame = read_columns(con, table)  # what the gate reads

        read_s = _timed(read)
        result = validate_table(table, frame, as_of_date=dt.date.fromisoformat(args.as_of),
                                country_codes=countries, currency_codes=currencies, context=context)
        print(f"{table:<30}{rows:>12,}{bare:>10.2f}s{staging:>13.2f}s{read_s:>7.2f}s{result.seconds:>7.2f}s")
        for key, value in (("rows", rows), ("bare", bare), ("staging", staging), ("read", read_s),
                           ("gx", result.seconds)):
            totals[key] += value
    con.close()
    n = totals["rows"]
    print(f"{'all':<30}{n:>12,}{totals['bare']:>10.2f}s{totals['staging']:>13.2f}s{totals['read']:>7.2f}s"
          f"{totals['gx']:>7.2f}s")
    print(f"rows/s: bare copy {n / totals['bare']:,.0f}, staging copy {n / totals['staging']:,.0f}, "
          f"read {n / totals['read']:,.0f}, GX {n / totals['gx']:,.0f}; "
          f"bare copy + read + GX {n / (totals['bare'] + totals['read'] + totals['gx']):,.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
