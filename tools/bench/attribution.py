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
of this process; with ``--reference`` also the time of the same rules as one DuckDB query
(``attribute_sql``: an equi-join on the buyer and a lookback-long time bucket with the range as
filter, window functions for ranks and sums; the first implementation, kept as a yardstick and
as the second opinion tests/test_attribution.py compares the product with) and whether both
give the same rows. A measurement script, not a test (numbers go into docs/BENCHMARKS.md).
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
from pipelines.contract import ATTRIBUTION_MODELS
from pipelines.journeys.attribution import DIRECT_CHANNEL, NO_TOUCH_CHANNEL, OUTPUT_COLUMNS, attribute

MEDIUM = PROJECT_ROOT / "data" / "bench" / "medium" / "warehouse" / "clm.duckdb"
MEDIUM_CUSTOMERS = 100_000
START = dt.datetime(2023, 1, 1)
SECONDS = 3 * 365 * 86_400
CHANNELS = ("direct", "email", "organic_search", "paid_search", "paid_social", "affiliate", "referral", "display")
CHANNEL_P = (0.48, 0.19, 0.15, 0.055, 0.044, 0.031, 0.028, 0.022)  # the medium scale's session shares


REFERENCE_SQL = """
with

purchases as (

    select
        order_id,
        customer_id,
        cast(purchased_at as timestamp) as purchased_at,
        coalesce(is_first_purchase, false) as is_first_purchase,
        epoch_us(cast(purchased_at as timestamp)) // {lookback_us} as bucket
    from purchases_in

),

sessions as (

    -- each session in its own lookback-long bucket and the next one
    select
        session_id,
        customer_id,
        cast(started_at as timestamp) as started_at,
        channel,
        epoch_us(cast(started_at as timestamp)) // {lookback_us} + unnest([0, 1]) as bucket
    from sessions_in
    where customer_id is not null

),

in_window as (

    select
        purchases.order_id,
        sessions.session_id,
        sessions.channel,
        sessions.started_at,
        row_number() over (
            partition by purchases.order_id order by sessions.started_at desc, sessions.session_id desc
        ) as recency_rank
    from purchases
    inner join sessions
        on sessions.customer_id = purchases.customer_id
        and sessions.bucket = purchases.bucket
        and sessions.started_at <= purchases.purchased_at
        and sessions.started_at >= purchases.purchased_at - to_microseconds({lookback_us})
    qualify recency_rank <= {max_touches}

),

per_purchase as (

    select
        order_id,
        count(*) as touches,
        max(started_at) as last_touched_at,
        -- recency rank of the most recent touch that is not direct
        min(recency_rank) filter (where channel is distinct from '{direct}') as last_non_direct_rank,
        sum(pow(2.0, -(epoch_us(last_touched_at_per_row) - epoch_us(started_at)) / {half_life_us}))
            as decay_total
    from (select *, max(started_at) over (partition by order_id) as last_touched_at_per_row from in_window)
    group by order_id

),

touched as (

    select
        purchases.order_id,
        purchases.customer_id,
        purchases.is_first_purchase,
        purchases.purchased_at,
        per_purchase.touches - in_window.recency_rank + 1 as touch_number,
        per_purchase.touches,
        in_window.session_id,
        in_window.channel,
        in_window.started_at as touched_at,
        case when in_window.recency_rank = per_purchase.touches then 1.0 else 0.0 end as first_touch,
        case when in_window.recency_rank = 1 then 1.0 else 0.0 end as last_touch,
        case when in_window.recency_rank = coalesce(per_purchase.last_non_direct_rank, 1) then 1.0 else 0.0 end
            as last_non_direct,
        1.0 / per_purchase.touches as linear,
        case
            when per_purchase.touches = 1 then 1.0
            when per_purchase.touches = 2 then 0.5
            when in_window.recency_rank in (1, per_purchase.touches) then 0.4
            else 0.2 / (per_purchase.touches - 2)
        end as position_based,
        pow(2.0, -(epoch_us(per_purchase.last_touched_at) - epoch_us(in_window.started_at)) / {half_life_us})
            / per_purchase.decay_total as time_decay
    from in_window
    inner join per_purchase using (order_id)
    inner join purchases using (order_id)

),

untouched as (

    select
        order_id,
        customer_id,
        is_first_purchase,
        purchased_at,
        1 as touch_number,
        1 as touches,
        cast(null as varchar) as session_id,
        '{no_touch}' as channel,
        cast(null as timestamp) as touched_at,
        1.0 as first_touch,
        1.0 as last_touch,
        1.0 as last_non_direct,
        1.0 as linear,
        1.0 as position_based,
        1.0 as time_decay
    from purchases
    anti join per_purchase using (order_id)

)

select * from touched
union all
select * from untouched
"""


