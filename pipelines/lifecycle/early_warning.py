"""Early warning (CONTRACT section 7): which buyers are likely to stop buying, why, and how well
that could have been told in advance.

Everything is evaluated on a day from the history up to that day (never from earlier runs),
so a score for ``as_of_date``, for the validation cutoff or for the day a person became
at risk is reproducible. Inputs are plain frames:

* ``purchases``: ``customer_id``, ``day`` (reporting-timezone day), ``net_revenue``; one row
  per purchase (several on one day are one purchase day);
* ``signals``: ``customer_id``, ``signal``, ``day``, ``value`` and optionally ``happened_at``
  (when, to order facts of one day): the dated facts the reasons read, ``signal`` one of
  ``cancellation`` (an order cancelled, refunded or partially refunded, on its order day),
  ``nps`` and ``ces`` (a survey answer; value = score), ``deal_lost`` (a CRM deal lost, on its
  close day), ``session`` (a web session, on its day);
* ``asked``: ``customer_id``, ``day``: the (person, day) pairs to evaluate.

Window joins are ``join_asof`` on per-person running counts, so every evaluation is linear in
the rows; no Python loop runs over persons.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy.stats import rankdata

from pipelines.contract import REASON_CODES
from pipelines.lifecycle import clv

SIGNALS = ("cancellation", "nps", "ces", "deal_lost", "session")
_DAY = pl.Date


@dataclass(frozen=True)
class WarningRules:
    """The thresholds of CONTRACT section 7 (dbt vars)."""

    at_risk_after_days: int = 90
    churn_after_days: int = 180
    churn_risk_horizon_days: int = 90
    risk_band_medium: float = 0.33
    risk_band_high: float = 0.66
    reason_recent_days: int = 90  # recent_cancellation, lost_deal; stopped_visiting's quiet stretch
    reason_survey_days: int = 365  # nps_detractor, high_effort
    declining_window_days: int = 180  # declining_frequency compares two such windows
    nps_detractor_max: int = 6
    ces_high_effort_max: int = 3

    @classmethod
    def from_vars(cls, values: Mapping) -> "WarningRules":
        """From the dbt vars (values may be strings, as dbt renders them into model config)."""
        kwargs = {}
        for name, field_type in cls.__annotations__.items():
            if name in values:
                kwargs[name] = (float if field_type == "float" else int)(values[name])
        return cls(**kwargs)


# --- purchase profiles ---------------------------------------------------------------------

def purchase_days(purchases: pl.DataFrame) -> pl.DataFrame:
    """One row per person and purchase day, in order, with the person's running count of
    purchase days (``n``) and first purchase day."""
    return (
        purchases.select("customer_id", pl.col("day").cast(_DAY)).unique()
        .sort("customer_id", "day")
        .with_columns(
            n=pl.int_range(1, pl.len() + 1).over("customer_id"),
            first=pl.col("day").min().over("customer_id"),
        )
    )


def median_first_gaps(days: pl.DataFrame, on: list[dt.date]) -> dict[dt.date, float | None]:
    """The median gap from the first to the second purchase day over the persons whose second
    purchase day is on or before each day of ``on`` (None while nobody has two). Computed for
    all days at once from a running histogram of the gaps (days x gap values)."""
    seconds = (days.filter(pl.col("n") == 2)
               .select(second=pl.col("day"), gap=(pl.col("day") - pl.col("first")).dt.total_days()))
    wanted = sorted(set(on))
    if seconds.is_empty():
        return {d: None for d in wanted}
    gaps = seconds["gap"].to_numpy()
    at = np.searchsorted(np.array(wanted, dtype="datetime64[D]"),
                         seconds["second"].to_numpy().astype("datetime64[D]"), side="left")
    keep = at < len(wanted)  # second purchases after every asked day count for none
    counts = np.zeros((len(wanted), int(gaps.max()) + 1), dtype=np.int64)
    np.add.at(counts, (at[keep], gaps[keep]), 1)
    cdf = np.cumsum(np.cumsum(counts, axis=0), axis=1)  # [day, g]: gaps <= g known by the day
    out: dict[dt.date, float | None] = {}
    for i, day in enumerate(wanted):
        k = int(cdf[i, -1])
        if k == 0:
            out[day] = None
            continue
        lower = int(np.searchsorted(cdf[i], (k + 1) // 2))  # the ((k+1)//2)-th smallest gap
        upper = int(np.searchsorted(cdf[i], k // 2 + 1))  # the (k//2 + 1)-th smallest
        out[day] = (lower + upper) / 2
    return out


def profiles(days: pl.DataFrame, asked: pl.DataFrame, rules: WarningRules) -> pl.DataFrame:
    """Per asked (person, day): ``purchase_days``, ``first_purchase_day``, ``last_purchase_day``,
    ``days_since_last_purchase``, ``avg_days_between_purchases`` (the mean gap between
    consecutive purchase days; null with one), ``expected_next_purchase_date`` (the last
    purchase day plus that mean, rounded to the nearest day; with one purchase day, plus the
    median first-to-second gap of all repeat buyers by that day), ``days_overdue``
    (max(0, day - expected)) and ``lapsing`` (at risk on that day: more than
    ``at_risk_after_days`` but at most ``churn_after_days`` since the last purchase day).
    Persons without a purchase on or before the day get nulls."""
    medians = median_first_gaps(days, asked["day"].unique().to_list())
    median = pl.DataFrame({"day": list(medians), "median_gap": list(medians.values())},
                          schema={"day": _DAY, "median_gap": pl.Float64})
    last = (
        asked.with_columns(pl.col("day").cast(_DAY)).sort("day")
        .join_asof(days.rename({"day": "last_purchase_day"}).sort("last_purchase_day"),
                   left_on="day", right_on="last_purchase_day", by="customer_id", strategy="backward", check_sortedness=False)
        .join(median, on="day", how="left")
    )
    mean_gap = pl.when(pl.col("n") > 1).then(
        (pl.col("last_purchase_day") - pl.col("first")).dt.total_days() / (pl.col("n") - 1))
    expected_gap = pl.coalesce(pl.col("avg_days_between_purchases"), pl.col("median_gap"))
    return last.select(
        "customer_id", "day",
        purchase_days=pl.col("n"),
        first_purchase_day=pl.col("first"),
        last_purchase_day=pl.col("last_purchase_day"),
        days_since_last_purchase=(pl.col("day") - pl.col("last_purchase_day")).dt.total_days(),
        avg_days_between_purchases=mean_gap,
    ).with_columns(median_gap=last["median_gap"]).with_columns(
        expected_next_purchase_date=pl.col("last_purchase_day")
        + pl.duration(days=(expected_gap + 0.5).floor().cast(pl.Int64)),
    ).with_columns(
        days_overdue=pl.when(pl.col("expected_next_purchase_date").is_not_null()).then(
            pl.max_horizontal(pl.lit(0), (pl.col("day") - pl.col("expected_next_purchase_date")).dt.total_days())),
        lapsing=pl.col("days_since_last_purchase").is_between(rules.at_risk_after_days + 1, rules.churn_after_days),
    ).drop("median_gap")


# --- reasons -------------------------------------------------------------------------------

def _running(events: pl.DataFrame) -> pl.DataFrame:
    """Per person, each event day with the running count of events up to it (inclusive)."""
    return (events.group_by("customer_id", "day").agg(k=pl.len()).sort("customer_id", "day")
            .with_columns(k=pl.col("k").cum_sum().over("customer_id")))


def _count_between(running: pl.DataFrame, asked: pl.DataFrame, back_from: int, back_to: int) -> pl.Series:
    """Events of each asked person on days ``day - back_from`` .. ``day - back_to`` (inclusive)."""
    def upto(offset: int) -> pl.Series:
        probe = asked.with_row_index("_row").with_columns(_at=pl.col("day") - pl.duration(days=offset)).sort("_at")
        joined = probe.join_asof(running.sort("day"), left_on="_at", right_on="day", by="customer_id",
                                 strategy="backward", check_sortedness=False)
        return joined.sort("_row")["k"].fill_null(0)

    return upto(back_to) - upto(back_from + 1)


def _latest(events: pl.DataFrame, asked: pl.DataFrame) -> pl.DataFrame:
    """Each asked person's latest event on or before the day: its day and value."""
    last_per_day = (events.sort("customer_id", "day", "happened_at", "order", nulls_last=False)
                    .group_by("customer_id", "day", maintain_order=True)
                    .agg(pl.col("value").last()).rename({"day": "event_day"}).sort("event_day"))
    probe = asked.with_row_index("_row").sort("day")
    return (probe.join_asof(last_per_day, left_on="day", right_on="event_day", by="customer_id", strategy="backward", check_sortedness=False)
            .sort("_row").select("event_day", "value"))


