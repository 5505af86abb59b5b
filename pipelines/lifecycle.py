"""Lifecycle stages (SPEC section 5): stage spells per person and the monthly stage grid.

This module is the single definition of the stage rules. It works on *lifecycle facts*,
one row per dated fact about a person, gathered from the warehouse by dbt model
``int_lifecycle_facts_collected`` (which owns the mapping of sources to facts):

========== ============================================ ===============================
fact       fact_date (reporting-timezone day)           value
========== ============================================ ===============================
seen       the person's first record                    -
contact    first record carrying an email or phone      -
purchase   a purchase (completed / partially_refunded)  1 if the order is a reactivation
nps        an NPS response (``fact_at`` orders a day)   the score
referral   a person this one referred first purchased   -
trial      a ``trial_start`` web event                  -
intent     an ``add_to_cart`` / ``begin_checkout``      -
deal_open  a CRM deal was created                       -
deal_close an open deal was won or lost                 -
lead_score a CRM contact was created                    its lead score
========== ============================================ ===============================

Facts after ``as_of_date`` are ignored. A person's stage can only change on a day with a
fact or on a day a time rule fires (a purchase turning 91 / 181 days old, leaving the
loyal window, a trial or a high-intent event expiring), so the spells are computed by
evaluating the rules once at the end of each such day, in one sorted sweep over all
persons (running sums and forward fills that restart at each person), never day by day.

Stage on day d (first matching rule wins), evaluated after all of day d's facts:

1. churned            has purchased; d - last purchase day > churn_after_days
2. at_risk            has purchased; d - last purchase day > at_risk_after_days
3. reactivated        the last purchase day holds a reactivation (fct_orders.is_reactivation:
                      more than churn_after_days after the previous purchase day)
4. advocate           has purchased; latest NPS score >= 9, or a person who names this one
                      as ``referred_by_email`` has purchased
5. loyal              purchases on days d-N+1..d >= loyal_min_orders (N = loyal_window_days)
6. repeat_buyer       2 or more purchases
7. first_time_buyer   exactly 1 purchase
8. trial              a trial_start on days d-T+1..d (T = trial_days); no purchase
9. opportunity        an open deal, or a CRM lead score >= opportunity_min_lead_score, or
                      contact data and an add_to_cart / begin_checkout on days d-W+1..d
                      (W = high_intent_window_days: "makes a lead an opportunity")
10. lead              has an email or phone
11. visitor           otherwise (known only by identifiers without contact data)

Purchases are counted per order (two orders on one day are two purchases).
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

import polars as pl

from pipelines.months import month_index, month_of, month_start

STAGES = (
    "churned", "at_risk", "reactivated", "advocate", "loyal", "repeat_buyer",
    "first_time_buyer", "trial", "opportunity", "lead", "visitor",
)
PHASES = {
    "visitor": "recruitment", "lead": "recruitment", "opportunity": "recruitment", "trial": "recruitment",
    "first_time_buyer": "retention", "repeat_buyer": "retention", "loyal": "retention",
    "advocate": "retention", "at_risk": "retention",
    "churned": "recovery", "reactivated": "recovery",
}
BUYER_STAGES = tuple(s for s in STAGES[:7])
FACTS = ("seen", "contact", "purchase", "nps", "referral", "trial", "intent", "deal_open", "deal_close",
         "lead_score")
NPS_PROMOTER_MIN = 9  # SPEC: "latest NPS score >= 9"

FACT_SCHEMA = {
    "customer_id": pl.String,
    "fact": pl.String,
    "fact_date": pl.Date,
    "fact_at": pl.Datetime("us"),
    "value": pl.Float64,
}
SPELL_SCHEMA = {
    "customer_id": pl.String,
    "lifecycle_stage": pl.String,
    "lifecycle_phase": pl.String,
    "valid_from": pl.Date,
    "valid_to": pl.Date,
}
MONTHLY_SCHEMA = {
    "month": pl.Date,
    "month_end": pl.Date,
    "customer_id": pl.String,
    "lifecycle_stage": pl.String,
    "lifecycle_phase": pl.String,
    "previous_stage": pl.String,
}

_I = pl.Int32  # days since 1970-01-01


@dataclass(frozen=True)
class LifecycleRules:
    """The SPEC section 5 thresholds (dbt vars) the stage rules use."""

    as_of_date: dt.date
    at_risk_after_days: int = 90
    churn_after_days: int = 180
    loyal_min_orders: int = 4
    loyal_window_days: int = 365
    opportunity_min_lead_score: float = 50
    high_intent_window_days: int = 30
    trial_days: int = 30

    def __post_init__(self):
        for name in ("at_risk_after_days", "churn_after_days", "loyal_min_orders", "loyal_window_days",
                     "high_intent_window_days", "trial_days"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)!r}")
        if self.churn_after_days < self.at_risk_after_days:
            raise ValueError("churn_after_days must not be less than at_risk_after_days")

    @classmethod
    def from_vars(cls, values: Mapping) -> "LifecycleRules":
        """From the dbt vars (values may be strings, as dbt renders them into model config)."""
        return cls(
            as_of_date=dt.date.fromisoformat(str(values["as_of_date"])),
            **{name: int(values[name]) for name in (
                "at_risk_after_days", "churn_after_days", "loyal_min_orders", "loyal_window_days",
                "high_intent_window_days", "trial_days")},
            opportunity_min_lead_score=float(values["opportunity_min_lead_score"]),
        )


def _days(col: str) -> pl.Expr:
    return pl.col(col).cast(_I)


def _ffill(col: str, start: str = "_start") -> pl.Expr:
    """Forward fill within a person, any dtype: rows are sorted by person and ``start`` is
    true on each person's first row, so a value never carries over to the next person."""
    source_row = (
        pl.when(pl.col(col).is_not_null() | pl.col(start)).then(pl.int_range(pl.len(), dtype=pl.Int64))
        .forward_fill()
    )
    return pl.col(col).gather(source_row).alias(col)


