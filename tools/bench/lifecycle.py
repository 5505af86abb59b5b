"""Benchmark of the Polars lifecycle and cohort computations (part of ``make bench``).

    .venv/bin/python -m tools.bench.lifecycle --persons 1000000

On synthetic facts for ``--persons`` persons over 36 months (2023-01 .. 2025-12; each
person is first seen with contact data on a random day of 2023, so the monthly grid has
about persons x 30 rows, and buys a geometric number of times, mean ~10, with exponential
gaps of 45 days on average, purchases after 2025 dropped; some answer an NPS survey, start
a trial or add to cart):

* ``stage_spells`` (facts -> spells) and ``monthly_stages`` (spells -> the monthly
  grid, about persons x 36 rows), each timed alone, with rows/s of their output;
* the cohort grid computed three ways on the same purchases: ``pipelines.lifecycle.cohorts``
  (Polars), an idiomatic pandas version and DuckDB SQL, checked to give the same grid;
* the CLV models (``pipelines.lifecycle.clv``) on every buyer: summary, BG/NBD + Gamma-Gamma fit,
  predictions.

This is a measurement script, not a test (numbers go into docs/BENCHMARKS.md). The
pandas and SQL versions exist only as yardsticks; the product uses the Polars one.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import time

import numpy as np
import pandas as pd
import polars as pl

from pipelines.lifecycle.cohorts import cohort_grid
from pipelines.lifecycle.stages import FACT_SCHEMA, LifecycleRules, monthly_stages, stage_spells

START = dt.date(2023, 1, 1)
AS_OF = dt.date(2025, 12, 31)
DAYS = (AS_OF - START).days + 1


def synthetic_facts(persons: int, seed: int = 7) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    ids = pl.Series("customer_id", [f"cus_{i:016x}" for i in rng.integers(0, 2**63, persons)])
    first = rng.integers(0, 365, persons)
    n_orders = rng.geometric(1 / 10, persons) - 1  # mean ~9 purchases, 10% never buy
    who = np.repeat(np.arange(persons), n_orders)
    gaps = rng.exponential(45, who.size).astype(np.int64)
    start = np.repeat(np.cumsum(n_orders) - n_orders, n_orders)  # row of the person's first order
    gaps[start] = 0  # the first purchase is on the day first seen
    csum = np.cumsum(gaps)
    day = first[who] + csum - csum[start]
    keep = day < DAYS
    who, day = who[keep], day[keep]
    react = np.zeros(day.size)
    frames = [
        pl.DataFrame({"p": np.arange(persons), "fact": "seen", "d": first, "value": None}),
        pl.DataFrame({"p": np.arange(persons), "fact": "contact", "d": first, "value": None}),
        pl.DataFrame({"p": who, "fact": "purchase", "d": day, "value": react}),
    ]
    for fact, share in (("nps", 0.2), ("trial", 0.05), ("intent", 0.5)):
        sel = rng.random(persons) < share
        p = np.flatnonzero(sel)
        d = np.minimum(first[p] + rng.integers(0, 400, p.size), DAYS - 1)
        value = rng.integers(0, 11, p.size).astype(float) if fact == "nps" else None
        frames.append(pl.DataFrame({"p": p, "fact": fact, "d": d, "value": value}))
    facts = pl.concat([f.with_columns(pl.col("value").cast(pl.Float64)) for f in frames])
    return facts.select(
        customer_id=ids.gather(facts["p"]),
        fact=pl.col("fact"),
        fact_date=(pl.lit(START) + pl.duration(days=pl.col("d"))).cast(pl.Date),
        fact_at=pl.lit(None, pl.Datetime("us")),
        value=pl.col("value"),
    ).cast(FACT_SCHEMA)


# --------------------------------------------------------------------------- yardsticks


def cohort_grid_pandas(purchases: pd.DataFrame, as_of: dt.date) -> pd.DataFrame:
    """The cohort grid as an analyst would write it in pandas (groupby / reindex / cumsum)."""
    df = purchases[purchases["ordered_date"] <= pd.Timestamp(as_of)].copy()
    df["m"] = df["ordered_date"].dt.year * 12 + df["ordered_date"].dt.month - 1
    df["units"] = (df["net_revenue"].astype(float) * 10_000).round().astype("Int64")
    df["cohort"] = df.groupby("customer_id")["m"].transform("min")
    df["offset"] = df["m"] - df["cohort"]
    sizes = df.groupby("cohort")["customer_id"].nunique().rename("cohort_size")
    cells = df.groupby(["cohort", "offset"]).agg(
        active_customers=("customer_id", "nunique"), orders=("customer_id", "size"), units=("units", "sum"))
    last = as_of.year * 12 + as_of.month - 1
    index = pd.MultiIndex.from_tuples(
        [(c, k) for c in sizes.index for k in range(last - c + 1)], names=["cohort", "offset"])
    grid = cells.reindex(index, fill_value=0).reset_index().merge(sizes.reset_index(), on="cohort")
    grid["cum_units"] = grid.groupby("cohort")["units"].cumsum()
    return pd.DataFrame({
        "cohort_month": pd.to_datetime({"year": grid["cohort"] // 12, "month": grid["cohort"] % 12 + 1, "day": 1}),
        "months_since_first_order": grid["offset"],
        "cohort_size": grid["cohort_size"],
        "active_customers": grid["active_customers"],
        "retention_rate": grid["active_customers"] / grid["cohort_size"],
        "orders": grid["orders"],
        "net_revenue": grid["units"].astype(float) / 10_000,
        "cumulative_net_revenue_per_customer": grid["cum_units"].astype(float) / grid["cohort_size"] / 10_000,
    })


COHORT_SQL = """
with p as (
    select customer_id, year(ordered_date) * 12 + month(ordered_date) - 1 as m,
           cast(round(net_revenue * 10000) as bigint) as units
    from purchases where ordered_date <= ?
),
members as (select customer_id, min(m) as cohort from p group by customer_id),
sizes as (select cohort, count(*) as cohort_size from members group by cohort),
cells as (
    select cohort, m - cohort as k, count(distinct customer_id) as active_customers, count(*) as orders,
           sum(units) as units
    from p join members using (customer_id) group by all
),
grid as (
    select cohort, cohort_size, unnest(range(0, ? - cohort + 1)) as k from sizes
)
select make_date(cast(cohort // 12 as integer), cast(cohort % 12 + 1 as integer), 1) as cohort_month,
       k as months_since_first_order, cohort_size,
       coalesce(active_customers, 0) as active_customers,
       coalesce(active_customers, 0) / cohort_size as retention_rate,
       coalesce(orders, 0) as orders,
       coalesce(units, 0) / 10000 as net_revenue,
       sum(coalesce(units, 0)) over (partition by cohort order by k) / cohort_size / 10000
           as cumulative_net_revenue_per_customer
from grid left join cells using (cohort, k)
order by cohort, k
"""


def cohort_grid_duckdb(con, purchases: pl.DataFrame, as_of: dt.date) -> pl.DataFrame:
    con.register("purchases", purchases)
    try:
        return con.execute(COHORT_SQL, [as_of, as_of.year * 12 + as_of.month - 1]).pl()
    finally:
        con.unregister("purchases")


def _timed(fn, repeat: int = 3):
    """Best of ``repeat`` runs: (seconds, result)."""
    best, out = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - started)
    return best, out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--persons", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    import duckdb

    print(f"lifecycle bench: {args.persons:,} persons, {os.cpu_count()} cores, Polars {pl.__version__} "
          f"({pl.thread_pool_size()} threads), DuckDB {duckdb.__version__}, pandas {pd.__version__}")
    started = time.perf_counter()
    facts = synthetic_facts(args.persons)
    print(f"synthetic facts: {facts.height:,} rows in {time.perf_counter() - started:.1f}s")
    rules = LifecycleRules(as_of_date=AS_OF)

    s_spells, spells = _timed(lambda: stage_spells(facts.lazy(), rules).collect(), args.repeat)
    print(f"{'stage spells (facts -> spells)':<40}{s_spells:>8.2f}s {facts.height:>13,} facts "
          f"{facts.height / s_spells:>13,.0f} facts/s  -> {spells.height:,} spells")
    s_grid, grid = _timed(lambda: monthly_stages(spells.lazy(), AS_OF).collect(), args.repeat)
    print(f"{'monthly stage grid (spells -> grid)':<40}{s_grid:>8.2f}s {grid.height:>13,} rows  "
          f"{grid.height / s_grid:>13,.0f} rows/s")

    purchases = facts.filter(pl.col("fact") == "purchase").select(
        "customer_id", ordered_date="fact_date",
        # spend per purchase: a level per customer (10 .. 69) times a per-purchase factor (0.6 .. 1.4)
        net_revenue=((pl.col("customer_id").hash(11) % 60 + 10).cast(pl.Float64)
                     * (0.6 + (pl.col("fact_date").cast(pl.Int32) % 9).cast(pl.Float64) * 0.1)
                     ).round(2).cast(pl.Decimal(18, 4)))
    s_pl, g_pl = _timed(lambda: cohort_grid(purchases.lazy(), AS_OF).collect(), args.repeat)
    con = duckdb.connect()
    con.execute(f"SET threads = {os.cpu_count() or 1}")
    s_db, g_db = _timed(lambda: cohort_grid_duckdb(con, purchases, AS_OF), args.repeat)
    pdf = purchases.with_columns(pl.col("ordered_date").cast(pl.Datetime("ns"))).to_pandas()
    s_pd, g_pd = _timed(lambda: cohort_grid_pandas(pdf, AS_OF), args.repeat)
    from polars.testing import assert_frame_equal

    for name, other in (("duckdb", g_db), ("pandas", pl.from_pandas(g_pd))):
        other = other.with_columns(pl.col("cohort_month").cast(pl.Date))
        assert_frame_equal(other, g_pl, check_dtypes=False, rel_tol=1e-12)  # integers exact, floats to 1e-12
    print(f"cohort grid on {purchases.height:,} purchases ({g_pl.height:,} cells; the three agree):")
    print(f"  {'polars (pipelines.lifecycle.cohorts)':<38}{s_pl:>8.2f}s {purchases.height / s_pl:>13,.0f} rows/s")
    print(f"  {'duckdb sql':<38}{s_db:>8.2f}s {purchases.height / s_db:>13,.0f} rows/s  "
          f"polars/duckdb = {s_pl / s_db:.2f}x")
    print(f"  {'pandas (idiomatic)':<38}{s_pd:>8.2f}s {purchases.height / s_pd:>13,.0f} rows/s  "
          f"pandas/polars = {s_pd / s_pl:.1f}x")

    # the CLV models on every buyer (the same purchases; revenue as above)
    from pipelines.lifecycle import clv

    s_sum, summary = _timed(lambda: clv.customer_summary(purchases.lazy(), AS_OF), 1)
    s_fit, fitted = _timed(lambda: clv.fit_models(summary), 1)
    params = clv.usable_params(fitted.parameter_rows())
    s_pred, _ = _timed(lambda: clv.predict(summary, params), 1)
    print(f"CLV on {summary.height:,} buyers: summary {s_sum:.2f}s, fit {s_fit:.2f}s "
          f"(BG/NBD {fitted.fits[0].seconds:.2f}s, {fitted.fits[0].iterations} iterations; Gamma-Gamma "
          f"{fitted.fits[1].seconds:.2f}s, {fitted.fits[1].iterations} iterations; converged "
          f"{all(f.converged for f in fitted.fits)}), predictions {s_pred:.2f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
