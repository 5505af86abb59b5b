"""Multi-touch attribution (CONTRACT section 8): pipelines.journeys.attribution on hand-computed
fixtures, and fct_attribution / channel_attribution_monthly on the demo snapshot."""
from __future__ import annotations

import datetime as dt
import re

import polars as pl
import pytest

from pipelines import contract
from pipelines.journeys.attribution import ATTRIBUTION_MODELS, attribute

T = dt.datetime(2025, 3, 31, 12, 0)  # the purchase moment of every fixture (UTC)


def purchases(*rows: tuple[str, str, dt.datetime, bool]) -> pl.DataFrame:
    return pl.DataFrame(
        {"order_id": [r[0] for r in rows], "customer_id": [r[1] for r in rows],
         "purchased_at": [r[2] for r in rows], "is_first_purchase": [r[3] for r in rows]},
        schema={"order_id": pl.String, "customer_id": pl.String, "purchased_at": pl.Datetime("us"),
                "is_first_purchase": pl.Boolean})


def sessions(customer: str, touches: list[tuple[float, str]]) -> pl.DataFrame:
    """Sessions of one customer, ``touches`` as (days before T, channel)."""
    return pl.DataFrame(
        {"session_id": [f"{customer}-s{i:02d}" for i in range(len(touches))],
         "customer_id": [customer] * len(touches),
         "started_at": [T - dt.timedelta(days=d) for d, _ in touches],
         "channel": [c for _, c in touches]},
        schema={"session_id": pl.String, "customer_id": pl.String, "started_at": pl.Datetime("us"),
                "channel": pl.String})


def credits(out: pl.DataFrame, order_id: str) -> dict[str, list[float]]:
    rows = out.filter(pl.col("order_id") == order_id).sort("touch_number")
    return {"channel": rows["channel"].to_list(), "touch_number": rows["touch_number"].to_list(),
            **{m: [round(v, 12) for v in rows[m].to_list()] for m in ATTRIBUTION_MODELS}}


def test_the_models_are_the_contracts_list_and_the_marts_columns():
    assert ATTRIBUTION_MODELS == contract.ATTRIBUTION_MODELS
    assert contract.contract_lists()["attribution_models"] == ATTRIBUTION_MODELS
    mart = (contract.DBT_PROJECT / "models" / "marts" / "attribution" / "channel_attribution_monthly.sql").read_text()
    unpivoted = re.search(r"unpivot credited\s+on ([a-z_, ]+)\s+into", mart).group(1)
    assert tuple(c.strip() for c in unpivoted.split(",")) == ATTRIBUTION_MODELS


def test_direct_is_the_channel_the_sessionisation_gives_direct_traffic():
    seed = pl.read_csv(contract.DBT_PROJECT / "seeds" / "channel_groups.csv")
    assert seed.filter(pl.col("channel_group") == "Direct")["channel"].to_list() == ["direct"]


def test_one_touch_gets_every_credit():
    out = attribute(purchases(("o1", "c1", T, True)), sessions("c1", [(3, "email")]))
    assert credits(out, "o1") == {"channel": ["email"], "touch_number": [1], **{m: [1.0] for m in ATTRIBUTION_MODELS}}
    row = out.row(0, named=True)
    assert (row["customer_id"], row["is_first_purchase"], row["session_id"], row["touched_at"], row["touches"]) == (
        "c1", True, "c1-s00", T - dt.timedelta(days=3), 1)


def test_two_touches():
    # 14 and 7 days before: time-decay weights 1/4 and 1/2 -> 1/3 and 2/3
    out = attribute(purchases(("o1", "c1", T, True)), sessions("c1", [(7, "direct"), (14, "paid_search")]))
    assert credits(out, "o1") == {
        "channel": ["paid_search", "direct"], "touch_number": [1, 2],
        "first_touch": [1.0, 0.0], "last_touch": [0.0, 1.0], "last_non_direct": [1.0, 0.0],
        "linear": [0.5, 0.5], "position_based": [0.5, 0.5],
        "time_decay": [round(1 / 3, 12), round(2 / 3, 12)]}