def _cumsum(col: str, start: str = "_start") -> pl.Expr:
    """Running sum within a person (nulls count as 0; rows sorted by person)."""
    value = pl.col(col).fill_null(0)
    total = value.cum_sum()
    base = pl.when(pl.col(start)).then(total - value).forward_fill()
    return (total - base).alias(col)


def _updates(facts: pl.LazyFrame, rules: LifecycleRules) -> pl.LazyFrame:
    """One row per (person, day, kind of change): the state updates and the time-rule ticks."""
    as_of = pl.lit(rules.as_of_date).cast(_I)
    f = (
        facts.select(
            pl.col("customer_id").cast(pl.String),
            pl.col("fact").cast(pl.String),
            day=_days("fact_date"),
            at=pl.col("fact_at").cast(pl.Datetime("us")),
            value=pl.col("value").cast(pl.Float64),
        )
        .filter(pl.col("day") <= as_of)
    )

    def kind(name: str) -> pl.LazyFrame:
        return f.filter(pl.col("fact") == name)

    def rows(frame: pl.LazyFrame, **cols: pl.Expr) -> pl.LazyFrame:
        return frame.select("customer_id", "day", **cols)

    null_i, null_b = pl.lit(None, _I), pl.lit(None, pl.Boolean)
    # purchases per day: count, reactivation flag, next purchase day (for the time rules)
    pdays = (
        kind("purchase")
        .group_by("customer_id", "day")
        .agg(n=pl.len().cast(_I), react=(pl.col("value").max() > 0))
        .sort("customer_id", "day")
        .with_columns(nxt=pl.col("day").shift(-1).over("customer_id"))
    )
    at_risk, churn = rules.at_risk_after_days + 1, rules.churn_after_days + 1
    ticks = [
        # a buyer's last purchase turns at_risk / churned unless a purchase comes first
        pdays.filter(pl.col("nxt").is_null() | (pl.col("nxt") > pl.col("day") + at_risk))
        .select("customer_id", day=pl.col("day") + at_risk),
        pdays.filter(pl.col("nxt").is_null() | (pl.col("nxt") > pl.col("day") + churn))
        .select("customer_id", day=pl.col("day") + churn),
        # trial and high-intent events expire
        kind("trial").select("customer_id", day=pl.col("day") + rules.trial_days).unique(),
        kind("intent").select("customer_id", day=pl.col("day") + rules.high_intent_window_days).unique(),
    ]
    # NPS: the day's last response (by time) is the latest score from that day on
    nps = kind("nps").group_by("customer_id", "day").agg(
        pl.col("value").sort_by("at", "value", nulls_last=False).last())
    deal_delta = pl.concat([
        kind("deal_open").select("customer_id", "day", d=pl.lit(1, _I)),
        kind("deal_close").select("customer_id", "day", d=pl.lit(-1, _I)),
    ]).group_by("customer_id", "day").agg(pl.col("d").sum())

    empty = dict(dp=null_i, dleave=null_i, last_p=null_i, react=null_b, nps=pl.lit(None, pl.Float64),
                 trial=null_i, intent=null_i, ddeal=null_i, contact=null_b, score=null_b, referral=null_b,
                 seen=null_b)

    def upd(frame: pl.LazyFrame, **cols: pl.Expr) -> pl.LazyFrame:
        return rows(frame, **{**empty, **cols})

    parts = [
        upd(kind("seen").group_by("customer_id").agg(pl.col("day").min()), seen=pl.lit(True)),
        upd(kind("contact").group_by("customer_id").agg(pl.col("day").min()), contact=pl.lit(True)),
        upd(kind("lead_score").filter(pl.col("value") >= rules.opportunity_min_lead_score)
            .group_by("customer_id").agg(pl.col("day").min()), score=pl.lit(True)),
        upd(kind("referral").group_by("customer_id").agg(pl.col("day").min()), referral=pl.lit(True)),
        upd(pdays, dp=pl.col("n"), last_p=pl.col("day"), react=pl.col("react")),
        # a purchase leaves the loyal window N days later
        upd(pdays.select("customer_id", "n", day=pl.col("day") + rules.loyal_window_days), dleave=pl.col("n")),
        upd(nps, nps=pl.col("value")),
        upd(kind("trial").select("customer_id", "day").unique(), trial=pl.col("day")),
        upd(kind("intent").select("customer_id", "day").unique(), intent=pl.col("day")),
        upd(deal_delta, ddeal=pl.col("d")),
        *(upd(t) for t in ticks),
    ]
    return pl.concat(parts, how="vertical").filter(pl.col("day") <= as_of)