def reasons(days: pl.DataFrame, signals: pl.DataFrame, asked: pl.DataFrame, rules: WarningRules,
            profile: pl.DataFrame | None = None) -> pl.DataFrame:
    """The reason codes that hold for each asked (person, day), one row per reason held
    (``customer_id``, ``day``, ``reason``); the rules of CONTRACT section 7:

    * ``overdue``: days_overdue > 0;
    * ``lapsing``: the person is at risk on the day;
    * ``nps_detractor``: the latest NPS answer is at most ``nps_detractor_max`` and from the
      last ``reason_survey_days`` days; ``high_effort``: the same for CES and
      ``ces_high_effort_max`` (1-7, 7 = very easy);
    * ``recent_cancellation``: a cancelled, refunded or partially refunded order in the last
      ``reason_recent_days`` days; ``lost_deal``: a CRM deal lost in that window;
    * ``declining_frequency``: purchase days in the last ``declining_window_days`` days fewer
      than half of those in the same span before, with at least 2 before;
    * ``stopped_visiting``: web sessions in the ``reason_recent_days`` days before the last
      ``reason_recent_days`` days, none in the last ones.

    "The last N days" of day d are d-N+1 through d, and "days 91-180 before" the 91st to the
    180th day counting back with d as the first (d-179 through d-90), so that the windows
    compared meet without a gap."""
    asked = asked.select("customer_id", pl.col("day").cast(_DAY))
    if profile is None:
        profile = profiles(days, asked, rules)
    profile = asked.join(profile, on=["customer_id", "day"], how="left", maintain_order="left")
    at = (pl.col("happened_at").cast(pl.Datetime("us")) if "happened_at" in signals.columns
          else pl.lit(None, pl.Datetime("us")))
    sig = signals.select("customer_id", "signal", pl.col("day").cast(_DAY), pl.col("value").cast(pl.Float64),
                         at.alias("happened_at")).with_row_index("order")

    def of(name: str) -> pl.DataFrame:
        return sig.filter(pl.col("signal") == name)

    recent, survey, window = rules.reason_recent_days, rules.reason_survey_days, rules.declining_window_days
    nps, ces = _latest(of("nps"), asked), _latest(of("ces"), asked)
    purchases = _running(days.select("customer_id", "day"))
    sessions = _running(of("session"))
    since = (asked["day"] - pl.Series(nps["event_day"])).dt.total_days()
    ces_since = (asked["day"] - pl.Series(ces["event_day"])).dt.total_days()
    held = {
        "overdue": profile["days_overdue"].fill_null(0) > 0,
        "lapsing": profile["lapsing"].fill_null(False),
        "nps_detractor": ((since < survey) & (nps["value"] <= rules.nps_detractor_max)).fill_null(False),
        "high_effort": ((ces_since < survey) & (ces["value"] <= rules.ces_high_effort_max)).fill_null(False),
        "recent_cancellation": _count_between(_running(of("cancellation")), asked, recent - 1, 0) > 0,
        "declining_frequency": (lambda before, last: (before >= 2) & (2 * last < before))(
            _count_between(purchases, asked, 2 * window - 1, window), _count_between(purchases, asked, window - 1, 0)),
        "lost_deal": _count_between(_running(of("deal_lost")), asked, recent - 1, 0) > 0,
        "stopped_visiting": (_count_between(sessions, asked, 2 * recent - 1, recent) > 0)
        & (_count_between(sessions, asked, recent - 1, 0) == 0),
    }
    assert tuple(held) == REASON_CODES
    flags = asked.with_columns(**{code: pl.Series(flag).fill_null(False) for code, flag in held.items()})
    return (flags.unpivot(index=["customer_id", "day"], on=list(REASON_CODES), variable_name="reason",
                          value_name="held")
            .filter("held").drop("held"))


