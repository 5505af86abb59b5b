"""Lifecycle stages (CONTRACT section 5): stage spells per person and the monthly stage grid.

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

from pipelines.contract import LIFECYCLE_PHASES, LIFECYCLE_STAGES, PHASE_OF_STAGE
from pipelines.lifecycle.months import month_index, month_of, month_start

STAGES = LIFECYCLE_STAGES  # in rule order (pipelines.contract)
PHASES = PHASE_OF_STAGE
NPS_PROMOTER_MIN = 9  # CONTRACT: "latest NPS score >= 9"

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
    # a person-level flag on every spell: contact data or a purchase by as_of_date, i.e.
    # a person of the monthly stage grid (CONTRACT: customer_stages_monthly)
    "in_monthly_grid": pl.Boolean,
}
PHASE_NAMES = LIFECYCLE_PHASES
MONTHLY_SCHEMA = {  # stages and phases as Enums: the grid has persons x months rows
    "month": pl.Date,
    "month_end": pl.Date,
    "customer_id": pl.String,
    "lifecycle_stage": pl.Enum(STAGES),
    "lifecycle_phase": pl.Enum(PHASE_NAMES),
    "previous_stage": pl.Enum(STAGES),
}

_I = pl.Int32  # days since 1970-01-01
# stage codes (indexes into STAGES) -> names and phases, for gathers instead of per-row maps
_STAGE_NAMES = pl.Series(STAGES, dtype=pl.String)
_PHASE_OF_STAGE = pl.Series([PHASES[s] for s in STAGES], dtype=pl.Enum(PHASE_NAMES))
_PERSON_HASH_SEEDS = (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344)



@dataclass(frozen=True)
class LifecycleRules:
    """The CONTRACT section 5 thresholds (dbt vars) the stage rules use."""

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


def _ffill(expr: pl.Expr, start: str = "_start") -> pl.Expr:
    """Forward fill of expr within a person, any dtype: rows are sorted by person and
    ``start`` is true on each person's first row, so a value never carries over to the next
    person."""
    source_row = (
        pl.when(expr.is_not_null() | pl.col(start)).then(pl.int_range(pl.len(), dtype=pl.Int64)).forward_fill()
    )
    return expr.gather(source_row)


def _cumsum(expr: pl.Expr, start: str = "_start") -> pl.Expr:
    """Running sum of expr within a person (nulls count as 0; rows sorted by person)."""
    value = expr.fill_null(0)
    total = value.cum_sum()
    return total - pl.when(pl.col(start)).then(total - value).forward_fill()


def _persons_and_facts(facts: pl.LazyFrame, rules: LifecycleRules) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The persons seen by ``as_of_date`` (``pid`` = row number, ``customer_id``,
    ``first_seen`` day) and their facts up to ``as_of_date`` with integer person ids and
    days (days since 1970-01-01; a fact before the day first seen counts from that day)."""
    f = (
        facts.select(
            pl.col("customer_id").cast(pl.String),
            pl.col("fact").cast(pl.String),
            day=pl.col("fact_date").cast(_I),
            at=pl.col("fact_at").cast(pl.Datetime("us")),
            value=pl.col("value").cast(pl.Float64),
        )
        .filter(pl.col("day") <= pl.lit(rules.as_of_date).cast(_I))
    )
    persons = (
        f.filter(pl.col("fact") == "seen")
        .group_by("customer_id")
        .agg(first_seen=pl.col("day").min())
        .collect()
        .with_row_index("pid")
    )
    dated = (
        f.filter(pl.col("fact") != "seen")
        .join(persons.lazy(), on="customer_id", how="inner")
        .select("pid", "fact", pl.max_horizontal("day", "first_seen").alias("day"), "at", "value")
        .collect()
    )
    return persons, dated


# Kinds of update rows in the sweep (the order is irrelevant: a day's state is read after
# all of its rows).
(_SEEN, _CONTACT, _SCORE, _REFERRAL, _PURCHASE, _LEAVE, _NPS, _TRIAL, _INTENT, _DEAL, _TICK) = range(11)
_KIND = pl.UInt8