def _day_states(facts: pl.LazyFrame, rules: LifecycleRules) -> pl.LazyFrame:
    """The state at the end of each person's change days, with the stage of that day."""
    u = _updates(facts, rules)
    # persons start on the day first seen; an earlier fact (a referral) counts from then on
    first = u.filter(pl.col("seen")).select("customer_id", first_seen=pl.col("day"))
    u = (
        u.join(first, on="customer_id", how="inner")
        .with_columns(day=pl.max_horizontal("day", "first_seen"))
        .drop("first_seen")
        .sort("customer_id", "day")
        .with_columns(_start=pl.col("customer_id") != pl.col("customer_id").shift(1, fill_value=""))
    )
    filled = u.with_columns(
        _cumsum("dp"), _cumsum("dleave"), _cumsum("ddeal"),
        *(_ffill(c) for c in ("last_p", "react", "nps", "trial", "intent", "contact", "score", "referral")),
    )
    # the state at the end of a day: the day's last row
    last_of_day = (pl.col("customer_id") != pl.col("customer_id").shift(-1, fill_value="")) | (
        pl.col("day") != pl.col("day").shift(-1))
    state = filled.filter(last_of_day)
    d = pl.col("day")
    purchases = pl.col("dp").fill_null(0)
    has_p = purchases > 0
    since = d - pl.col("last_p")
    in_window = purchases - pl.col("dleave").fill_null(0)
    contact = pl.col("contact").fill_null(False)
    stage = (
        pl.when(has_p & (since > rules.churn_after_days)).then(pl.lit("churned"))
        .when(has_p & (since > rules.at_risk_after_days)).then(pl.lit("at_risk"))
        .when(has_p & pl.col("react").fill_null(False)).then(pl.lit("reactivated"))
        .when(has_p & ((pl.col("nps") >= NPS_PROMOTER_MIN).fill_null(False) | pl.col("referral").fill_null(False)))
        .then(pl.lit("advocate"))
        .when(in_window >= rules.loyal_min_orders).then(pl.lit("loyal"))
        .when(purchases >= 2).then(pl.lit("repeat_buyer"))
        .when(purchases == 1).then(pl.lit("first_time_buyer"))
        .when((d - pl.col("trial") < rules.trial_days).fill_null(False)).then(pl.lit("trial"))
        .when((pl.col("ddeal").fill_null(0) > 0) | pl.col("score").fill_null(False)
              | (contact & (d - pl.col("intent") < rules.high_intent_window_days).fill_null(False)))
        .then(pl.lit("opportunity"))
        .when(contact).then(pl.lit("lead"))
        .otherwise(pl.lit("visitor"))
    )
    return state.select("customer_id", "day", lifecycle_stage=stage)


