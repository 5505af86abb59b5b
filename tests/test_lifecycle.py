"""Lifecycle stage rules (CONTRACT section 5) in pipelines.lifecycle.stages: hand-computed spells on
tiny fact tables, one rule boundary per test.

Days are written as offsets from DAY0 (2024-01-01) so that the boundaries read as in the
CONTRACT: a purchase on day 0 turns at_risk on day 91 and churned on day 181.
"""
from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from pipelines.lifecycle.stages import (
    FACT_SCHEMA,
    PHASES,
    STAGES,
    LifecycleRules,
    current_stages,
    monthly_stages,
    stage_spells,
)

DAY0 = dt.date(2024, 1, 1)


def day(n: int) -> dt.date:
    return DAY0 + dt.timedelta(days=n)


def facts(*rows) -> pl.LazyFrame:
    """rows: (customer_id, fact, day offset[, value[, fact_at]])."""
    out = []
    for r in rows:
        cid, fact, offset = r[:3]
        out.append({
            "customer_id": cid, "fact": fact, "fact_date": day(offset),
            "value": float(r[3]) if len(r) > 3 and r[3] is not None else None,
            "fact_at": r[4] if len(r) > 4 else None,
        })
    return pl.LazyFrame(out, schema=FACT_SCHEMA)


def rules(as_of: int = 1000, **kw) -> LifecycleRules:
    return LifecycleRules(as_of_date=day(as_of), **kw)


def spells(f: pl.LazyFrame, r: LifecycleRules, cid: str = "a") -> list[tuple[str, int, int | None]]:
    """(stage, from offset, to offset or None) of one person's spells, in order."""
    df = stage_spells(f, r).collect().filter(pl.col("customer_id") == cid).sort("valid_from")
    return [
        (s, (vf - DAY0).days, None if vt is None else (vt - DAY0).days)
        for s, vf, vt in df.select("lifecycle_stage", "valid_from", "valid_to").iter_rows()
    ]


def stage_on(f: pl.LazyFrame, r: LifecycleRules, cid: str = "a") -> str | None:
    cur = current_stages(stage_spells(f, r)).collect().filter(pl.col("customer_id") == cid)
    return cur["lifecycle_stage"].item() if cur.height else None


def buyer(*purchase_days: int, react: tuple[int, ...] = ()) -> list[tuple]:
    first = min(purchase_days)
    return [("a", "seen", first), ("a", "contact", first),
            *(("a", "purchase", d, 1 if d in react else 0) for d in purchase_days)]


# ------------------------------------------------------------------------- time rules


def test_at_risk_on_day_91_and_churned_on_day_181():
    f = facts(*buyer(0))
    assert spells(f, rules()) == [
        ("first_time_buyer", 0, 91),  # day 90: 90 days since the purchase, not > 90
        ("at_risk", 91, 181),         # day 180: 180 days, not > 180
        ("churned", 181, None),
    ]


@pytest.mark.parametrize(("as_of", "stage"), [
    (90, "first_time_buyer"), (91, "at_risk"), (180, "at_risk"), (181, "churned")])
def test_current_stage_at_the_boundaries(as_of, stage):
    assert stage_on(facts(*buyer(0)), rules(as_of)) == stage


def test_thresholds_come_from_the_rules():
    f = facts(*buyer(0))
    r = rules(at_risk_after_days=10, churn_after_days=20)
    assert spells(f, r) == [("first_time_buyer", 0, 11), ("at_risk", 11, 21), ("churned", 21, None)]


def test_a_new_purchase_resets_the_clock():
    f = facts(*buyer(0, 100))
    assert spells(f, rules()) == [
        ("first_time_buyer", 0, 91), ("at_risk", 91, 100), ("repeat_buyer", 100, 191),
        ("at_risk", 191, 281), ("churned", 281, None)]


def test_reactivated_spell_boundaries():
    f = facts(*buyer(0, 181, react=(181,)))
    got = spells(f, rules())
    # day 181: the old purchase would be churned, but the new one happened that day
    assert got == [("first_time_buyer", 0, 91), ("at_risk", 91, 181), ("reactivated", 181, 272),
                   ("at_risk", 272, 362), ("churned", 362, None)]


def test_not_a_reactivation_without_the_flag():
    f = facts(*buyer(0, 180))  # 180 days after: fct_orders does not flag it
    assert spells(f, rules())[2] == ("repeat_buyer", 180, 271)


def test_a_purchase_after_reactivation_ends_it():
    f = facts(*buyer(0, 181, 200, react=(181,)))
    assert spells(f, rules())[2:4] == [("reactivated", 181, 200), ("repeat_buyer", 200, 291)]