def attribute_sql(purchases: pl.DataFrame, sessions: pl.DataFrame, lookback_days: int = 30, max_touches: int = 20,
                  half_life_days: float = 7.0, threads: int | None = None) -> pl.DataFrame:
    """The same rules as ``pipelines.journeys.attribution.attribute``, as one DuckDB query."""
    us_per_day = 86_400_000_000
    sql = REFERENCE_SQL.format(lookback_us=int(lookback_days) * us_per_day, max_touches=int(max_touches),
                               half_life_us=float(half_life_days) * us_per_day, direct=DIRECT_CHANNEL,
                               no_touch=NO_TOUCH_CHANNEL)
    con = duckdb.connect()
    try:
        con.execute("set enable_progress_bar = false")
        if threads:
            con.execute(f"set threads = {int(threads)}")
        con.register("purchases_in", purchases.select("order_id", "customer_id", "purchased_at", "is_first_purchase"))
        con.register("sessions_in", sessions.select("session_id", "customer_id", "started_at", "channel"))
        out = con.sql(sql).pl()
    finally:
        con.close()
    return out.select(pl.col(c).cast(pl.Int32) if c in ("touch_number", "touches") else pl.col(c)
                      for c in OUTPUT_COLUMNS)


def same_rows(a: pl.DataFrame, b: pl.DataFrame, tolerance: float = 1e-9) -> bool:
    """Whether two outputs hold the same rows (credits within ``tolerance``)."""
    if a.height != b.height:
        return False
    key = ["order_id", "touch_number"]
    a, b = a.sort(key), b.sort(key)
    exact = [c for c in OUTPUT_COLUMNS if c not in ATTRIBUTION_MODELS]
    if not a.select(exact).equals(b.select(exact)):
        return False
    return all(float((a[m] - b[m]).abs().max() or 0.0) <= tolerance for m in ATTRIBUTION_MODELS)


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
    parser.add_argument("--threads", type=int, default=None, help="DuckDB threads of the reference")
    parser.add_argument("--reference", action="store_true", help="also time the DuckDB query and compare")
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
        out = attribute(purchases, sessions, lookback_days=30, max_touches=20, half_life_days=7)
        took = time.perf_counter() - t
        best = took if best is None else min(best, took)
        print(f"attribute: {took:.1f} s")
    touched = out.filter(pl.col("session_id").is_not_null())
    print(f"output: {out.height:,} touches of {out['order_id'].n_unique():,} purchases "
          f"({touched['order_id'].n_unique():,} with a session; at most {out['touches'].max()} touches)")
    print(f"best of {args.repeat}: {best:.1f} s, {(purchases.height + sessions.height) / best:,.0f} input rows/s, "
          f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.1f} GiB")
    if args.reference:
        t = time.perf_counter()
        reference = attribute_sql(purchases, sessions, threads=args.threads)
        print(f"reference (DuckDB query): {time.perf_counter() - t:.1f} s; same rows: {same_rows(out, reference)}")


if __name__ == "__main__":
    main()