def ordered_reasons(held: pl.DataFrame, strength: Mapping[str, float] | None = None) -> pl.DataFrame:
    """Per (person, day) the list of reasons held, strongest first: by ``strength`` (the lift
    measured in churn_drivers) when given, then in the order of REASON_CODES."""
    rank = {code: i for i, code in enumerate(REASON_CODES)}
    strength = strength or {}
    return (held.with_columns(_s=pl.col("reason").replace_strict(strength, default=None, return_dtype=pl.Float64),
                              _r=pl.col("reason").replace_strict(rank, return_dtype=pl.Int64))
            .sort("customer_id", "day", "_s", "_r", descending=[False, False, True, False], nulls_last=True)
            .group_by("customer_id", "day", maintain_order=True).agg(risk_reasons=pl.col("reason")))


# --- the churn risk ---------------------------------------------------------------------------

def no_purchase_probability(params: dict, horizon: float, x, tx, T) -> np.ndarray:
    """BG/NBD P(no purchase in the next ``horizon`` days | x, t_x, T): the buyer has dropped out
    (1 - P(alive)), or is alive and buys nothing in the horizon, which given the buyer's
    purchase rate lambda ~ Gamma(r + x, alpha + T) is ((alpha + T) / (alpha + T + horizon))^(r + x)
    (a buyer can only drop out right after a purchase, so none can happen in a quiet horizon)."""
    r, alpha = params["r"], params["alpha"]
    x, T = np.asarray(x, float), np.asarray(T, float)
    alive = clv.p_alive(params, x, tx, T)
    quiet = np.exp((r + x) * (np.log(alpha + T) - np.log(alpha + T + horizon)))
    return (1.0 - alive) + alive * quiet