def test_five_touches_under_every_model():
    # days before the purchase 28, 21, 14, 7, 0: time-decay weights 1/16, 1/8, 1/4, 1/2, 1 (sum 31/16)
    out = attribute(purchases(("o1", "c1", T, False)),
                    sessions("c1", [(0, "direct"), (14, "email"), (28, "paid_search"), (7, "direct"),
                                    (21, "organic_search")]))
    got = credits(out, "o1")
    assert got["channel"] == ["paid_search", "organic_search", "email", "direct", "direct"]
    assert got["touch_number"] == [1, 2, 3, 4, 5]
    assert got["first_touch"] == [1.0, 0.0, 0.0, 0.0, 0.0]
    assert got["last_touch"] == [0.0, 0.0, 0.0, 0.0, 1.0]
    assert got["last_non_direct"] == [0.0, 0.0, 1.0, 0.0, 0.0]  # email: the last touch that is not direct
    assert got["linear"] == [0.2] * 5
    assert got["position_based"] == [0.4, round(0.2 / 3, 12), round(0.2 / 3, 12), round(0.2 / 3, 12), 0.4]
    assert got["time_decay"] == [round(w / 31, 12) for w in (1, 2, 4, 8, 16)]
    sums = out.group_by("order_id").agg(pl.col(m).sum() for m in ATTRIBUTION_MODELS)
    for m in ATTRIBUTION_MODELS:
        assert sums[m][0] == pytest.approx(1.0, abs=1e-12)


def test_time_decay_at_the_half_life():
    """A touch 7 days before the purchase weighs half of one at the purchase moment."""
    out = attribute(purchases(("o1", "c1", T, True)), sessions("c1", [(7, "email"), (0, "direct")]))
    assert credits(out, "o1")["time_decay"] == [round(1 / 3, 12), round(2 / 3, 12)]
    # the half-life is a parameter: with 14 days, 7 days before weighs 2^-0.5
    out = attribute(purchases(("o1", "c1", T, True)), sessions("c1", [(7, "email"), (0, "direct")]), half_life_days=14)
    w = 2 ** -0.5
    assert credits(out, "o1")["time_decay"] == [round(w / (1 + w), 12), round(1 / (1 + w), 12)]


def test_the_lookback_edges():
    """Sessions starting exactly 30 days (720 hours) before the purchase and at the purchase
    moment count; a microsecond earlier, or after the purchase, they do not; nor do other
    buyers' sessions."""
    just_before = 30 + 1 / 86_400_000_000  # 30 days and one microsecond
    s = pl.concat([sessions("c1", [(30, "email"), (just_before, "display"), (0, "direct"), (-0.01, "affiliate")]),
                   sessions("c2", [(1, "paid_social")])])
    out = attribute(purchases(("o1", "c1", T, True)), s)
    got = credits(out, "o1")
    assert got["channel"] == ["email", "direct"]
    assert out.sort("touch_number")["touched_at"].to_list() == [T - dt.timedelta(days=30), T]
    # the same edge with a shorter lookback
    out = attribute(purchases(("o1", "c1", T, True)), sessions("c1", [(7, "email"), (7.001, "display")]),
                    lookback_days=7)
    assert credits(out, "o1")["channel"] == ["email"]


def test_more_than_twenty_sessions_keep_the_twenty_most_recent():
    # 25 sessions, one a day from 24 days before the purchase to the purchase day
    s = sessions("c1", [(d, "email" if d == 19 else "direct" if d == 0 else "referral") for d in range(25)])
    out = attribute(purchases(("o1", "c1", T, True)), s)
    got = credits(out, "o1")
    assert len(got["channel"]) == 20 and out["touches"].unique().to_list() == [20]
    assert out.sort("touch_number")["touched_at"].to_list() == [T - dt.timedelta(days=d) for d in range(19, -1, -1)]
    assert got["channel"][0] == "email" and got["first_touch"][0] == 1.0  # 19 days before: the earliest kept
    assert got["linear"] == [0.05] * 20
    assert got["position_based"] == [0.4] + [round(0.2 / 18, 12)] * 18 + [0.4]
    assert got["last_non_direct"][18] == 1.0  # 1 day before (referral); the purchase-day touch is direct
    # a different maximum
    out = attribute(purchases(("o1", "c1", T, True)), s, max_touches=3)
    assert out.sort("touch_number")["touched_at"].to_list() == [T - dt.timedelta(days=d) for d in (2, 1, 0)]


