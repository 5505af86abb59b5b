"""Predicted customer lifetime value: BG/NBD (purchases and survival) and Gamma-Gamma
(spend), fitted by maximum likelihood with SciPy on closed-form log-likelihoods.

References: Fader, Hardie & Lee (2005), "Counting Your Customers the Easy Way: An
Alternative to the Pareto/NBD Model", Marketing Science 24(2) (BG/NBD, equations 6, 10
and the P(alive) expression); Fader, Hardie & Lee (2005), "RFM and CLV: Using Iso-Value
Curves for Customer Base Analysis", JMR 42(4), and Fader & Hardie (2013), "The
Gamma-Gamma Model of Monetary Value" (Gamma-Gamma likelihood and conditional mean).

Inputs per buyer (CONTRACT section 6, last paragraph; time unit day; purchases counted per
distinct reporting-timezone day; the first purchase excluded from frequency and from the
spend average), as of a cut-off day:

* ``frequency`` x: purchase days after the first one;
* ``recency`` t_x: days from the first to the last purchase day;
* ``age`` T: days from the first purchase day to the cut-off;
* ``monetary`` m_x: the mean net revenue of the repeat purchase days (null when x = 0).

Outputs: ``p_alive``, ``expected_orders_365d`` (expected purchase days in the next 365
days) and ``predicted_clv_365d`` = expected_orders_365d x the Gamma-Gamma expected spend
per purchase (undiscounted, reporting currency; buyers with x = 0 get the population
mean spend).

Guard rails: fewer than ``MIN_BUYERS`` buyers or ``MIN_REPEAT_BUYERS`` repeat buyers
(with positive spend) is no fit: a warning, null predictions, and the run succeeds. A fit
that does not converge is reported (``converged`` = 0 in the parameter table, a warning)
and its predictions are null.
"""
from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, field

import numpy as np
import polars as pl
from scipy import optimize, special

log = logging.getLogger(__name__)

MIN_BUYERS = 50
MIN_REPEAT_BUYERS = 20
HORIZON_DAYS = 365
HOLDOUT_DAYS = 180
MAX_ITERATIONS = 500  # L-BFGS-B iterations; published data sets converge in under 20
MAX_LOG_PARAMETER = 12.0  # |log(parameter)| beyond this (1.6e5 or 6e-6) is divergence, not a fit
FREQUENCY_BUCKETS = (0, 1, 2, 3, 4, 5, 6)  # and "7+"

SUMMARY_SCHEMA = {"customer_id": pl.String, "frequency": pl.Int64, "recency": pl.Float64, "age": pl.Float64,
                  "monetary": pl.Float64}
PREDICTION_SCHEMA = {"customer_id": pl.String, "p_alive": pl.Float64, "expected_orders_365d": pl.Float64,
                     "predicted_clv_365d": pl.Float64}


# --------------------------------------------------------------------------- summaries


def customer_summary(purchases: pl.LazyFrame, cut_off: dt.date) -> pl.DataFrame:
    """x, t_x, T and m_x per buyer from purchases (``customer_id``, ``ordered_date``,
    ``net_revenue``) on or before ``cut_off``. Schema ``SUMMARY_SCHEMA``."""
    # Sums in 1/10,000s of the currency (money has four decimals): exact, so the fit's inputs, and
    # with them its parameters, do not depend on the order in which rows are added up.
    days = (
        purchases.filter(pl.col("ordered_date") <= cut_off)
        .group_by("customer_id", "ordered_date")
        .agg(revenue=(pl.col("net_revenue").cast(pl.Float64) * 10_000).round().cast(pl.Int64).sum())
    )
    out = (
        days.group_by("customer_id")
        .agg(
            first=pl.col("ordered_date").min(),
            last=pl.col("ordered_date").max(),
            n_days=pl.len(),
            # the first purchase day's revenue is left out of the spend average
            repeat_revenue=pl.col("revenue").sum() - pl.col("revenue").sort_by("ordered_date").first(),
        )
        .select(
            pl.col("customer_id").cast(pl.String),
            frequency=(pl.col("n_days") - 1).cast(pl.Int64),
            recency=(pl.col("last") - pl.col("first")).dt.total_days().cast(pl.Float64),
            age=(pl.lit(cut_off) - pl.col("first")).dt.total_days().cast(pl.Float64),
            monetary=pl.when(pl.col("n_days") > 1).then(pl.col("repeat_revenue") / 10_000 / (pl.col("n_days") - 1)),
        )
        .sort("customer_id")
        .collect()
    )
    return out.cast(SUMMARY_SCHEMA)


