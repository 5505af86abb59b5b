"""Naive wall-clock times to UTC: DuckDB's ICU per row against the loader's former offset search.

    .venv/bin/python -m tools.bench.timezones [--rows 1352601] [--repeat 3]

Times the conversion of as many naive timestamps as the large orders file holds (1.35M rows),
the two ways alternately in one process, writing the result to a table as the loader's
insert does: ``timezone(zone, local)`` (ICU on every row) and a binary search over the zone's
offset changes written as nested CASEs (the loader's ``local_to_utc_sql``). Prints seconds
per repetition; the numbers are in docs/BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import time

import duckdb

from pipelines.raw.parse import local_to_utc_sql
from pipelines.warehouse import quote_literal

ZONE = "Europe/Berlin"


def icu(local: str) -> str:
    return f"timezone({quote_literal(ZONE)}, {local})::TIMESTAMP"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_352_601)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"""CREATE TABLE t AS SELECT TIMESTAMP '2023-01-01' + to_seconds((hash(i) % 94608000)::BIGINT) AS local
                    FROM range({args.rows}) r(i)""")
    ways = {"ICU per row": icu("local"), "offset search (CASE)": local_to_utc_sql(con, "local", ZONE)}
    assert con.execute(f"SELECT count(*) FROM t WHERE ({ways['ICU per row']}) IS DISTINCT FROM "
                       f"({ways['offset search (CASE)']})").fetchone()[0] == 0
    for _ in range(args.repeat):
        for name, expr in ways.items():
            con.execute("DROP TABLE IF EXISTS out")
            started = time.perf_counter()
            con.execute(f"CREATE TABLE out AS SELECT {expr} AS utc FROM t")
            print(f"{name:<22} {time.perf_counter() - started:6.3f} s for {args.rows:,} rows", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