def risk_band(risk: pl.Expr, rules: WarningRules) -> pl.Expr:
    return (pl.when(risk >= rules.risk_band_high).then(pl.lit("high"))
            .when(risk >= rules.risk_band_medium).then(pl.lit("medium"))
            .when(risk.is_not_null()).then(pl.lit("low")))


def high_risk_since(params: dict, rules: WarningRules, x, tx, T) -> np.ndarray:
    """Per buyer, how many days after the last purchase day the probability of no purchase
    first reached ``risk_band_high`` under ``params`` (it only grows while the buyer does not
    buy); NaN when it has not yet, on the day. Found by bisection on the buyer's age, all buyers
    at once."""
    x, tx, T = (np.asarray(v, float) for v in (x, tx, T))

    def high(age: np.ndarray) -> np.ndarray:
        return no_purchase_probability(params, rules.churn_risk_horizon_days, x, tx, age) >= rules.risk_band_high

    lo, hi = tx.copy(), T.copy()  # risk(lo) may already be high: then since = 0
    reached = high(hi)
    already = high(lo)
    for _ in range(int(np.ceil(np.log2(max(float(np.max(hi - lo, initial=1)), 1.0)))) + 1):
        mid = np.floor((lo + hi) / 2)
        up = high(mid)
        hi = np.where(up, mid, hi)
        lo = np.where(up, lo, mid)
    since = np.where(already, 0.0, hi - tx)
    return np.where(reached, since, np.nan)