# --------------------------------------------------------------------------- BG/NBD


def _bgnbd_terms(params: np.ndarray, x: np.ndarray, tx: np.ndarray, T: np.ndarray):
    r, alpha, a, b = params
    A1 = special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha)
    A2 = special.gammaln(a + b) + special.gammaln(b + x) - special.gammaln(b) - special.gammaln(a + b + x)
    A3 = -(r + x) * np.log(alpha + T)
    repeat = x > 0
    A4 = np.full_like(A3, -np.inf)
    xr = x[repeat]
    A4[repeat] = np.log(a) - np.log(b + xr - 1) - (r + xr) * np.log(alpha + tx[repeat])
    L3 = np.logaddexp(A3, A4)
    return A1, A2, A3, A4, L3


def bgnbd_log_likelihood(params, x, tx, T, weights=None) -> float:
    """Total BG/NBD log-likelihood (equation 6 of the paper) of (r, alpha, a, b)."""
    x, tx, T = (np.asarray(v, float) for v in (x, tx, T))
    w = np.ones_like(x) if weights is None else np.asarray(weights, float)
    A1, A2, _, _, L3 = _bgnbd_terms(np.asarray(params, float), x, tx, T)
    return float(np.sum(w * (A1 + A2 + L3)))


def _bgnbd_objective(theta, x, tx, T, w, scale):
    """Negative log-likelihood per customer and its gradient in log-parameters."""
    params = np.exp(theta)
    r, alpha, a, b = params
    A1, A2, A3, A4, L3 = _bgnbd_terms(params, x, tx, T)
    w3 = np.exp(A3 - L3)
    w4 = np.exp(A4 - L3)  # 0 where x = 0
    repeat = x > 0
    d_r = special.digamma(r + x) - special.digamma(r) + np.log(alpha) - w3 * np.log(alpha + T)
    d_r[repeat] -= w4[repeat] * np.log(alpha + tx[repeat])
    d_alpha = r / alpha - w3 * (r + x) / (alpha + T)
    d_alpha[repeat] -= w4[repeat] * (r + x[repeat]) / (alpha + tx[repeat])
    d_a = special.digamma(a + b) - special.digamma(a + b + x) + w4 / a
    d_b = special.digamma(a + b) + special.digamma(b + x) - special.digamma(b) - special.digamma(a + b + x)
    d_b[repeat] -= w4[repeat] / (b + x[repeat] - 1)
    ll = np.sum(w * (A1 + A2 + L3))
    grad = np.array([np.sum(w * d) for d in (d_r, d_alpha, d_a, d_b)]) * params
    return -ll / scale, -grad / scale


@dataclass
class Fit:
    model: str
    params: dict[str, float]
    log_likelihood: float
    converged: bool
    iterations: int
    customers: int
    seconds: float
    message: str = ""
    diagnostics: dict[str, float] = field(default_factory=dict)