def _updates(persons: pl.DataFrame, f: pl.DataFrame, rules: LifecycleRules) -> pl.LazyFrame:
    """The state updates and the time-rule ticks, one narrow row each (``pid``, ``day``,
    ``kind``, an integer ``n``, a float ``score``, a flag ``react``), sorted by person and
    day."""
    lf = f.lazy()

    def of(name: str) -> pl.LazyFrame:
        return lf.filter(pl.col("fact") == name)

    def upd(frame: pl.LazyFrame, kind: int, n: pl.Expr | None = None, score: pl.Expr | None = None,
            react: pl.Expr | None = None) -> pl.LazyFrame:
        return frame.select(
            "pid", "day",
            kind=pl.lit(kind, _KIND),
            n=pl.lit(None, _I) if n is None else n.cast(_I),
            score=pl.lit(None, pl.Float64) if score is None else score,
            react=pl.lit(None, pl.Boolean) if react is None else react,
        )

    def first_day(frame: pl.LazyFrame) -> pl.LazyFrame:
        return frame.group_by("pid").agg(pl.col("day").min())

    # purchases per day: how many, and whether they are reactivations
    pdays = of("purchase").group_by("pid", "day").agg(
        n=pl.len().cast(_I), react=(pl.col("value").max() > 0)).collect().lazy()
    trials = of("trial").select("pid", "day").unique()
    intents = of("intent").select("pid", "day").unique()
    # NPS: the day's last response (by time) is the latest score from that day on
    nps = of("nps").group_by("pid", "day").agg(pl.col("value").sort_by("at", "value", nulls_last=False).last())
    deal_delta = pl.concat([
        of("deal_open").select("pid", "day", d=pl.lit(1, _I)),
        of("deal_close").select("pid", "day", d=pl.lit(-1, _I)),
    ]).group_by("pid", "day").agg(pl.col("d").sum())
    parts = [
        upd(persons.lazy().select("pid", day="first_seen"), _SEEN),
        upd(first_day(of("contact")), _CONTACT),
        upd(first_day(of("lead_score").filter(pl.col("value") >= rules.opportunity_min_lead_score)), _SCORE),
        upd(first_day(of("referral")), _REFERRAL),
        upd(pdays, _PURCHASE, n=pl.col("n"), react=pl.col("react")),
        # a purchase leaves the loyal window N days later
        upd(pdays.with_columns(day=pl.col("day") + rules.loyal_window_days), _LEAVE, n=pl.col("n")),
        upd(nps, _NPS, score=pl.col("value")),
        upd(trials, _TRIAL),
        upd(intents, _INTENT),
        upd(deal_delta, _DEAL, n=pl.col("d")),
        # time rules: days on which a purchase turns at_risk / churned, a trial or a
        # high-intent event expires (a tick changes no state; the stage is evaluated again)
        *(upd(frame.select("pid", day=pl.col("day") + shift), _TICK) for frame, shift in (
            (pdays, rules.at_risk_after_days + 1), (pdays, rules.churn_after_days + 1),
            (trials, rules.trial_days), (intents, rules.high_intent_window_days))),
    ]
    as_of = rules.as_of_date.toordinal() - dt.date(1970, 1, 1).toordinal()
    return (
        pl.concat(parts, how="vertical")
        .filter(pl.col("day") <= as_of)
        # one integer sort key: person, then day (shifted by 2^31: days before 1970 sort too)
        .sort(pl.col("pid").cast(pl.Int64) * 2**32 + pl.col("day").cast(pl.Int64) + 2**31)
    )