def test_loyal_window_edges():
    # loyal = >= 2 purchases on days d-29..d: purchases on days 0 and 10 make day 10 loyal;
    # on day 29 the purchase of day 0 is still in the window (d-N+1 = 0), on day 30 it is not
    r = rules(loyal_window_days=30, loyal_min_orders=2)
    assert spells(facts(*buyer(0, 10)), r) == [
        ("first_time_buyer", 0, 10), ("loyal", 10, 30), ("repeat_buyer", 30, 101),
        ("at_risk", 101, 191), ("churned", 191, None)]


def test_loyal_counts_orders_not_days():
    r = rules(loyal_min_orders=4)
    f = facts(("a", "seen", 0), ("a", "contact", 0), *(("a", "purchase", d, 0) for d in (0, 0, 5, 5)))
    assert spells(f, r)[:2] == [("repeat_buyer", 0, 5), ("loyal", 5, 96)]


def test_default_loyal_window_is_365_days():
    days = (0, 80, 160, 240)
    got = spells(facts(*buyer(*days)), rules())
    assert ("loyal", 240, 331) in got  # at_risk on 240 + 91 comes before the window closes


def test_at_risk_beats_loyal_and_advocate():
    f = facts(*buyer(0, 1, 2, 3), ("a", "nps", 3, 10))
    assert [s for s, *_ in spells(f, rules())] == ["first_time_buyer", "repeat_buyer", "advocate", "at_risk",
                                                    "churned"]


# ------------------------------------------------------------------------- advocate


def test_advocate_through_nps():
    f = facts(*buyer(0), ("a", "nps", 10, 9), ("a", "nps", 40, 6), ("a", "nps", 50, 10))
    assert spells(f, rules())[:4] == [
        ("first_time_buyer", 0, 10), ("advocate", 10, 40), ("first_time_buyer", 40, 50), ("advocate", 50, 91)]


def test_nps_8_is_no_promoter_and_the_latest_response_of_a_day_wins():
    early, late = dt.datetime(2024, 1, 11, 9), dt.datetime(2024, 1, 11, 18)
    f = facts(*buyer(0), ("a", "nps", 5, 8), ("a", "nps", 10, 10, late), ("a", "nps", 10, 3, early))
    assert spells(f, rules())[:2] == [("first_time_buyer", 0, 10), ("advocate", 10, 91)]


def test_a_promoter_without_purchase_is_no_advocate():
    f = facts(("a", "seen", 0), ("a", "contact", 0), ("a", "nps", 5, 10))
    assert spells(f, rules()) == [("lead", 0, None)]


def test_advocate_through_a_referral():
    # the referral fact comes on the day the referred person first purchased
    f = facts(*buyer(0), ("a", "referral", 30))
    assert spells(f, rules())[:2] == [("first_time_buyer", 0, 30), ("advocate", 30, 91)]


def test_a_referral_before_the_own_first_purchase_counts_from_that_purchase():
    f = facts(("a", "seen", 0), ("a", "contact", 0), ("a", "referral", 5), ("a", "purchase", 20, 0))
    assert spells(f, rules())[:2] == [("lead", 0, 20), ("advocate", 20, 111)]


# ------------------------------------------------------------------------- recruitment


def test_visitor_then_lead():
    f = facts(("a", "seen", 0), ("a", "contact", 5))
    assert spells(f, rules()) == [("visitor", 0, 5), ("lead", 5, None)]


def test_trial_lasts_trial_days():
    f = facts(("a", "seen", 0), ("a", "contact", 0), ("a", "trial", 10))
    # trial_start on day 10 counts on days 10..39 (d-29..d); day 40 is a lead again
    assert spells(f, rules()) == [("lead", 0, 10), ("trial", 10, 40), ("lead", 40, None)]


def test_trial_ends_with_a_purchase():
    f = facts(("a", "seen", 0), ("a", "contact", 0), ("a", "trial", 10), ("a", "purchase", 15, 0))
    assert spells(f, rules())[:3] == [("lead", 0, 10), ("trial", 10, 15), ("first_time_buyer", 15, 106)]


def test_opportunity_through_an_open_deal():
    f = facts(("a", "seen", 0), ("a", "contact", 0), ("a", "deal_open", 5), ("a", "deal_close", 20))
    assert spells(f, rules()) == [("lead", 0, 5), ("opportunity", 5, 20), ("lead", 20, None)]


