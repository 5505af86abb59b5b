"""Benchmark of the multi-touch attribution (``pipelines.journeys.attribution.attribute``).

    .venv/bin/python -m tools.bench.attribution --customers 1000000
    .venv/bin/python -m tools.bench.attribution --customers 1000000 --synthetic

The inputs are the purchases and web sessions the demo generator gives at ``--customers``
demo customers. By default they are the medium scale's (``--from``, a warehouse of
``make bench SCALE=medium``: 100,000 demo customers, 988k purchases, 1.30M sessions), opened
read-only, copied ``customers / 100,000`` times with the copy's number appended to every
customer, order and session id: the same journeys, at the large scale 9.9M purchases and 13M
sessions. ``--synthetic`` (or a missing warehouse) draws them instead: 0.68 buyers per
customer with a geometric number of purchases (mean 14.6), a session starting 0-60 minutes
before 60 % of purchases, and 5 browsing sessions per customer spread over 2023-2025, channels
in the demo's shares.

Prints rows in and out, seconds (best of ``--repeat``), rows/s and the peak resident memory
of this process. A measurement script, not a test (numbers go into docs/BENCHMARKS.md).
"""
from __future__ import annotations

import argparse
import datetime as dt
import resource
import time
from pathlib import Path

import duckdb
import numpy as np
import polars as pl

from pipelines.config import PROJECT_ROOT
from pipelines.journeys.attribution import attribute

MEDIUM = PROJECT_ROOT / "data" / "bench" / "medium" / "warehouse" / "clm.duckdb"
MEDIUM_CUSTOMERS = 100_000
START = dt.datetime(2023, 1, 1)
SECONDS = 3 * 365 * 86_400
CHANNELS = ("direct", "email", "organic_search", "paid_search", "paid_social", "affiliate", "referral", "display")
CHANNEL_P = (0.48, 0.19, 0.15, 0.055, 0.044, 0.031, 0.028, 0.022)  # the medium scale's session shares


def from_medium(path: Path, customers: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        purchases = con.sql("""select order_id, customer_id, ordered_at as purchased_at,
                                      order_number = 1 as is_first_purchase
                               from marts.fct_orders where order_number is not null""").pl()
        sessions = con.sql("""select session_id, customer_id, started_at, channel
                              from marts.fct_sessions where customer_id is not null""").pl()
    finally:
        con.close()
    copies = max(1, round(customers / MEDIUM_CUSTOMERS))

    def copied(frame: pl.DataFrame, ids: list[str]) -> pl.DataFrame:
        return pl.concat([frame.with_columns(pl.col(c) + f"_{k}" for c in ids) for k in range(copies)])

    return (copied(purchases, ["order_id", "customer_id"]),
            copied(sessions, ["session_id", "customer_id"]))


def synthetic(customers: int, seed: int = 7) -> tuple[pl.DataFrame, pl.DataFrame]:
    rng = np.random.default_rng(seed)
    buyer = np.flatnonzero(rng.random(customers) < 0.68)
    n = rng.geometric(1 / 14.6, buyer.size)
    who = np.repeat(buyer, n)
    at = rng.integers(0, SECONDS, who.size)
    order = np.lexsort((at, who))
    who, at = who[order], at[order]
    first = np.ones(who.size, bool)
    first[1:] = who[1:] != who[:-1]
    with_session = rng.random(who.size) < 0.6
    s_who = np.concatenate([who[with_session], np.repeat(np.arange(customers), 5)])
    s_at = np.concatenate([at[with_session] - rng.integers(0, 3600, int(with_session.sum())),
                           rng.integers(0, SECONDS, customers * 5)])
    ids = np.array([f"cus_{i:016x}" for i in range(customers)], dtype=object)
    purchases = pl.DataFrame({
        "order_id": [f"o{i}" for i in range(who.size)], "customer_id": ids[who],
        "purchased_at": pl.Series(at * 1_000_000).cast(pl.Duration("us")) + START,
        "is_first_purchase": first})
    sessions = pl.DataFrame({
        "session_id": [f"s{i}" for i in range(s_who.size)], "customer_id": ids[s_who],
        "started_at": pl.Series(s_at * 1_000_000).cast(pl.Duration("us")) + START,
        "channel": np.array(CHANNELS)[rng.choice(len(CHANNELS), s_who.size, p=CHANNEL_P)]})
    return purchases, sessions


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--from", dest="source", type=Path, default=MEDIUM,
                        help="a medium-scale warehouse to copy (read-only)")
    parser.add_argument("--synthetic", action="store_true", help="draw the inputs instead of copying the medium scale")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    if args.synthetic or not args.source.exists():
        purchases, sessions = synthetic(args.customers)
        origin = "synthetic"
    else:
        purchases, sessions = from_medium(args.source, args.customers)
        origin = f"copies of {args.source}"
    print(f"inputs ({origin}): {purchases.height:,} purchases, {sessions.height:,} sessions "
          f"in {time.perf_counter() - t0:.1f} s")

    best, out = None, None
    for _ in range(args.repeat):
        del out
        t = time.perf_counter()
        out = attribute(purchases, sessions, lookback_days=30, max_touches=20, half_life_days=7, threads=args.threads)
        took = time.perf_counter() - t
        best = took if best is None else min(best, took)
        print(f"attribute: {took:.1f} s")
    touched = out.filter(pl.col("session_id").is_not_null())
    print(f"output: {out.height:,} touches of {out['order_id'].n_unique():,} purchases "
          f"({touched['order_id'].n_unique():,} with a session; at most {out['touches'].max()} touches)")
    print(f"best of {args.repeat}: {best:.1f} s, {(purchases.height + sessions.height) / best:,.0f} input rows/s, "
          f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.1f} GiB")


if __name__ == "__main__":
    main()
