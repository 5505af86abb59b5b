"""Early warning rules (CONTRACT section 7) on hand-computed fixtures."""
from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from pipelines.lifecycle import early_warning as ew

D0 = dt.date(2024, 1, 1)
RULES = ew.WarningRules()


def day(n: int) -> dt.date:
    return D0 + dt.timedelta(days=n)


def purchases(rows: list[tuple[str, int]]) -> pl.DataFrame:
    return pl.DataFrame({"customer_id": [c for c, _ in rows], "day": [day(n) for _, n in rows],
                         "net_revenue": [10.0] * len(rows)}, schema={"customer_id": pl.String, "day": pl.Date,
                                                                      "net_revenue": pl.Float64})


def asked(rows: list[tuple[str, int]]) -> pl.DataFrame:
    return pl.DataFrame({"customer_id": [c for c, _ in rows], "day": [day(n) for _, n in rows]})


def signals(rows: list[tuple[str, str, int, float | None]]) -> pl.DataFrame:
    return pl.DataFrame({"customer_id": [r[0] for r in rows], "signal": [r[1] for r in rows],
                         "day": [day(r[2]) for r in rows], "value": [r[3] for r in rows]},
                        schema={"customer_id": pl.String, "signal": pl.String, "day": pl.Date, "value": pl.Float64})


def test_expected_next_purchase_date_with_one_and_several_purchase_days():
    # A: days 0, 10, 31 (two orders on day 31 are one purchase day): mean gap 15.5 -> 16 days
    # C: days 5 and 25 (first-to-second gap 20); A's first-to-second gap is 10
    # B: one purchase day (0): last day + the median first-to-second gap of all repeat buyers
    days = ew.purchase_days(purchases([("A", 0), ("A", 10), ("A", 31), ("A", 31), ("C", 5), ("C", 25), ("B", 0)]))
    got = ew.profiles(days, asked([("A", 50), ("B", 50), ("B", 9), ("C", 26), ("X", 50)]), RULES)
    rows = {(r["customer_id"], r["day"]): r for r in got.iter_rows(named=True)}
    a = rows[("A", day(50))]
    assert (a["purchase_days"], a["days_since_last_purchase"], a["avg_days_between_purchases"]) == (3, 19, 15.5)
    assert (a["expected_next_purchase_date"], a["days_overdue"]) == (day(47), 3)
    b = rows[("B", day(50))]  # median of the gaps 10 (A, second day 10) and 20 (C, second day 25) = 15
    assert (b["purchase_days"], b["avg_days_between_purchases"], b["expected_next_purchase_date"], b["days_overdue"]) == (
        1, None, day(15), 35)
    early = rows[("B", day(9))]  # nobody had a second purchase day by day 9: no expectation
    assert (early["expected_next_purchase_date"], early["days_overdue"]) == (None, None)
    c = rows[("C", day(26))]
    assert (c["expected_next_purchase_date"], c["days_overdue"]) == (day(45), 0)
    assert rows[("X", day(50))]["purchase_days"] is None


def test_median_first_gaps_by_day():
    days = ew.purchase_days(purchases([("A", 0), ("A", 10), ("C", 5), ("C", 25), ("E", 0), ("E", 30), ("E", 40)]))
    assert ew.median_first_gaps(days, [day(9), day(10), day(25), day(29), day(30)]) == {
        day(9): None, day(10): 10.0, day(25): 15.0, day(29): 15.0, day(30): 20.0}


def test_lapsing_is_at_risk_on_day_91_and_ends_when_churned_on_day_181():
    days = ew.purchase_days(purchases([("A", 0)]))
    got = ew.profiles(days, asked([("A", 90), ("A", 91), ("A", 180), ("A", 181)]), RULES).sort("day")
    assert got["lapsing"].to_list() == [False, True, True, False]


@pytest.mark.parametrize("reason, facts, inside, outside", [
    # (the signals; a day on which the reason holds; a day one later on which it no longer does)
    ("nps_detractor", [("nps", 0, 6.0)], 364, 365),
    ("high_effort", [("ces", 0, 3.0)], 364, 365),
    ("recent_cancellation", [("cancellation", 0, None)], 89, 90),
    ("lost_deal", [("deal_lost", 0, None)], 89, 90),
    # days 91-180 counting back from the day itself (day 1): d-179 .. d-90
    ("stopped_visiting", [("session", 0, None)], 179, 180),
])
def test_reason_windows_at_their_boundaries(reason, facts, inside, outside):
    sig = signals([("P", name, when, value) for name, when, value in facts])
    days = ew.purchase_days(purchases([("P", 0)]))
    held = ew.reasons(days, sig, asked([("P", inside), ("P", outside)]), RULES)
    on = held.filter(pl.col("reason") == reason)["day"].to_list()
    assert on == [day(inside)]