def _day_states(facts: pl.LazyFrame, rules: LifecycleRules) -> tuple[pl.DataFrame, pl.LazyFrame]:
    """The persons, and each person's change days with the stage at the end of the day
    (``stage``: the index into STAGES)."""
    persons, f = _persons_and_facts(facts, rules)
    kind, n, day = pl.col("kind"), pl.col("n"), pl.col("day")

    def when(k: int, value: pl.Expr) -> pl.Expr:
        return pl.when(kind == k).then(value)

    u = _updates(persons, f, rules).with_columns(_start=pl.col("pid") != pl.col("pid").shift(1, fill_value=-1))
    state = u.with_columns(
        purchases=_cumsum(when(_PURCHASE, n)),
        left_window=_cumsum(when(_LEAVE, n)),
        open_deals=_cumsum(when(_DEAL, n)),
        contact=_cumsum(when(_CONTACT, pl.lit(1, _I))) > 0,
        score=_cumsum(when(_SCORE, pl.lit(1, _I))) > 0,
        referral=_cumsum(when(_REFERRAL, pl.lit(1, _I))) > 0,
        last_p=_ffill(when(_PURCHASE, day)),
        react=_ffill(when(_PURCHASE, pl.col("react"))),
        nps=_ffill(when(_NPS, pl.col("score"))),
        trial=_ffill(when(_TRIAL, day)),
        intent=_ffill(when(_INTENT, day)),
    ).filter(
        # the state at the end of a day: the day's last row
        (pl.col("pid") != pl.col("pid").shift(-1, fill_value=-1)) | (day != day.shift(-1))
    )
    purchases = pl.col("purchases")
    has_p = purchases > 0
    since = day - pl.col("last_p")
    code = {s: pl.lit(i, pl.UInt8) for i, s in enumerate(STAGES)}
    stage = (
        pl.when(has_p & (since > rules.churn_after_days)).then(code["churned"])
        .when(has_p & (since > rules.at_risk_after_days)).then(code["at_risk"])
        .when(has_p & pl.col("react")).then(code["reactivated"])
        .when(has_p & ((pl.col("nps") >= NPS_PROMOTER_MIN).fill_null(False) | pl.col("referral")))
        .then(code["advocate"])
        .when(purchases - pl.col("left_window") >= rules.loyal_min_orders).then(code["loyal"])
        .when(purchases >= 2).then(code["repeat_buyer"])
        .when(purchases == 1).then(code["first_time_buyer"])
        .when((day - pl.col("trial") < rules.trial_days).fill_null(False)).then(code["trial"])
        .when((pl.col("open_deals") > 0) | pl.col("score")
              | (pl.col("contact") & (day - pl.col("intent") < rules.high_intent_window_days).fill_null(False)))
        .then(code["opportunity"])
        .when(pl.col("contact")).then(code["lead"])
        .otherwise(code["visitor"])
    )
    # persons in the monthly stage grid: contact data or a purchase (both only ever grow)
    return persons, state.select("pid", "day", stage=stage, in_grid=pl.col("contact") | has_p)


def stage_spells(facts: pl.LazyFrame, rules: LifecycleRules) -> pl.LazyFrame:
    """Stage spells per person as of ``rules.as_of_date`` (schema ``SPELL_SCHEMA``).

    ``valid_from`` is the first day of the spell, ``valid_to`` the first day of the next
    spell (exclusive; null for the current spell), both reporting-timezone days: a person
    is in ``lifecycle_stage`` on every day d with valid_from <= d < valid_to. Persons first
    seen after ``as_of_date`` have no spells. Rows come sorted by person (in an arbitrary
    order of persons) and valid_from.

    The person dictionary and the dated facts are materialised once (they feed several
    branches of the plan); the sweep itself stays lazy."""
    persons, states = _day_states(facts, rules)
    new_person = pl.col("pid") != pl.col("pid").shift(1, fill_value=-1)
    last_of_person = pl.col("pid") != pl.col("pid").shift(-1, fill_value=-1)
    spells = (
        states.filter(new_person | (pl.col("stage") != pl.col("stage").shift(1)))
        .with_columns(
            valid_to=pl.when(~last_of_person).then(pl.col("day").shift(-1)),
            # the person's state on as_of_date (the last row) for every spell of the person
            in_grid=pl.when(last_of_person).then(pl.col("in_grid")).backward_fill(),
        )
    )
    return spells.select(
        customer_id=pl.lit(persons["customer_id"]).gather(pl.col("pid")),
        lifecycle_stage=pl.lit(_STAGE_NAMES).gather(pl.col("stage")),
        lifecycle_phase=pl.lit(_PHASE_OF_STAGE).gather(pl.col("stage")).cast(pl.String),
        valid_from=pl.col("day").cast(pl.Date),
        valid_to=pl.col("valid_to").cast(pl.Date),
        in_monthly_grid="in_grid",
    )