def _maximise(objective, start: np.ndarray, args, names: tuple[str, ...], model: str, customers: int,
              log_likelihood) -> Fit:
    started = time.perf_counter()
    res = optimize.minimize(objective, np.log(start), args=args, jac=True, method="L-BFGS-B",
                            bounds=[(-20.0, 20.0)] * len(start), options={"maxiter": MAX_ITERATIONS, "gtol": 1e-9})
    params = np.exp(res.x)
    # parameters running off to 0 or infinity: the likelihood has no interior maximum (e.g.
    # purchases without heterogeneity or dropout), whatever the optimiser reports
    diverged = bool(np.any(np.abs(res.x) > MAX_LOG_PARAMETER))
    converged = bool(res.success) and not diverged and bool(np.all(np.isfinite(params)))
    message = str(res.message) + (
        f" (parameters diverge beyond e^±{MAX_LOG_PARAMETER:g}: the data cannot identify the model)"
        if diverged else "")
    if not converged:
        log.warning("%s fit did not converge: %s", model, message)
    return Fit(model=model, params=dict(zip(names, (float(p) for p in params))),
               log_likelihood=float(log_likelihood(params)), converged=converged, iterations=int(res.nit),
               customers=customers, seconds=round(time.perf_counter() - started, 3), message=message)