def test_a_purchase_without_sessions_gets_one_none_touch():
    out = attribute(purchases(("o1", "c1", T, True), ("o2", "c2", T, False)),
                    sessions("c1", [(40, "email")]))  # c1's only session is outside the lookback
    for order in ("o1", "o2"):
        assert credits(out, order) == {"channel": ["(none)"], "touch_number": [1],
                                       **{m: [1.0] for m in ATTRIBUTION_MODELS}}
    assert out["session_id"].to_list() == [None, None] and out["touched_at"].to_list() == [None, None]
    # no sessions at all
    empty = sessions("c1", [])
    out = attribute(purchases(("o1", "c1", T, True)), empty)
    assert out["channel"].to_list() == ["(none)"]


def test_last_non_direct_with_only_direct_touches_credits_the_last():
    out = attribute(purchases(("o1", "c1", T, True)), sessions("c1", [(10, "direct"), (5, "direct"), (1, "direct")]))
    assert credits(out, "o1")["last_non_direct"] == [0.0, 0.0, 1.0]


def test_touches_belong_to_each_purchase_of_a_buyer_separately():
    """Two purchases of one buyer 10 days apart share the sessions in both lookbacks; a
    session after the first purchase is a touch of the second only; ties in time by session_id."""
    s = sessions("c1", [(15, "email"), (12, "display"), (5, "paid_search")])
    p = purchases(("o1", "c1", T - dt.timedelta(days=10), True), ("o2", "c1", T, False))
    out = attribute(p, s)
    assert credits(out, "o1")["channel"] == ["email", "display"]
    assert credits(out, "o2")["channel"] == ["email", "display", "paid_search"]
    assert out.filter(pl.col("order_id") == "o1")["is_first_purchase"].unique().to_list() == [True]
    tied = pl.DataFrame({"session_id": ["b", "a"], "customer_id": ["c1", "c1"], "started_at": [T, T],
                         "channel": ["email", "display"]})
    out = attribute(purchases(("o1", "c1", T, True)), tied)
    assert credits(out, "o1")["channel"] == ["display", "email"]  # a before b


@pytest.mark.parametrize("lookback_days, max_touches, half_life_days", [(30, 20, 7), (7, 3, 2), (45, 50, 30)])
def test_the_same_rows_as_the_duckdb_query_on_random_journeys(lookback_days, max_touches, half_life_days):
    """A second opinion: the rules written as one DuckDB query (tools/bench/attribution.py) give
    the same rows on 300 buyers with random sessions and purchases over 200 days, on whole hours
    so that ties in time and sessions exactly at the window's edges occur, about half direct."""
    import numpy as np

    from tools.bench.attribution import attribute_sql, same_rows

    rng = np.random.default_rng(11)
    hours = 200 * 24
    n_s, n_p = 30000, 900
    s = pl.DataFrame({"session_id": [f"s{i:05d}" for i in rng.permutation(n_s)],
                      "customer_id": [f"c{i}" for i in rng.integers(0, 300, n_s)],
                      "started_at": [T - dt.timedelta(hours=int(h)) for h in rng.integers(0, hours, n_s)],
                      "channel": rng.choice(["direct", "direct", "email", "paid_search", "referral"], n_s)})
    p = pl.DataFrame({"order_id": [f"o{i:04d}" for i in range(n_p)],
                      "customer_id": [f"c{i}" for i in rng.integers(0, 320, n_p)],  # some buyers have no session
                      "purchased_at": [T - dt.timedelta(hours=int(h)) for h in rng.integers(0, hours, n_p)],
                      "is_first_purchase": rng.random(n_p) < 0.3})
    ours = attribute(p, s, lookback_days, max_touches, half_life_days)
    theirs = attribute_sql(p, s, lookback_days, max_touches, half_life_days)
    assert ours.height > n_p and ours["touches"].max() <= max_touches
    if max_touches <= 20:  # the cap is reached
        assert ours["touches"].max() == max_touches
    assert same_rows(ours, theirs)


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError):
        attribute(purchases(("o1", "c1", T, True)), sessions("c1", []), lookback_days=0)


