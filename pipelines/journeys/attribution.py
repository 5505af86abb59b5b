"""Multi-touch attribution of purchases to web sessions (CONTRACT section 8).

The touches of a purchase are the buyer's web sessions that started in the ``lookback_days``
before it: ``purchased_at - lookback_days <= started_at <= purchased_at``, both edges included
(a session exactly 30 x 24 hours before a purchase counts, and so does the session in which the
purchase happens, which starts before it). Of these, the ``max_touches`` most recent are kept
and numbered in time order (1 = the earliest kept; ties by ``session_id``). A purchase without
such a session gets one touch with channel ``(none)`` and no session.

Credits per model (each sums to 1 per purchase; the models are ``ATTRIBUTION_MODELS`` of
pipelines/contract.py):

* ``first_touch``: 1 to touch 1; ``last_touch``: 1 to the last touch;
* ``last_non_direct``: 1 to the last touch whose channel is not ``direct`` (the channel the
  sessionisation's channel groups give direct traffic); when every touch is direct, the last
  touch, as GA4 does;
* ``linear``: 1/n each;
* ``position_based``: 40 % to the first, 40 % to the last, 20 % spread evenly over the
  middle; one touch gets 1, two get 0.5 each;
* ``time_decay``: weight 2^(-(purchased_at - started_at) / half_life), normalised per
  purchase. Computed relative to the purchase's most recent touch (the same ratios, and the
  sum is never below 1, so no weight underflows into a division by zero).

Inputs are plain frames:

* ``purchases``: ``order_id``, ``customer_id``, ``purchased_at`` (UTC timestamp),
  ``is_first_purchase``;
* ``sessions``: ``session_id``, ``customer_id``, ``started_at`` (UTC timestamp), ``channel``.

The work is one DuckDB query. The lookback join is an equi-join on the buyer and a time
bucket of the lookback's length (each session is listed in its own bucket and the next, so a
purchase in bucket b meets exactly the sessions of buckets b-1 and b) with the range as a
filter: the pairs it builds are bounded by the buyer's sessions within two lookbacks of each
purchase, never by all of the buyer's sessions times all purchases.
"""
from __future__ import annotations

import duckdb
import polars as pl

from pipelines.contract import ATTRIBUTION_MODELS

DIRECT_CHANNEL = "direct"  # seed channel_groups: the channel of direct traffic
NO_TOUCH_CHANNEL = "(none)"  # the one touch of a purchase without a session in the lookback

OUTPUT_COLUMNS = ("order_id", "customer_id", "is_first_purchase", "purchased_at", "touch_number", "touches",
                  "session_id", "channel", "touched_at", *ATTRIBUTION_MODELS)

_US_PER_DAY = 86_400_000_000

_SQL = """
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


def attribute(purchases: pl.DataFrame, sessions: pl.DataFrame, lookback_days: int = 30, max_touches: int = 20,
              half_life_days: float = 7.0, con: duckdb.DuckDBPyConnection | None = None,
              threads: int | None = None) -> pl.DataFrame:
    """One row per purchase and touch with the credit of every attribution model (module doc).

    Runs on ``con`` when given (a dbt Python model passes its session, so the warehouse's memory
    limit and threads apply), else on a new in-memory DuckDB (``threads`` then sets its
    threads). Row order is not defined; ``order_id`` + ``touch_number`` is the key."""
    if lookback_days < 1 or max_touches < 1 or not half_life_days > 0:
        raise ValueError("lookback_days and max_touches must be >= 1 and half_life_days > 0")
    purchases_in = purchases.select(
        pl.col("order_id").cast(pl.String), pl.col("customer_id").cast(pl.String),
        pl.col("purchased_at").cast(pl.Datetime("us")), pl.col("is_first_purchase").cast(pl.Boolean))
    sessions_in = sessions.select(
        pl.col("session_id").cast(pl.String), pl.col("customer_id").cast(pl.String),
        pl.col("started_at").cast(pl.Datetime("us")), pl.col("channel").cast(pl.String))
    sql = _SQL.format(lookback_us=int(lookback_days) * _US_PER_DAY, max_touches=int(max_touches),
                      half_life_us=float(half_life_days) * _US_PER_DAY, direct=DIRECT_CHANNEL,
                      no_touch=NO_TOUCH_CHANNEL)
    own = con is None
    if own:
        con = duckdb.connect()
        con.execute("set enable_progress_bar = false")
        if threads:
            con.execute(f"set threads = {int(threads)}")
    try:
        con.register("purchases_in", purchases_in)
        con.register("sessions_in", sessions_in)
        out = con.sql(sql).pl()
    finally:
        if own:
            con.close()
        else:
            con.unregister("purchases_in")
            con.unregister("sessions_in")
    return out.select(
        pl.col("order_id"), pl.col("customer_id"), pl.col("is_first_purchase"), pl.col("purchased_at"),
        pl.col("touch_number").cast(pl.Int32), pl.col("touches").cast(pl.Int32), pl.col("session_id"),
        pl.col("channel"), pl.col("touched_at"),
        *[pl.col(m).cast(pl.Float64) for m in ATTRIBUTION_MODELS])