def test_two_overlapping_deals_keep_the_opportunity_open():
    f = facts(("a", "seen", 0), ("a", "contact", 0), ("a", "deal_open", 5), ("a", "deal_open", 10),
              ("a", "deal_close", 20), ("a", "deal_close", 30))
    assert spells(f, rules()) == [("lead", 0, 5), ("opportunity", 5, 30), ("lead", 30, None)]


def test_a_deal_closing_the_day_it_opens_is_never_open():
    f = facts(("a", "seen", 0), ("a", "contact", 0), ("a", "deal_open", 5), ("a", "deal_close", 5))
    assert spells(f, rules()) == [("lead", 0, None)]


@pytest.mark.parametrize(("score", "stage"), [(50, "opportunity"), (49.5, "lead")])
def test_opportunity_through_the_lead_score(score, stage):
    f = facts(("a", "seen", 0), ("a", "contact", 0), ("a", "lead_score", 0, score))
    assert spells(f, rules()) == [(stage, 0, None)]


def test_opportunity_through_a_high_intent_event():
    f = facts(("a", "seen", 0), ("a", "contact", 0), ("a", "intent", 10))
    assert spells(f, rules()) == [("lead", 0, 10), ("opportunity", 10, 40), ("lead", 40, None)]


def test_high_intent_makes_only_a_lead_an_opportunity():
    f = facts(("a", "seen", 0), ("a", "intent", 10))
    assert spells(f, rules()) == [("visitor", 0, None)]


def test_trial_beats_opportunity():
    f = facts(("a", "seen", 0), ("a", "contact", 0), ("a", "deal_open", 0), ("a", "trial", 10))
    assert spells(f, rules()) == [("opportunity", 0, 10), ("trial", 10, 40), ("opportunity", 40, None)]


# ------------------------------------------------------------------------- as_of_date and persons


def test_facts_after_as_of_date_are_ignored():
    f = facts(*buyer(0), ("a", "purchase", 50, 0), ("b", "seen", 60))
    r = rules(as_of=49)
    assert spells(f, r) == [("first_time_buyer", 0, None)]
    assert stage_on(f, r, "b") is None  # first seen after as_of_date: no spells


def test_state_does_not_leak_between_persons():
    f = facts(*buyer(0, 1), ("a", "nps", 1, 10), ("a", "deal_open", 0), ("a", "trial", 0),
              ("b", "seen", 0))
    assert spells(f, rules(as_of=5), "b") == [("visitor", 0, None)]
    # and the other way round: a person sorted before a buyer starts clean too
    f = facts(("0", "seen", 0), *buyer(0, 1))
    assert spells(f, rules(as_of=5), "0") == [("visitor", 0, None)]


def test_spells_are_contiguous_and_phases_match():
    f = facts(*buyer(0, 181, 200, react=(181,)), ("a", "nps", 190, 10), ("b", "seen", 3), ("b", "contact", 9))
    df = stage_spells(f, rules()).collect().sort("customer_id", "valid_from")
    for _, g in df.group_by("customer_id"):
        assert g["valid_to"].to_list()[:-1] == g["valid_from"].to_list()[1:]
        assert g["valid_to"][-1] is None
        assert (g["lifecycle_stage"] != g["lifecycle_stage"].shift(1)).fill_null(True).all()
    assert all(PHASES[s] == p for s, p in df.select("lifecycle_stage", "lifecycle_phase").iter_rows())
    assert set(df["lifecycle_stage"]) <= set(STAGES)


def test_rules_from_dbt_vars_and_validation():
    r = LifecycleRules.from_vars({
        "as_of_date": "2025-06-30", "at_risk_after_days": "60", "churn_after_days": 120,
        "loyal_min_orders": 3, "loyal_window_days": 180, "opportunity_min_lead_score": "40",
        "high_intent_window_days": 14, "trial_days": 21})
    assert (r.as_of_date, r.at_risk_after_days, r.churn_after_days, r.opportunity_min_lead_score) == (
        dt.date(2025, 6, 30), 60, 120, 40.0)
    with pytest.raises(ValueError, match="churn_after_days"):
        LifecycleRules(as_of_date=DAY0, at_risk_after_days=100, churn_after_days=50)
    with pytest.raises(ValueError, match="trial_days"):
        LifecycleRules(as_of_date=DAY0, trial_days=0)


# ------------------------------------------------------------------------- monthly grid


