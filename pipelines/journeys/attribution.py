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

The work is vectorised over all purchases at once (Polars and NumPy, no loop over rows) and
linear in the rows after one sort: the sessions are sorted by buyer, start and ``session_id``,
so the touches of a purchase are one contiguous run of that order, found by two as-of joins
on the buyer (the last session starting at or before the purchase, the first starting at or
after the lookback's start); the run is cut to its last ``max_touches`` and expanded into rows.
The last non-direct touch is a running maximum over the sorted sessions, the time-decay sums
a ``bincount``. No pair of purchase and session outside the window is ever built.
"""
from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

from pipelines.contract import ATTRIBUTION_MODELS

DIRECT_CHANNEL = "direct"  # seed channel_groups: the channel of direct traffic
NO_TOUCH_CHANNEL = "(none)"  # the one touch of a purchase without a session in the lookback

OUTPUT_COLUMNS = ("order_id", "customer_id", "is_first_purchase", "purchased_at", "touch_number", "touches",
                  "session_id", "channel", "touched_at", *ATTRIBUTION_MODELS)

_US_PER_DAY = 86_400_000_000


def attribute(purchases: pl.DataFrame, sessions: pl.DataFrame, lookback_days: int = 30, max_touches: int = 20,
              half_life_days: float = 7.0) -> pl.DataFrame:
    """One row per purchase and touch with the credit of every attribution model (module doc).

    Rows come by purchase (in the order of ``purchases``) and touch number; ``order_id`` +
    ``touch_number`` is the key."""
    if lookback_days < 1 or max_touches < 1 or not half_life_days > 0:
        raise ValueError("lookback_days and max_touches must be >= 1 and half_life_days > 0")
    lookback = dt.timedelta(days=int(lookback_days))
    p = purchases.select(
        pl.col("order_id").cast(pl.String), pl.col("customer_id").cast(pl.String),
        pl.col("purchased_at").cast(pl.Datetime("us")),
        pl.col("is_first_purchase").cast(pl.Boolean).fill_null(False),
    ).with_row_index("p_idx")
    s = (
        sessions.select(
            pl.col("session_id").cast(pl.String), pl.col("customer_id").cast(pl.String),
            pl.col("started_at").cast(pl.Datetime("us")), pl.col("channel").cast(pl.String))
        .filter(pl.col("customer_id").is_not_null() & pl.col("started_at").is_not_null())
        .sort("customer_id", "started_at", "session_id")
        .with_row_index("s_idx")
    )
    n_sessions = s.height
    # runs of sessions of one buyer starting at the same instant: the as-of joins may land on any
    # member of a run, the window needs its first (lower edge) and last (upper edge) member
    same_as_previous = ((pl.col("customer_id") == pl.col("customer_id").shift(1))
                        & (pl.col("started_at") == pl.col("started_at").shift(1))).fill_null(False)
    new_run = ~s.select(same_as_previous).to_series().to_numpy()
    idx = np.arange(n_sessions, dtype=np.int64)
    run_first = np.maximum.accumulate(np.where(new_run, idx, 0)) if n_sessions else idx
    ends_run = np.append(new_run[1:], True) if n_sessions else new_run
    run_last = _run_last(ends_run) if n_sessions else idx

    keys = s.select("customer_id", "started_at", "s_idx")
    queries = p.select("p_idx", "customer_id", "purchased_at").sort("customer_id", "purchased_at")
    upper = queries.join_asof(keys, left_on="purchased_at", right_on="started_at", by="customer_id",
                              strategy="backward", check_sortedness=False)
    lower = (queries.with_columns(window_start=pl.col("purchased_at") - lookback).sort("customer_id", "window_start")
             .join_asof(keys, left_on="window_start", right_on="started_at", by="customer_id",
                        strategy="forward", check_sortedness=False))
    bounds = (upper.select("p_idx", hi=pl.col("s_idx"))
              .join(lower.select("p_idx", lo=pl.col("s_idx")), on="p_idx")
              .sort("p_idx"))
    hi = bounds["hi"].fill_null(-1).to_numpy().astype(np.int64)
    lo = bounds["lo"].fill_null(-1).to_numpy().astype(np.int64)
    valid = (hi >= 0) & (lo >= 0)
    hi = np.where(valid, run_last[np.maximum(hi, 0)], -1) if n_sessions else hi
    lo = np.where(valid, run_first[np.maximum(lo, 0)], 0) if n_sessions else lo
    valid &= lo <= hi  # the same buyer is given by the as-of joins' `by`
    lo = np.maximum(lo, hi - int(max_touches) + 1)
    n = np.where(valid, hi - lo + 1, 0)

    # one row per purchase and touch
    touched = np.flatnonzero(n)
    counts = n[touched]
    row_p = np.repeat(touched, counts)
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    offset = np.arange(row_p.size, dtype=np.int64) - starts
    row_s = lo[row_p] + offset
    n_row = n[row_p]

    channel = s["channel"]
    started_us = s["started_at"].dt.epoch("us").to_numpy()
    not_direct = (channel != DIRECT_CHANNEL).fill_null(True).to_numpy()
    last_not_direct = np.maximum.accumulate(np.where(not_direct, idx, -1)) if n_sessions else idx
    lnd = np.where(valid, last_not_direct[np.maximum(hi, 0)] if n_sessions else -1, -1)
    lnd = np.where(lnd >= lo, lnd, hi)  # all direct: the last touch
    age_days = (started_us[hi[row_p]] - started_us[row_s]) / _US_PER_DAY if row_s.size else np.zeros(0)
    weight = np.exp2(-age_days / float(half_life_days))  # relative to the latest touch: >= 1 in sum
    weight_sum = np.bincount(row_p, weights=weight, minlength=p.height)
    middle = np.where(n_row > 2, 0.2 / np.maximum(n_row - 2, 1), 0.0)
    edge = np.where(n_row == 1, 1.0, np.where(n_row == 2, 0.5, 0.4))
    first = offset == 0
    last = offset == n_row - 1
    credits = {
        "first_touch": first.astype(np.float64),
        "last_touch": last.astype(np.float64),
        "last_non_direct": (row_s == lnd[row_p]).astype(np.float64),
        "linear": 1.0 / n_row,
        "position_based": np.where(first | last, edge, middle),
        "time_decay": weight / weight_sum[row_p] if row_p.size else weight,
    }
    touches = pl.DataFrame({
        "p_idx": row_p.astype(np.uint32), "s_idx": row_s.astype(np.uint32),
        "touch_number": (offset + 1).astype(np.int32), "touches": n_row.astype(np.int32),
        **{m: credits[m] for m in ATTRIBUTION_MODELS},
    })
    untouched = np.flatnonzero(~valid).astype(np.uint32)
    none_rows = pl.DataFrame({
        "p_idx": untouched, "s_idx": pl.Series([None] * untouched.size, dtype=pl.UInt32),
        "touch_number": np.ones(untouched.size, np.int32), "touches": np.ones(untouched.size, np.int32),
        **{m: np.ones(untouched.size) for m in ATTRIBUTION_MODELS},
    })
    rows = pl.concat([touches, none_rows]).sort("p_idx", "touch_number")
    p_cols = p.drop("p_idx")
    s_cols = s.select("session_id", "channel", pl.col("started_at").alias("touched_at"))
    s_null = rows["s_idx"].is_null()
    s_gathered = s_cols.select(pl.all().gather(rows["s_idx"].fill_null(0))) if n_sessions else pl.DataFrame(
        {"session_id": [None] * rows.height, "channel": [None] * rows.height, "touched_at": [None] * rows.height},
        schema={"session_id": pl.String, "channel": pl.String, "touched_at": pl.Datetime("us")})
    out = pl.DataFrame([*p_cols.select(pl.all().gather(rows["p_idx"])).get_columns(),
                        *rows.select("touch_number", "touches").get_columns(), *s_gathered.get_columns(),
                        *rows.select(ATTRIBUTION_MODELS).get_columns()])
    return out.with_columns(
        session_id=pl.when(s_null).then(None).otherwise(pl.col("session_id")),
        channel=pl.when(s_null).then(pl.lit(NO_TOUCH_CHANNEL)).otherwise(pl.col("channel")),
        touched_at=pl.when(s_null).then(None).otherwise(pl.col("touched_at")),
    ).select(OUTPUT_COLUMNS)


def _run_last(ends_run: np.ndarray) -> np.ndarray:
    """For each position, the position of the last member of its run (runs end where
    ``ends_run``)."""
    idx = np.arange(ends_run.size, dtype=np.int64)
    # the next run end at or after each position: a running minimum from the right
    return np.minimum.accumulate(np.where(ends_run, idx, ends_run.size)[::-1])[::-1]