def test_reasons_that_depend_on_scores_and_quiet_stretches():
    sig = signals([("P", "nps", 0, 7.0), ("Q", "nps", 0, 2.0), ("Q", "nps", 10, 9.0),  # the latest answer counts
                   ("R", "ces", 0, 4.0), ("S", "session", 50, None), ("S", "session", 150, None)])
    days = ew.purchase_days(purchases([("P", 0), ("Q", 0), ("R", 0), ("S", 0)]))
    held = ew.reasons(days, sig, asked([("P", 20), ("Q", 20), ("R", 20), ("S", 160), ("S", 90)]), RULES)
    got = {(r["customer_id"], r["reason"]) for r in held.iter_rows(named=True)}
    assert ("P", "nps_detractor") not in got and ("Q", "nps_detractor") not in got
    assert ("R", "high_effort") not in got
    # S: a session on day 150 is within the last 90 days of day 160: still visiting; on day 90
    # the session of day 50 is within the last 90 days too
    assert ("S", "stopped_visiting") not in got


def test_declining_frequency_needs_two_before_and_fewer_than_half_since():
    # W: 4 purchase days in days -359..-180 before day 400 (days 41..220), 1 in the last 180 (221..400)
    rows = [("W", 50), ("W", 60), ("W", 70), ("W", 80), ("W", 300),
            ("V", 50), ("V", 60), ("V", 300), ("V", 310),  # 2 before, 2 since: not declining
            ("U", 50), ("U", 300)]  # 1 before: not enough to tell
    days = ew.purchase_days(purchases(rows))
    held = ew.reasons(days, signals([]), asked([("W", 400), ("V", 400), ("U", 400)]), RULES)
    assert held.filter(pl.col("reason") == "declining_frequency")["customer_id"].to_list() == ["W"]
    # the earlier window of day 400 is days 41..220: 2 purchase days on its edges, none since
    days = ew.purchase_days(purchases([("T", 41), ("T", 220)]))
    assert ew.reasons(days, signals([]), asked([("T", 400)]), RULES).filter(
        pl.col("reason") == "declining_frequency").height == 1


def test_overdue_and_lapsing_and_the_order_of_reasons():
    days = ew.purchase_days(purchases([("A", 0), ("A", 10)]))
    held = ew.reasons(days, signals([("A", "cancellation", 95, None)]), asked([("A", 120)]), RULES)
    assert sorted(held["reason"].to_list()) == ["lapsing", "overdue", "recent_cancellation"]
    assert ew.ordered_reasons(held)["risk_reasons"].to_list() == [["overdue", "lapsing", "recent_cancellation"]]
    by_lift = ew.ordered_reasons(held, {"recent_cancellation": 2.5, "lapsing": 1.2})
    assert by_lift["risk_reasons"].to_list() == [["recent_cancellation", "lapsing", "overdue"]]


def test_the_probability_of_no_purchase_by_hand():
    params = {"r": 0.25, "alpha": 4.0, "a": 0.8, "b": 2.4}
    # a one-time buyer is alive (p_alive = 1): ((alpha + T) / (alpha + T + h))^r
    one = ew.no_purchase_probability(params, 90, [0], [0], [36])[0]
    assert one == pytest.approx((40 / 130) ** 0.25)
    # a repeat buyer: 1 - p + p ((alpha + T) / (alpha + T + h))^(r + x)
    x, tx, T = 2, 20.0, 36.0
    p = 1 / (1 + 0.8 / (2.4 + x - 1) * ((4 + T) / (4 + tx)) ** (0.25 + x))
    assert ew.no_purchase_probability(params, 90, [x], [tx], [T])[0] == pytest.approx(1 - p + p * (40 / 130) ** 2.25)