def test_monthly_grid_from_first_seen_to_as_of_month():
    f = facts(("a", "seen", 14), ("a", "contact", 14), ("a", "purchase", 40, 0),  # 2024-01-15, 2024-02-10
              ("v", "seen", 0))  # an anonymous visitor: not in the grid
    r = rules(as_of=105)  # 2024-04-15
    s = stage_spells(f, r)
    grid = monthly_stages(s, r.as_of_date).collect()
    assert grid.select("month", "month_end", "customer_id", "lifecycle_stage", "previous_stage").rows() == [
        (dt.date(2024, 1, 1), dt.date(2024, 1, 31), "a", "lead", None),
        (dt.date(2024, 2, 1), dt.date(2024, 2, 29), "a", "first_time_buyer", "lead"),
        (dt.date(2024, 3, 1), dt.date(2024, 3, 31), "a", "first_time_buyer", "first_time_buyer"),
        (dt.date(2024, 4, 1), dt.date(2024, 4, 15), "a", "first_time_buyer", "first_time_buyer"),
    ]


def test_monthly_grid_uses_the_stage_at_the_month_end():
    # a trial from 2024-01-05 to 2024-02-04 (exclusive) holds at the January month-end only;
    # a deal open 2024-02-10 .. 2024-02-20 holds at no month-end at all
    f = facts(("a", "seen", 0), ("a", "contact", 0), ("a", "trial", 4), ("a", "deal_open", 40),
              ("a", "deal_close", 50))
    r = rules(as_of=75)  # 2024-03-16
    grid = monthly_stages(stage_spells(f, r), r.as_of_date).collect()
    assert grid["lifecycle_stage"].to_list() == ["trial", "lead", "lead"]
    assert grid["previous_stage"].to_list() == [None, "trial", "lead"]


def test_monthly_grid_across_a_year_boundary_and_as_of_on_a_month_end():
    f = facts(("a", "seen", -1), ("a", "contact", -1))  # 2023-12-31
    r = LifecycleRules(as_of_date=dt.date(2024, 2, 29))
    grid = monthly_stages(stage_spells(f, r), r.as_of_date).collect()
    assert grid.select("month", "month_end").rows() == [
        (dt.date(2023, 12, 1), dt.date(2023, 12, 31)), (dt.date(2024, 1, 1), dt.date(2024, 1, 31)),
        (dt.date(2024, 2, 1), dt.date(2024, 2, 29))]


def test_grid_members_need_contact_data_or_a_purchase_by_as_of_date():
    f = facts(("a", "seen", 0), ("a", "contact", 10), ("b", "seen", 0), ("b", "purchase", 3, 0),
              ("c", "seen", 0), ("c", "trial", 1), ("d", "seen", 0), ("d", "contact", 50))
    r = rules(as_of=20)
    s = stage_spells(f, r).collect()
    flags = dict(s.group_by("customer_id").agg(pl.col("in_monthly_grid").unique()).iter_rows())
    assert flags == {"a": [True], "b": [True], "c": [False], "d": [False]}  # the same on every spell
    grid = monthly_stages(s.lazy(), r.as_of_date).collect()
    assert sorted(set(grid["customer_id"])) == ["a", "b"]
    # a's January grid row is a lead although a was a visitor until day 10: the stage at the month-end
    assert grid.filter(pl.col("customer_id") == "a")["lifecycle_stage"].to_list() == ["lead"]


def test_grid_does_not_depend_on_the_order_of_the_spells():
    f = facts(*buyer(0, 181, 200, react=(181,)), ("b", "seen", 3), ("b", "contact", 9),
              ("c", "seen", 40), ("c", "contact", 40), ("c", "purchase", 70, 0))
    r = rules(as_of=500)
    s = stage_spells(f, r).collect()
    ordered = monthly_stages(s.lazy(), r.as_of_date).collect()
    for seed in range(3):
        shuffled = monthly_stages(s.sample(fraction=1.0, shuffle=True, seed=seed).lazy(), r.as_of_date).collect()
        assert shuffled.sort("customer_id", "month").equals(ordered.sort("customer_id", "month"))


def test_sort_by_person_falls_back_to_the_exact_sort():
    from pipelines.lifecycle.stages import _sort_by_person

    frame = pl.DataFrame({"customer_id": ["b", "a", "b", "a"], "first": [5000, 3, 2, 4000]})
    # months 2 .. 5000 span more than the hash key holds: the exact sort on (customer_id, first)
    assert _sort_by_person(frame, base=2).rows() == [("a", 3), ("a", 4000), ("b", 2), ("b", 5000)]
    short = pl.DataFrame({"customer_id": ["b", "a", "b", "a"], "first": [7, 3, 2, 4]})
    out = _sort_by_person(short, base=2)
    assert sorted(out.rows()) == sorted(short.rows())
    assert out.group_by("customer_id", maintain_order=True).agg("first")["first"].to_list() in (
        [[2, 7], [3, 4]], [[3, 4], [2, 7]])