def _compress(*columns: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Distinct rows of the columns and how often each occurs (the likelihood is a sum)."""
    frame = pl.DataFrame({f"c{i}": c for i, c in enumerate(columns)})
    # sorted: the same input always sums in the same order (reproducible fits)
    grouped = frame.group_by(frame.columns).agg(w=pl.len()).sort(frame.columns)
    return [grouped[f"c{i}"].to_numpy().astype(float) for i in range(len(columns))], grouped["w"].to_numpy().astype(
        float)


def fit_bgnbd(x, tx, T) -> Fit:
    """Maximum-likelihood BG/NBD parameters r, alpha, a, b (alpha in the time unit of tx, T)."""
    (x, tx, T), w = _compress(np.asarray(x, float), np.asarray(tx, float), np.asarray(T, float))
    n = int(w.sum())
    scale = max(n, 1)
    start = np.array([1.0, max(float(np.average(T, weights=w)), 1.0) / 10, 1.0, 1.0])
    return _maximise(_bgnbd_objective, start, (x, tx, T, w, scale), ("r", "alpha", "a", "b"), "bg_nbd", n,
                     lambda p: bgnbd_log_likelihood(p, x, tx, T, w))


def p_alive(params: dict, x, tx, T) -> np.ndarray:
    """P(still active | x, t_x, T) = 1 / (1 + [x > 0] a / (b + x - 1) ((alpha + T) / (alpha + t_x))^(r + x))."""
    r, alpha, a, b = (params[k] for k in ("r", "alpha", "a", "b"))
    x, tx, T = (np.asarray(v, float) for v in (x, tx, T))
    out = np.ones_like(x)
    rep = x > 0
    log_ratio = np.log(a) - np.log(b + x[rep] - 1) + (r + x[rep]) * (np.log(alpha + T[rep]) - np.log(alpha + tx[rep]))
    out[rep] = 1.0 / (1.0 + np.exp(log_ratio))
    return out


def expected_purchases(params: dict, t: float, x, tx, T) -> np.ndarray:
    """E[Y(t) | x, t_x, T]: expected purchases in the next t time units (equation 10)."""
    r, alpha, a, b = (params[k] for k in ("r", "alpha", "a", "b"))
    x, tx, T = (np.asarray(v, float) for v in (x, tx, T))
    z = t / (alpha + T + t)
    hyp = special.hyp2f1(r + x, b + x, a + b + x - 1, z)
    first = (a + b + x - 1) / (a - 1) * (1 - np.exp((r + x) * np.log((alpha + T) / (alpha + T + t))) * hyp)
    return first * p_alive(params, x, tx, T)


# --------------------------------------------------------------------------- Gamma-Gamma


def gamma_gamma_log_likelihood(params, x, m) -> float:
    p, q, g = params
    x, m = np.asarray(x, float), np.asarray(m, float)
    return float(np.sum(_gg_ll_terms(p, q, g, x, m)))


def _gg_ll_terms(p, q, g, x, m):
    return (special.gammaln(p * x + q) - special.gammaln(p * x) - special.gammaln(q) + q * np.log(g)
            + (p * x - 1) * np.log(m) + p * x * np.log(x) - (p * x + q) * np.log(g + m * x))


def _gg_objective(theta, x, m, scale):
    p, q, g = np.exp(theta)
    ll = np.sum(_gg_ll_terms(p, q, g, x, m))
    px = p * x
    psi_pxq = special.digamma(px + q)
    log_gmx = np.log(g + m * x)
    d_p = np.sum(x * (psi_pxq - special.digamma(px) + np.log(m) + np.log(x) - log_gmx))
    d_q = np.sum(psi_pxq - special.digamma(q) + np.log(g) - log_gmx)
    d_g = np.sum(q / g - (px + q) / (g + m * x))
    grad = np.array([d_p, d_q, d_g]) * np.array([p, q, g])
    return -ll / scale, -grad / scale


def fit_gamma_gamma(x, m) -> Fit:
    """Maximum-likelihood Gamma-Gamma parameters p, q, gamma on repeat buyers (x >= 1, m > 0)."""
    x, m = np.asarray(x, float), np.asarray(m, float)
    # sorted by value: the sums run in the same order whatever order (customer ids) the buyers
    # came in, so the same buyers always give the same parameters to the last bit
    order = np.lexsort((m, x))
    x, m = x[order], m[order]
    start = np.array([1.0, 1.0, max(float(np.mean(m)), 1e-3)])
    return _maximise(_gg_objective, start, (x, m, max(len(x), 1)), ("p", "q", "gamma"), "gamma_gamma", len(x),
                     lambda prm: gamma_gamma_log_likelihood(prm, x, m))


def expected_spend(params: dict, x, m) -> np.ndarray:
    """E[M | x, m_x] = (gamma + m_x x) p / (p x + q - 1); with x = 0 the population mean p gamma / (q - 1)."""
    p, q, g = (params[k] for k in ("p", "q", "gamma"))
    x = np.asarray(x, float)
    m = np.nan_to_num(np.asarray(m, float), nan=0.0)
    return (g + m * x) * p / (p * x + q - 1)


# --------------------------------------------------------------------------- the pipeline's use


PARAMS_SCHEMA = {"model": pl.String, "kind": pl.String, "parameter": pl.String, "value": pl.Float64,
                 "customers_fitted": pl.Int64}


@dataclass
class ClvFit:
    fits: list[Fit]
    warnings: list[str]

    def parameter_rows(self, fitted_at: dt.datetime | None = None) -> pl.DataFrame:
        """The rows of marts.clv_model_params (without its time columns): per model its
        parameters (kind 'parameter') and diagnostics (kind 'diagnostic': log_likelihood,
        converged 1/0, iterations, seconds, and for Gamma-Gamma the frequency/spend
        correlation of the independence check). No rows when nothing could be fitted."""
        rows = []
        for fit in self.fits:
            rows += [(fit.model, "parameter", name, value, fit.customers) for name, value in fit.params.items()]
            diagnostics = {"log_likelihood": fit.log_likelihood, "converged": float(fit.converged),
                           "iterations": float(fit.iterations), "seconds": fit.seconds, **fit.diagnostics}
            rows += [(fit.model, "diagnostic", name, value, fit.customers) for name, value in diagnostics.items()]
        fitted_at = fitted_at or dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
        return pl.DataFrame(rows, schema=PARAMS_SCHEMA, orient="row").with_columns(
            time_unit=pl.lit("day"), fitted_at=pl.lit(fitted_at, pl.Datetime("us")))


def _too_few(buyers: int, repeat_buyers: int) -> bool:
    """The guard rail: too few buyers or repeat buyers to fit (module docstring)."""
    return buyers < MIN_BUYERS or repeat_buyers < MIN_REPEAT_BUYERS


def _spenders(summary: pl.DataFrame) -> np.ndarray:
    m = summary["monetary"].fill_null(np.nan).to_numpy()
    return (summary["frequency"].to_numpy() > 0) & np.isfinite(m) & (m > 0)


def fit_models(summary: pl.DataFrame) -> ClvFit:
    """Fit BG/NBD on every buyer and Gamma-Gamma on the repeat buyers with positive spend
    of ``summary`` (``customer_summary``), with the guard rails of the module docstring."""
    warnings: list[str] = []
    spenders = _spenders(summary)
    if _too_few(summary.height, int(spenders.sum())):
        warnings.append(f"too few buyers to fit the CLV models: {summary.height} buyers, {int(spenders.sum())} "
                        f"repeat buyers with positive spend (need {MIN_BUYERS} and {MIN_REPEAT_BUYERS}); "
                        "CLV columns are null")
        log.warning(warnings[-1])
        return ClvFit([], warnings)
    x = summary["frequency"].to_numpy().astype(float)
    m = summary["monetary"].fill_null(np.nan).to_numpy()
    bg = fit_bgnbd(x, summary["recency"].to_numpy(), summary["age"].to_numpy())
    gg = fit_gamma_gamma(x[spenders], m[spenders])
    if spenders.sum() > 2:
        corr = float(np.corrcoef(x[spenders], m[spenders])[0, 1])
        gg.diagnostics["frequency_spend_correlation"] = corr
        if abs(corr) > 0.3:
            warnings.append(f"Gamma-Gamma assumes spend independent of frequency; their correlation is {corr:.2f}")
            log.warning(warnings[-1])
    for fit in (bg, gg):
        if not fit.converged:
            warnings.append(f"{fit.model} fit did not converge ({fit.message}); CLV columns are null")
    return ClvFit([bg, gg], warnings)


def usable_params(rows: pl.DataFrame) -> tuple[dict, dict] | None:
    """The BG/NBD and Gamma-Gamma parameters from clv_model_params rows, or None unless
    both models were fitted and converged."""
    def model(name: str) -> tuple[dict, bool]:
        sel = rows.filter(pl.col("model") == name)
        params = dict(sel.filter(pl.col("kind") == "parameter").select("parameter", "value").iter_rows())
        converged = sel.filter((pl.col("kind") == "diagnostic") & (pl.col("parameter") == "converged"))["value"]
        return params, bool(len(converged)) and float(converged[0]) == 1.0

    (bg, bg_ok), (gg, gg_ok) = model("bg_nbd"), model("gamma_gamma")
    return (bg, gg) if bg_ok and gg_ok and bg and gg else None


def predict(summary: pl.DataFrame, params: tuple[dict, dict] | None,
            horizon_days: int = HORIZON_DAYS) -> pl.DataFrame:
    """p_alive, expected_orders_365d and predicted_clv_365d per buyer of ``summary``
    (``PREDICTION_SCHEMA``); all null when ``params`` is None."""
    if params is None:
        null = pl.lit(None, pl.Float64)
        return summary.select("customer_id", p_alive=null, expected_orders_365d=null,
                              predicted_clv_365d=null).cast(PREDICTION_SCHEMA)
    bg, gg = params
    x = summary["frequency"].to_numpy().astype(float)
    tx, T = summary["recency"].to_numpy(), summary["age"].to_numpy()
    spenders = _spenders(summary)
    m = summary["monetary"].fill_null(0.0).to_numpy()
    orders = expected_purchases(bg, horizon_days, x, tx, T)
    spend = expected_spend(gg, np.where(spenders, x, 0.0), np.where(spenders, m, 0.0))
    return summary.select("customer_id").with_columns(
        p_alive=pl.Series(p_alive(bg, x, tx, T)), expected_orders_365d=pl.Series(orders),
        predicted_clv_365d=pl.Series(orders * spend)).cast(PREDICTION_SCHEMA)


def holdout_validation(purchases: pl.LazyFrame, as_of_date: dt.date, holdout_days: int = HOLDOUT_DAYS) -> pl.DataFrame:
    """Calibration / holdout check: fit on purchases up to as_of_date - holdout_days, predict
    each calibration buyer's purchase days in the holdout, compare with the actual ones,
    per calibration frequency bucket ("0" .. "6", "7+"). Empty when the fit is not possible."""
    cut = as_of_date - dt.timedelta(days=holdout_days)
    calibration = customer_summary(purchases, cut)
    schema = {"frequency_bucket": pl.String, "customers": pl.Int64, "predicted_purchases": pl.Float64,
              "actual_purchases": pl.Float64, "calibration_end": pl.Date, "holdout_days": pl.Int64}
    x = calibration["frequency"].to_numpy().astype(float)
    if _too_few(calibration.height, int((x > 0).sum())):  # BG/NBD only: any repeat buyer counts
        return pl.DataFrame(schema=schema)
    bg = fit_bgnbd(x, calibration["recency"].to_numpy(), calibration["age"].to_numpy())
    if not bg.converged:
        return pl.DataFrame(schema=schema)
    predicted = expected_purchases(bg.params, holdout_days, x, calibration["recency"].to_numpy(),
                                   calibration["age"].to_numpy())
    actual = (
        purchases.filter((pl.col("ordered_date") > cut) & (pl.col("ordered_date") <= as_of_date))
        .group_by("customer_id").agg(actual=pl.col("ordered_date").n_unique())
        .collect()
    )
    cap = FREQUENCY_BUCKETS[-1] + 1
    per_customer = calibration.select("customer_id", "frequency").with_columns(predicted=pl.Series(predicted)).join(
        actual, on="customer_id", how="left").with_columns(pl.col("actual").fill_null(0))
    return (
        per_customer.with_columns(frequency_bucket=pl.when(pl.col("frequency") >= cap).then(pl.lit(f"{cap}+"))
                                  .otherwise(pl.col("frequency").cast(pl.String)),
                                  order=pl.min_horizontal("frequency", cap))
        .group_by("frequency_bucket", "order")
        .agg(customers=pl.len(), predicted_purchases=pl.col("predicted").mean(),
             actual_purchases=pl.col("actual").cast(pl.Float64).mean())
        .sort("order")
        .select("frequency_bucket", "customers", "predicted_purchases", "actual_purchases",
                calibration_end=pl.lit(cut), holdout_days=pl.lit(holdout_days))
        .cast(schema)
    )


# --------------------------------------------------------------------------- reporting


def fit_report(params: pl.DataFrame, holdout: pl.DataFrame) -> dict:
    """A summary of marts.clv_model_params and marts.clv_holdout_validation for run
    metadata (numbers only, no customer data): whether both models were fitted and
    converged, their parameters, the independence check and the holdout comparison."""
    report: dict = {"fitted": usable_params(params) is not None}
    for model, kind, name, value, n in params.select(
            "model", "kind", "parameter", "value", "customers_fitted").iter_rows():
        report[f"{model}.{name}"] = value
        report[f"{model}.customers_fitted"] = n
    if holdout.height:
        predicted = float((holdout["predicted_purchases"] * holdout["customers"]).sum())
        actual = float((holdout["actual_purchases"] * holdout["customers"]).sum())
        report["holdout.predicted_purchases"] = predicted
        report["holdout.actual_purchases"] = actual
        report["holdout.relative_error"] = (predicted - actual) / actual if actual else None
        report["holdout.by_frequency"] = "; ".join(
            f"{b}: {c} buyers, predicted {p:.3f}, actual {a:.3f}"
            for b, c, p, a in holdout.select("frequency_bucket", "customers", "predicted_purchases",
                                             "actual_purchases").iter_rows())
    return report