def test_risk_bands_at_their_boundaries():
    got = pl.DataFrame({"r": [0.0, 0.3299, 0.33, 0.6599, 0.66, 1.0, None]}).select(ew.risk_band(pl.col("r"), RULES))
    assert got.to_series().to_list() == ["low", "low", "medium", "medium", "high", "high", None]


def test_validation_metrics_by_hand_on_six_persons():
    score = np.array([0.9, 0.8, 0.7, 0.6, 0.4, 0.2])
    outcome = np.array([1, 0, 1, 1, 0, 0])
    # pairs (event, no event): 3 x 3 = 9; the event scores beat: 0.9 > all three (3), 0.7 > 0.4, 0.2 (2),
    # 0.6 > 0.4, 0.2 (2): 7 of 9
    assert ew.auc(score, outcome) == pytest.approx(7 / 9)
    assert ew.auc(np.array([1, 1, 1, 1]), np.array([1, 0, 1, 0])) == 0.5  # ties count half
    assert ew.auc(score, np.ones(6)) is None
    # top decile: ceil(6/10) = 1 person, the 0.9 one, who had the event: 1 / (3/6) = 2
    assert ew.top_decile_lift(score, outcome, np.arange(6)) == pytest.approx(2.0)
    assert ew.brier_score(score, outcome) == pytest.approx(np.mean((score - outcome) ** 2))
    assert ew.brier_score(score, outcome) == pytest.approx((0.01 + 0.64 + 0.09 + 0.16 + 0.16 + 0.04) / 6)


def test_drivers_by_hand():
    population = pl.DataFrame({"customer_id": list("ABCDEF"), "no_purchase": [True, True, False, True, False, False]})
    held = pl.DataFrame({"customer_id": ["A", "B", "C", "A"], "day": [D0] * 4,
                         "reason": ["overdue", "overdue", "overdue", "lost_deal"]})
    got = {r["reason"]: r for r in ew.drivers(held, population).iter_rows(named=True)}
    assert got["overdue"]["customers"] == 3
    assert got["overdue"]["share_without_purchase"] == pytest.approx(2 / 3)
    assert got["overdue"]["share_without_purchase_others"] == pytest.approx(1 / 3)
    assert got["overdue"]["lift"] == pytest.approx(2.0)
    assert got["lost_deal"]["lift"] == pytest.approx(1 / (2 / 5))


def test_churn_risk_covers_the_buyers_not_churned_and_validation_scores_them():
    rng = np.random.default_rng(3)
    rows = []
    for i in range(400):  # regular buyers every ~30 days, some stop early
        stop = 700 if i % 3 else 250
        start = int(rng.integers(0, 60))
        rows += [(f"c{i:03d}", d) for d in range(start, stop, 25 + i % 20)]
    buys = purchases(rows)
    scored = ew.churn_risk(buys, day(600), RULES)
    last = buys.group_by("customer_id").agg(last=pl.col("day").filter(pl.col("day") <= day(600)).max())
    not_churned = last.filter((pl.lit(day(600)) - pl.col("last")).dt.total_days() <= 180)["customer_id"]
    assert sorted(scored["customer_id"].to_list()) == sorted(not_churned.to_list())
    assert scored["churn_risk"].is_between(0, 1).all()
    metrics, population = ew.validation(buys, day(690), RULES)
    assert metrics["scorer"].to_list() == ["churn_risk", "recency"]
    assert metrics["cutoff_date"].to_list() == [day(600)] * 2
    assert metrics["customers"].to_list() == [population.height] * 2 == [len(not_churned)] * 2
    assert metrics["brier_score"][1] is None


def test_the_day_churn_risk_became_high_by_hand():
    params = {"r": 0.25, "alpha": 4.0, "a": 0.8, "b": 2.4}
    rules = ew.WarningRules(churn_risk_horizon_days=90, risk_band_high=0.66)
    # a one-time buyer: risk = ((4 + T) / (94 + T))^0.25 >= 0.66  <=>  T >= the smallest such whole day
    ages = np.arange(0, 400)
    first = int(ages[((4 + ages) / (94 + ages)) ** 0.25 >= 0.66][0])
    assert ew.high_risk_since(params, rules, [0], [0], [300])[0] == first
    assert np.isnan(ew.high_risk_since(params, rules, [0], [0], [first - 1])[0])  # not yet
    assert ew.high_risk_since(params, rules, [0], [0], [first])[0] == first
