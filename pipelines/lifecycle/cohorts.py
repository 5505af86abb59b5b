"""Cohort retention grids (CONTRACT section 6, "Cohorts") as Polars LazyFrame functions.

A person's cohort is the month of their first purchase; offset k of a cohort counts the
members with a purchase in cohort month + k (``active_customers``), those purchases
(``orders``) and their net revenue. Offsets run from 0 to the month of ``as_of_date``;
offsets without any purchase are kept as rows of zeros. ``retention_rate`` is
active_customers / cohort_size, ``cumulative_net_revenue_per_customer`` the net revenue
of offsets 0..k over the cohort size.

Input: one row per purchase (completed or partially refunded order) with
``customer_id``, ``ordered_date`` (reporting-timezone day) and ``net_revenue`` (reporting
currency; null when the FX rate is missing: counted as an order, not as revenue), plus
the grouping columns (e.g. ``acquisition_channel``, constant per person). Money is summed
exactly in integer ten-thousandths (the marts' decimal(18,4)).
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import polars as pl

from pipelines.lifecycle.months import MONTH_DTYPE, month_index, month_of, month_start

MONEY_UNITS = 10_000  # decimal(18,4)


_PERSON_HASH_SEEDS = ((0x9E3779B9, 0x7F4A7C15, 0xF39CC060, 0x5CEDC834),
                      (0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A))


def _person_hash(which: int = 0) -> pl.Expr:
    return pl.col("customer_id").hash(*_PERSON_HASH_SEEDS[which])


def cohort_grid(purchases: pl.LazyFrame, as_of_date: dt.date, by: Sequence[str] = ()) -> pl.LazyFrame:
    """The cohort grid, one row per (``by`` ..., cohort month, offset), sorted.

    Persons are keyed by a 64-bit hash of ``customer_id`` (integer hashing, joins and
    distinct counts are several times cheaper than on strings); the purchases are
    materialised once. A second, independent 64-bit hash must be constant within every
    person key (as in pipelines.identity.graph), otherwise the grid is computed on the
    ``customer_id`` strings instead; so the result is exact unless two persons collide in
    both hashes at once (about 1e-26 at 10^6 persons)."""
    keys = list(by)
    p = (
        purchases.filter(pl.col("ordered_date") <= as_of_date)
        .select(
            *keys,
            "customer_id",
            person=_person_hash(0),
            check=_person_hash(1),
            m=month_index(pl.col("ordered_date")),
            units=(pl.col("net_revenue").cast(pl.Float64) * MONEY_UNITS).round(0).cast(pl.Int64),
        )
        .collect()
    )
    members = (
        p.lazy()
        .group_by("person")
        .agg(*(pl.col(k).first() for k in keys), cohort=pl.col("m").min(),
             lo=pl.col("check").min(), hi=pl.col("check").max())
        .collect()
    )
    if not (members["lo"] == members["hi"]).all():  # a hash collision: key by the strings
        p = p.with_columns(person="customer_id")
        members = p.group_by("person").agg(*(pl.col(k).first() for k in keys), cohort=pl.col("m").min())
    return _grid(p.lazy(), members.lazy(), month_of(as_of_date), keys)


def _grid(p: pl.LazyFrame, members: pl.LazyFrame, last: int, keys: list[str]) -> pl.LazyFrame:
    sizes = members.group_by(*keys, "cohort").agg(cohort_size=pl.len().cast(pl.Int64))
    activity = (
        p.join(members.select("person", "cohort"), on="person")
        .group_by(*keys, "cohort", offset=pl.col("m") - pl.col("cohort"))
        .agg(
            active_customers=pl.col("person").n_unique().cast(pl.Int64),
            orders=pl.len().cast(pl.Int64),
            units=pl.col("units").sum(),
        )
    )
    grid = (
        sizes.with_columns(offset=pl.int_ranges(0, last - pl.col("cohort") + 1, dtype=MONTH_DTYPE))
        .explode("offset", empty_as_null=False)
        .join(activity, on=[*keys, "cohort", "offset"], how="left")
        .with_columns(pl.col("active_customers", "orders", "units").fill_null(0))
        .sort(*keys, "cohort", "offset")
    )
    return grid.select(
        *keys,
        cohort_month=month_start(pl.col("cohort")),
        months_since_first_order=pl.col("offset"),
        cohort_size="cohort_size",
        active_customers="active_customers",
        retention_rate=pl.col("active_customers") / pl.col("cohort_size"),
        orders="orders",
        net_revenue=pl.col("units") / MONEY_UNITS,
        cumulative_net_revenue_per_customer=(
            pl.col("units").cum_sum().over([*keys, "cohort"]) / pl.col("cohort_size") / MONEY_UNITS
        ),
    )