def stage_spells(facts: pl.LazyFrame, rules: LifecycleRules) -> pl.LazyFrame:
    """Stage spells per person as of ``rules.as_of_date`` (schema ``SPELL_SCHEMA``).

    ``valid_from`` is the first day of the spell, ``valid_to`` the first day of the next
    spell (exclusive; null for the current spell), both reporting-timezone days: a person
    is in ``lifecycle_stage`` on every day d with valid_from <= d < valid_to. Persons first
    seen after ``as_of_date`` have no spells."""
    states = _day_states(facts, rules)
    changed = (pl.col("customer_id") != pl.col("customer_id").shift(1, fill_value="")) | (
        pl.col("lifecycle_stage") != pl.col("lifecycle_stage").shift(1))
    spells = (
        states.filter(changed)
        .with_columns(
            valid_to=pl.when(pl.col("customer_id") == pl.col("customer_id").shift(-1))
            .then(pl.col("day").shift(-1))
        )
    )
    return spells.select(
        "customer_id",
        "lifecycle_stage",
        lifecycle_phase=pl.col("lifecycle_stage").replace_strict(PHASES, return_dtype=pl.String),
        valid_from=pl.col("day").cast(pl.Date),
        valid_to=pl.col("valid_to").cast(pl.Date),
    )


def monthly_members(facts: pl.LazyFrame, rules: LifecycleRules) -> pl.LazyFrame:
    """Persons in the monthly stage grid: contact data or a purchase by ``as_of_date``."""
    return (
        facts.filter(pl.col("fact").is_in(["contact", "purchase"]) & (pl.col("fact_date") <= rules.as_of_date))
        .select(pl.col("customer_id").cast(pl.String))
        .unique()
    )


def monthly_stages(spells: pl.LazyFrame, members: pl.LazyFrame, as_of_date: dt.date) -> pl.LazyFrame:
    """Stage of each member at each month-end from the month first seen to the month of
    ``as_of_date`` (schema ``MONTHLY_SCHEMA``). The month of ``as_of_date`` is evaluated on
    ``as_of_date`` itself (``month_end``). ``previous_stage`` is the stage at the previous
    month-end, null in the month the person was first seen.

    A spell [valid_from, valid_to) holds at the month-ends of months
    month(valid_from) .. month(valid_to) - 1 (to month(as_of_date) when current): every
    change day lies on or before the month-end of its own month."""
    as_of_month = month_of(as_of_date)
    covered = (
        spells.join(members, on="customer_id", how="semi")
        .select(
            "customer_id", "lifecycle_stage", "lifecycle_phase",
            first=month_index(pl.col("valid_from")),
            last=pl.when(pl.col("valid_to").is_null()).then(pl.lit(as_of_month, _I))
            .otherwise(month_index(pl.col("valid_to")) - 1),
        )
        .filter(pl.col("last") >= pl.col("first"))
        .with_columns(m=pl.int_ranges("first", pl.col("last") + 1, dtype=_I))
        .explode("m", empty_as_null=False)
        .sort("customer_id", "m")
    )
    month = month_start(pl.col("m"))
    end = pl.min_horizontal(month.dt.month_end(), pl.lit(as_of_date))
    return covered.select(
        month=month,
        month_end=end,
        customer_id="customer_id",
        lifecycle_stage="lifecycle_stage",
        lifecycle_phase="lifecycle_phase",
        previous_stage=pl.when(pl.col("customer_id") == pl.col("customer_id").shift(1))
        .then(pl.col("lifecycle_stage").shift(1)),
    )


def current_stages(spells: pl.LazyFrame) -> pl.LazyFrame:
    """customer_id, lifecycle_stage, lifecycle_phase of the current spell."""
    return spells.filter(pl.col("valid_to").is_null()).select("customer_id", "lifecycle_stage", "lifecycle_phase")