# --- the demo warehouse (120 customers, seed 7, as of 2025-12-31) -----------------------------

def test_demo_credits_sum_to_one_per_purchase_and_model(demo_warehouse):
    from tests.pipeline import query

    snapshot = demo_warehouse / "warehouse" / "serving.duckdb"
    sums = ", ".join(f"max(abs(s_{m} - 1))" for m in ATTRIBUTION_MODELS)
    per_purchase = ", ".join(f"sum({m}) as s_{m}" for m in ATTRIBUTION_MODELS)
    worst = query(snapshot, f"select {sums} from (select order_id, {per_purchase} from marts.fct_attribution "
                            "group by order_id)")[0]
    assert all(w <= 1e-9 for w in worst), worst
    # every purchase is there, and only purchases
    missing, extra, purchases_count = query(snapshot, """
        select
            (select count(*) from marts.fct_orders o where o.order_number is not null
               and o.order_id not in (select order_id from marts.fct_attribution)),
            (select count(distinct order_id) from marts.fct_attribution
               where order_id not in (select order_id from marts.fct_orders where order_number is not null)),
            (select count(distinct order_id) from marts.fct_attribution)""")[0]
    assert (missing, extra) == (0, 0) and purchases_count > 100
    # and the monthly mart holds the same credits per model
    rows = query(snapshot, """
        select model, sum(attributed_purchases), sum(attributed_first_purchases)
        from marts.channel_attribution_monthly group by model order by model""")
    first = query(snapshot, "select count(*) from marts.fct_orders where order_number = 1")[0][0]
    assert [r[0] for r in rows] == sorted(ATTRIBUTION_MODELS)
    for _, attributed, attributed_first in rows:
        assert attributed == pytest.approx(purchases_count, abs=1e-6)
        assert attributed_first == pytest.approx(first, abs=1e-6)


def test_demo_first_touch_of_first_purchases_agrees_with_the_acquisition_channel(demo_warehouse):
    """acquisition_channel (int_acquisition_channels_attributed) is the channel of the person's
    earliest touch over web sessions, the CRM lead source at contact creation and the order
    channel (sessions win ties). The comparison covers the first purchases whose first touch
    is a session that is the buyer's earliest session (no other session of the buyer at the
    same instant) and starts at the buyer's first_seen_at, the earliest record of any source:
    then no contact creation or order came earlier, the acquisition touch is that session and
    both must name its channel."""
    from tests.pipeline import query

    snapshot = demo_warehouse / "warehouse" / "serving.duckdb"
    covered, agreeing, first_purchases = query(snapshot, """
        with first_sessions as (
            select customer_id, min(started_at) as first_session_at, count(*) as sessions_then
            from marts.fct_sessions s
            where started_at = (select min(started_at) from marts.fct_sessions t where t.customer_id = s.customer_id)
            group by customer_id
        ),
        compared as (
            select a.channel, c.acquisition_channel
            from marts.fct_attribution a
            inner join marts.dim_customers c using (customer_id)
            inner join first_sessions f using (customer_id)
            where a.is_first_purchase and a.touch_number = 1 and a.session_id is not null
              and a.touched_at = f.first_session_at and f.sessions_then = 1
              and f.first_session_at = c.first_seen_at
        )
        select count(*), count(*) filter (where channel = acquisition_channel),
               (select count(*) from marts.fct_orders where order_number = 1)
        from compared""")[0]
    assert covered >= first_purchases // 3, (covered, first_purchases)  # 42 of 82 on 2026-12-07
    assert agreeing == covered