def monthly_stages(spells: pl.LazyFrame, as_of_date: dt.date) -> pl.LazyFrame:
    """Stage of each person with contact data or a purchase by ``as_of_date`` (spells'
    ``in_monthly_grid``) at each month-end from the month first seen to the month of
    ``as_of_date`` (schema ``MONTHLY_SCHEMA``). The month of ``as_of_date`` is evaluated on
    ``as_of_date`` itself (``month_end``). ``previous_stage`` is the stage at the previous
    month-end, null in the month the person was first seen.

    A spell [valid_from, valid_to) holds at the month-ends of months
    month(valid_from) .. month(valid_to) - 1 (to month(as_of_date) when current): every
    change day lies on or before the month-end of its own month."""
    as_of_month = month_of(as_of_date)
    stage_type = pl.Enum(STAGES)
    covered = (
        spells.filter(pl.col("in_monthly_grid"))
        .select(
            "customer_id",
            stage=pl.col("lifecycle_stage").cast(stage_type),
            first=month_index(pl.col("valid_from")),
            last=pl.when(pl.col("valid_to").is_null()).then(pl.lit(as_of_month, _I))
            .otherwise(month_index(pl.col("valid_to")) - 1),
        )
        .filter(pl.col("last") >= pl.col("first"))
        .collect()
    )
    if covered.is_empty():
        return pl.LazyFrame(schema=MONTHLY_SCHEMA)
    base = int(covered["first"].min())
    # spells in order per person (the grid is exploded in this order), each with the stage
    # of the spell before it, which holds at the month-end before its first month
    covered = _sort_by_person(covered, base)
    covered = covered.with_columns(
        before=pl.when(pl.col("customer_id") == pl.col("customer_id").shift(1)).then(pl.col("stage").shift(1)))
    # month starts and evaluation days by month index, looked up instead of computed per row
    base = int(covered["first"].min())
    months = pl.DataFrame({"m": pl.int_range(base, as_of_month + 1, dtype=_I, eager=True)}).select(
        month=month_start(pl.col("m")))
    starts = months["month"]
    ends = months.select(pl.min_horizontal(pl.col("month").dt.month_end(), pl.lit(as_of_date)))["month"]
    m = pl.col("m")
    return (
        covered.lazy()
        .select("customer_id", "stage", "first", "before", m=pl.int_ranges("first", pl.col("last") + 1, dtype=_I))
        .explode("m", empty_as_null=False)
        .select(
            month=pl.lit(starts).gather(m - base),
            month_end=pl.lit(ends).gather(m - base),
            customer_id="customer_id",
            lifecycle_stage="stage",
            lifecycle_phase=pl.lit(_PHASE_OF_STAGE).gather(pl.col("stage").to_physical()),
            previous_stage=pl.when(m == pl.col("first")).then(pl.col("before")).otherwise(pl.col("stage")),
        )
    )


def _grouped_in_order(frame: pl.DataFrame) -> bool:
    """Whether each person's rows are adjacent and in increasing order of ``first``."""
    ids = frame["customer_id"]
    run_start = (ids != ids.shift(1)).fill_null(True)
    if not ids.filter(run_start).is_unique().all():  # a person's rows split into two runs
        return False
    return bool((run_start | (frame["first"] > frame["first"].shift(1))).all())


def _sort_by_person(covered: pl.DataFrame, base: int) -> pl.DataFrame:
    """Rows sorted so that each person's rows are adjacent and in order of ``first``.

    Spells as ``stage_spells`` writes them already are (and DuckDB scans a table in
    insertion order): that is checked and kept. Otherwise one integer sort on (52 bits of
    a hash of customer_id, first - base), kept if no two persons share the hash bits, else
    the exact sort on (customer_id, first)."""
    if _grouped_in_order(covered):
        return covered
    span = 1 << 12  # months per person key: 341 years
    if int(covered["first"].max()) - base < span:
        key = pl.col("customer_id").hash(*_PERSON_HASH_SEEDS) // span * span + (pl.col("first") - base).cast(pl.UInt64)
        fast = covered.sort(key)
        if _grouped_in_order(fast):
            return fast
    return covered.sort("customer_id", "first")


def current_stages(spells: pl.LazyFrame) -> pl.LazyFrame:
    """customer_id, lifecycle_stage, lifecycle_phase of the current spell."""
    return spells.filter(pl.col("valid_to").is_null()).select("customer_id", "lifecycle_stage", "lifecycle_phase")