def churn_risk(purchases: pl.DataFrame, day: dt.date, rules: WarningRules) -> pl.DataFrame:
    """Per buyer not churned on ``day`` (a purchase day at most ``churn_after_days`` before it):
    BG/NBD fitted on every buyer's purchases up to the day, and each buyer's probability of no
    purchase in the next ``churn_risk_horizon_days`` days (``churn_risk``) with its
    ``risk_band`` and the day it became high (``high_risk_since``, under this fit). Null risks
    when the models cannot be fitted (too few buyers)."""
    summary = clv.customer_summary(purchases.lazy().rename({"day": "ordered_date"}), day)
    fit = clv.fit_models(summary)
    params = fit.fits[0].params if fit.fits and fit.fits[0].converged else None
    x, tx, T = (summary[c].to_numpy() for c in ("frequency", "recency", "age"))
    risk = (no_purchase_probability(params, rules.churn_risk_horizon_days, x, tx, T) if params
            else np.full(summary.height, np.nan))
    since = high_risk_since(params, rules, x, tx, T) if params else np.full(summary.height, np.nan)
    last = pl.lit(day) - pl.duration(days=(pl.col("age") - pl.col("recency")).cast(pl.Int64))
    return (summary.select("customer_id", days_since=(pl.col("age") - pl.col("recency")).cast(pl.Int64),
                           last_day=last)
            .with_columns(churn_risk=pl.Series(risk).fill_nan(None),
                          _since=pl.Series(since).fill_nan(None))
            .filter(pl.col("days_since") <= rules.churn_after_days)
            .with_columns(risk_band=risk_band(pl.col("churn_risk"), rules),
                          high_risk_since=pl.col("last_day") + pl.duration(days=pl.col("_since").cast(pl.Int64)))
            .drop("days_since", "last_day", "_since"))


# --- validation ------------------------------------------------------------------------------

def auc(score: np.ndarray, outcome: np.ndarray) -> float | None:
    """Area under the ROC curve of ``score`` for ``outcome`` (1 = the event): the chance that a
    random person with the event scores above a random person without it (ties count half),
    from the Mann-Whitney rank sum."""
    score, outcome = np.asarray(score, float), np.asarray(outcome, bool)
    positives, negatives = int(outcome.sum()), int((~outcome).sum())
    if not positives or not negatives:
        return None
    ranks = rankdata(score)
    return float((ranks[outcome].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def top_decile_lift(score: np.ndarray, outcome: np.ndarray, tie_break: np.ndarray) -> float | None:
    """The event rate among the tenth of persons with the highest scores (ceil(n/10) persons;
    equal scores ordered by ``tie_break``), over the event rate of all."""
    score, outcome = np.asarray(score, float), np.asarray(outcome, bool)
    if not len(score) or not outcome.any():
        return None
    top = np.lexsort((np.asarray(tie_break), -score))[: -(-len(score) // 10)]
    return float(outcome[top].mean() / outcome.mean())


def brier_score(probability: np.ndarray, outcome: np.ndarray) -> float | None:
    """Mean squared difference between a predicted probability and what happened (0 or 1)."""
    probability = np.asarray(probability, float)
    return float(np.mean((probability - np.asarray(outcome, float)) ** 2)) if len(probability) else None


def validation(purchases: pl.DataFrame, as_of: dt.date, rules: WarningRules) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The backtest of CONTRACT section 7: the scoring done as of the cutoff (``as_of`` minus the
    horizon) for the buyers not churned then, against whether they purchased in
    (cutoff, as_of]. Returns the per-scorer metrics (``churn_risk`` and the baseline
    ``recency``) and the scored population (customer_id, churn_risk, recency, no_purchase)."""
    cutoff = as_of - dt.timedelta(days=rules.churn_risk_horizon_days)
    scored = churn_risk(purchases.filter(pl.col("day") <= cutoff), cutoff, rules)
    last = (purchases.filter(pl.col("day") <= cutoff).group_by("customer_id")
            .agg(recency=(pl.lit(cutoff) - pl.col("day").max()).dt.total_days()))
    bought = (purchases.filter((pl.col("day") > cutoff) & (pl.col("day") <= as_of))
              .select("customer_id").unique().with_columns(bought=pl.lit(True)))
    population = (scored.join(last, on="customer_id").join(bought, on="customer_id", how="left")
                  .select("customer_id", "churn_risk", "recency", no_purchase=pl.col("bought").is_null())
                  .sort("customer_id"))
    outcome = population["no_purchase"].to_numpy()
    ids = population["customer_id"].to_numpy()
    rows = []
    for scorer, values, probability in (("churn_risk", population["churn_risk"], True),
                                        ("recency", population["recency"], False)):
        score = values.cast(pl.Float64).to_numpy()
        usable = not np.isnan(score).any() if len(score) else False
        rows.append({
            "scorer": scorer, "cutoff_date": cutoff, "customers": population.height,
            "base_rate": float(outcome.mean()) if len(outcome) else None,
            "auc": auc(score, outcome) if usable else None,
            "top_decile_lift": top_decile_lift(score, outcome, ids) if usable else None,
            "brier_score": brier_score(score, outcome) if usable and probability else None,
        })
    schema = {"scorer": pl.String, "cutoff_date": pl.Date, "customers": pl.Int64, "base_rate": pl.Float64,
              "auc": pl.Float64, "top_decile_lift": pl.Float64, "brier_score": pl.Float64}
    return pl.DataFrame(rows, schema=schema), population


def drivers(held: pl.DataFrame, population: pl.DataFrame) -> pl.DataFrame:
    """Per reason (codes held at the cutoff, or categories): among the ``population`` (the
    validation's buyers, with ``no_purchase``), how many had it, the share of them without a
    purchase in the horizon, the share of the others, and the lift (their ratio)."""
    with_reason = population.join(held.select("customer_id", "reason").unique(), on="customer_id")
    total, total_lost = population.height, int(population["no_purchase"].sum())
    return (with_reason.group_by("reason").agg(customers=pl.len(), lost=pl.col("no_purchase").sum())
            .with_columns(
                share_without_purchase=pl.col("lost") / pl.col("customers"),
                share_without_purchase_others=pl.when(pl.lit(total) > pl.col("customers"))
                .then((pl.lit(total_lost) - pl.col("lost")) / (pl.lit(total) - pl.col("customers"))))
            .with_columns(lift=pl.when(pl.col("share_without_purchase_others") > 0)
                          .then(pl.col("share_without_purchase") / pl.col("share_without_purchase_others")))
            .drop("lost").sort("reason"))


# --- what the marts read -----------------------------------------------------------------------

def categories_held(texts: pl.DataFrame, asked: pl.DataFrame, rules: WarningRules) -> pl.DataFrame:
    """The reason categories each asked (person, day) carries: a cancel reason, lost reason or
    survey comment of that category in the last ``reason_survey_days`` days (``texts``:
    customer_id, day, category). One row per person, day and category (``reason``)."""
    window = rules.reason_survey_days
    return (asked.select("customer_id", pl.col("day").cast(_DAY))
            .join(texts.select("customer_id", pl.col("day").cast(_DAY).alias("text_day"), "category"),
                  on="customer_id")
            .filter((pl.col("text_day") <= pl.col("day"))
                    & ((pl.col("day") - pl.col("text_day")).dt.total_days() < window))
            .select("customer_id", "day", reason=pl.col("category")).unique().sort("customer_id", "day", "reason"))


def _as_json_list(column: str) -> pl.Expr:
    """A list of reason codes as JSON text (codes are plain words)."""
    return pl.format("[{}]", pl.col(column).list.eval(pl.format('"{}"', pl.element())).list.join(", "))


def backtest(purchases: pl.DataFrame, signals: pl.DataFrame, texts: pl.DataFrame, as_of: dt.date,
             rules: WarningRules) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The validation rows (``validation``) and the drivers: per reason code and per reason
    category, held at the cutoff by the validation's buyers (``drivers``), with ``reason_type``
    code or category."""
    metrics, population = validation(purchases, as_of, rules)
    cutoff = as_of - dt.timedelta(days=rules.churn_risk_horizon_days)
    asked = population.select("customer_id", day=pl.lit(cutoff, _DAY))
    history = purchases.filter(pl.col("day") <= cutoff)
    codes = reasons(purchase_days(history), signals.filter(pl.col("day") <= cutoff), asked, rules)
    kinds = (drivers(codes, population).with_columns(reason_type=pl.lit("code")),
             drivers(categories_held(texts, asked, rules), population).with_columns(reason_type=pl.lit("category")))
    return metrics, pl.concat(kinds).select("reason_type", "reason", pl.exclude("reason_type", "reason"))


def risk_list(purchases: pl.DataFrame, signals: pl.DataFrame, as_of: dt.date, rules: WarningRules,
              strength: Mapping[str, float] | None = None) -> pl.DataFrame:
    """customer_churn_risk before its person attributes: per buyer not churned at ``as_of``,
    the purchase profile, ``churn_risk``, ``risk_band`` and ``risk_reasons`` (JSON list,
    strongest first by ``strength``)."""
    scored = churn_risk(purchases, as_of, rules)
    asked = scored.select("customer_id", day=pl.lit(as_of, _DAY))
    days = purchase_days(purchases.filter(pl.col("day") <= as_of))
    profile = profiles(days, asked, rules)
    held = ordered_reasons(reasons(days, signals.filter(pl.col("day") <= as_of), asked, rules, profile), strength)
    return (scored.join(profile.drop("day", "first_purchase_day", "lapsing"), on="customer_id")
            .join(held.drop("day"), on="customer_id", how="left")
            .with_columns(risk_reasons=pl.when(pl.col("risk_reasons").is_null()).then(pl.lit("[]"))
                          .otherwise(_as_json_list("risk_reasons")))
            .sort("customer_id"))


def reasons_when_at_risk(purchases: pl.DataFrame, signals: pl.DataFrame, texts: pl.DataFrame,
                         spells: pl.DataFrame, as_of: dt.date, rules: WarningRules) -> pl.DataFrame:
    """For every person who became churned by ``as_of``: the reasons (codes and categories)
    held on the day they became at risk before it. ``spells``: customer_id, lifecycle_stage,
    valid_from (the stage history). One row per churn, reason; ``churned_on``, ``at_risk_on``."""
    churns = (spells.filter((pl.col("lifecycle_stage") == "churned") & (pl.col("valid_from") <= as_of))
              .select("customer_id", churned_on=pl.col("valid_from").cast(_DAY)))
    at_risk = (spells.filter(pl.col("lifecycle_stage") == "at_risk")
               .select("customer_id", at_risk_on=pl.col("valid_from").cast(_DAY)).sort("at_risk_on"))
    pairs = (churns.sort("churned_on")
             .join_asof(at_risk, left_on="churned_on", right_on="at_risk_on", by="customer_id",
                        strategy="backward", check_sortedness=False)
             .filter(pl.col("at_risk_on").is_not_null()))
    asked = pairs.select("customer_id", day=pl.col("at_risk_on")).unique()
    days = purchase_days(purchases.filter(pl.col("day") <= as_of))
    held = pl.concat([
        reasons(days, signals.filter(pl.col("day") <= as_of), asked, rules).with_columns(reason_type=pl.lit("code")),
        categories_held(texts, asked, rules).with_columns(reason_type=pl.lit("category")),
    ])
    return (pairs.join(held.rename({"day": "at_risk_on"}), on=["customer_id", "at_risk_on"])
            .select("customer_id", "churned_on", "at_risk_on", "reason_type", "reason")
            .sort("customer_id", "churned_on", "reason_type", "reason"))
