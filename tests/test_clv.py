"""BG/NBD and Gamma-Gamma (pipelines.lifecycle.clv) against the published CDNOW fits, hand-checked
profiles, the gradients, the customer summary rules and the guard rails."""
from __future__ import annotations

import datetime as dt
import math

import numpy as np
import polars as pl
import pytest
from scipy import optimize

from pipelines.lifecycle import clv
from tools import public_data as cdnow

D = dt.date
# Fader, Hardie & Lee (2005), BG/NBD on the CDNOW sample, 39 weeks, time unit week
PUBLISHED_BGNBD = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
PUBLISHED_BGNBD_LL = -9582.4
# Fader, Hardie & Lee (2005) / Fader & Hardie (2013), Gamma-Gamma on the 946 repeat buyers
PUBLISHED_GG = {"p": 6.25, "q": 3.74, "gamma": 15.44}


@pytest.fixture(scope="module")
def cdnow_summary():
    return pl.read_csv(cdnow.path("cdnow_customers_summary_with_transactions.csv"))


def test_bgnbd_reproduces_the_published_cdnow_fit(cdnow_summary):
    s = cdnow_summary
    fit = clv.fit_bgnbd(s["x"].to_numpy(), s["t_x"].to_numpy(), s["T"].to_numpy())
    assert fit.converged and fit.customers == 2357
    for name, value in PUBLISHED_BGNBD.items():
        assert fit.params[name] == pytest.approx(value, abs=0.0006), name
    assert fit.log_likelihood == pytest.approx(PUBLISHED_BGNBD_LL, abs=0.05)


def test_gamma_gamma_reproduces_the_published_cdnow_fit(cdnow_summary):
    rep = cdnow_summary.filter(pl.col("x") > 0)
    fit = clv.fit_gamma_gamma(rep["x"].to_numpy(), rep["zbar"].to_numpy())
    assert fit.converged and fit.customers == 946
    for name, value in PUBLISHED_GG.items():
        assert fit.params[name] == pytest.approx(value, abs=0.01), name  # one unit of the last published digit


def test_expected_purchases_of_the_papers_worked_example():
    # the paper: a customer with x = 2, t_x = 30.43, T = 38.86 is expected to make 1.226
    # purchases in the next 39 weeks
    got = clv.expected_purchases(PUBLISHED_BGNBD, 39, [2], [30.43], [38.86])
    assert got[0] == pytest.approx(1.226, abs=0.001)


def test_p_alive_by_hand():
    # 1 / (1 + a/(b+x-1) * ((alpha+T)/(alpha+t_x))^(r+x)) with the published parameters:
    # a/(b+1) = 0.793/3.426 = 0.231465; (4.414+38.86)/(4.414+30.43) = 1.241935;
    # 1.241935^2.243 = 1.625868; 1 / (1 + 0.231465 * 1.625868) = 0.726570
    got = clv.p_alive(PUBLISHED_BGNBD, [2, 0, 5], [30.43, 0, 38.86], [38.86, 38.86, 38.86])
    assert got[0] == pytest.approx(0.726570, abs=1e-5)
    assert got[1] == 1.0  # no repeat purchase: never seen to drop out
    assert got[2] > got[0]  # bought at the very end of the period: more likely alive


def test_expected_spend_by_hand():
    p = {"p": 6.25, "q": 3.74, "gamma": 15.44}
    got = clv.expected_spend(p, [0, 2], [0, 22.35])
    assert got[0] == pytest.approx(6.25 * 15.44 / 2.74)  # the population mean p*gamma/(q-1)
    assert got[1] == pytest.approx((15.44 + 2 * 22.35) * 6.25 / (6.25 * 2 + 3.74 - 1))


def test_analytic_gradients_match_finite_differences(cdnow_summary):
    s = cdnow_summary
    x, tx, T = (s[c].to_numpy().astype(float) for c in ("x", "t_x", "T"))
    theta = np.log([0.3, 5.0, 0.9, 2.0])
    err = optimize.check_grad(lambda th: clv._bgnbd_objective(th, x, tx, T, np.ones_like(x), len(x))[0],
                              lambda th: clv._bgnbd_objective(th, x, tx, T, np.ones_like(x), len(x))[1], theta)
    assert err < 1e-5
    rep = s.filter(pl.col("x") > 0)
    xr, m = rep["x"].to_numpy().astype(float), rep["zbar"].to_numpy()
    theta = np.log([5.0, 3.0, 12.0])
    err = optimize.check_grad(lambda th: clv._gg_objective(th, xr, m, len(xr))[0],
                              lambda th: clv._gg_objective(th, xr, m, len(xr))[1], theta)
    assert err < 1e-5


def purchases(*rows) -> pl.LazyFrame:
    return pl.LazyFrame([{"customer_id": c, "ordered_date": d, "net_revenue": v} for c, d, v in rows],
                        schema={"customer_id": pl.String, "ordered_date": pl.Date, "net_revenue": pl.Float64})


def test_customer_summary_counts_days_and_leaves_out_the_first_purchase():
    p = purchases(
        ("a", D(2024, 1, 1), 10.0), ("a", D(2024, 1, 1), 5.0),   # first day: 15, left out of the spend
        ("a", D(2024, 1, 11), 20.0), ("a", D(2024, 1, 11), 4.0),  # one repeat day worth 24
        ("a", D(2024, 2, 1), 30.0),                                # a second repeat day
        ("a", D(2024, 3, 1), 99.0),                                # after the cut-off
        ("b", D(2024, 2, 20), 7.0),
    )
    s = clv.customer_summary(p, D(2024, 2, 29)).sort("customer_id")
    assert s.rows() == [("a", 2, 31.0, 59.0, 27.0), ("b", 0, 0.0, 9.0, None)]


def test_too_few_buyers_is_a_warning_with_null_predictions():
    s = clv.customer_summary(purchases(("a", D(2024, 1, 1), 10.0), ("a", D(2024, 1, 5), 10.0)), D(2024, 2, 1))
    fit = clv.fit_models(s)
    assert fit.fits == [] and "too few buyers" in fit.warnings[0]
    assert fit.parameter_rows().height == 0
    assert clv.usable_params(fit.parameter_rows()) is None
    pred = clv.predict(s, None)
    assert pred.rows() == [("a", None, None, None)]


def synthetic_summary(n: int = 1000, seed: int = 3) -> pl.DataFrame:
    histories, T = simulate_bgnbd(n, 0.5, 40.0, 0.8, 2.5, seed)
    rng = np.random.default_rng(seed)
    x = np.array([len(h) for h in histories])
    tx = np.array([h[-1] if h else 0.0 for h in histories])
    m = np.where(x > 0, rng.gamma(5, 8, n), np.nan)
    return pl.DataFrame({"customer_id": [f"c{i}" for i in range(n)], "frequency": x, "recency": tx, "age": T,
                         "monetary": m}).with_columns(pl.col("monetary").fill_nan(None)).cast(clv.SUMMARY_SCHEMA)


def test_a_fit_that_does_not_converge_is_reported_and_predicts_nothing(monkeypatch):
    monkeypatch.setattr(clv, "MAX_ITERATIONS", 1)
    fit = clv.fit_models(synthetic_summary())
    assert [f.converged for f in fit.fits] == [False, False]
    assert any("did not converge" in w for w in fit.warnings)
    rows = fit.parameter_rows()
    converged = rows.filter(pl.col("parameter") == "converged")["value"].to_list()
    assert converged == [0.0, 0.0]
    assert clv.usable_params(rows) is None


def test_a_converged_fit_predicts_for_every_buyer():
    s = synthetic_summary()
    fit = clv.fit_models(s)
    rows = fit.parameter_rows(fitted_at=dt.datetime(2025, 1, 1))
    assert set(rows["model"]) == {"bg_nbd", "gamma_gamma"}
    assert rows.filter(pl.col("kind") == "parameter")["parameter"].to_list() == ["r", "alpha", "a", "b", "p", "q",
                                                                                 "gamma"]
    assert rows["time_unit"].unique().to_list() == ["day"]
    params = clv.usable_params(rows)
    pred = clv.predict(s, params)
    assert pred.height == s.height and pred.null_count().row(0) == (0, 0, 0, 0)
    assert pred["p_alive"].is_between(0, 1).all()
    # CLV = expected purchase days x expected spend per day
    bg, gg = params
    i = int(np.argmax(s["frequency"].to_numpy()))
    row = s.row(i, named=True)
    orders = clv.expected_purchases(bg, 365, [row["frequency"]], [row["recency"]], [row["age"]])[0]
    spend = clv.expected_spend(gg, [row["frequency"]], [row["monetary"]])[0]
    assert pred["predicted_clv_365d"][i] == pytest.approx(orders * spend)
    corr = rows.filter(pl.col("parameter") == "frequency_spend_correlation")["value"][0]
    assert -1 <= corr <= 1 and not math.isnan(corr)


def simulate_bgnbd(n: int, r: float, alpha: float, a: float, b: float, seed: int):
    """Purchase histories drawn from the BG/NBD story: rate ~ Gamma(r, alpha), dropout
    probability ~ Beta(a, b), Poisson purchases, dropout after each repeat purchase. Returns
    each customer's repeat purchase times and age T (continuous days)."""
    rng = np.random.default_rng(seed)
    lam, drop, T = rng.gamma(r, 1 / alpha, n), rng.beta(a, b, n), rng.uniform(300, 700, n)
    histories = []
    for i in range(n):
        times, t = [], 0.0
        while True:
            t += rng.exponential(1 / lam[i])
            if t > T[i]:
                break
            times.append(t)
            if rng.random() < drop[i]:
                break
        histories.append(times)
    return histories, T


def test_bgnbd_recovers_the_parameters_it_was_simulated_with():
    histories, T = simulate_bgnbd(4000, 0.5, 40.0, 0.8, 2.5, seed=0)
    x = np.array([len(h) for h in histories], float)
    tx = np.array([h[-1] if h else 0.0 for h in histories])
    fit = clv.fit_bgnbd(x, tx, T)
    assert fit.converged
    for name, true in {"r": 0.5, "alpha": 40.0, "a": 0.8, "b": 2.5}.items():
        assert fit.params[name] == pytest.approx(true, rel=0.2), name  # sampling error of 4,000 customers


def test_data_without_dropout_or_heterogeneity_is_reported_as_not_converged():
    # every customer buys every 30 days: the likelihood grows without bound as r, alpha -> inf
    # and a -> 0; that is no fit, and it must not be published as one
    n = 200
    T = np.linspace(200, 600, n)
    x = np.floor(T / 30)
    fit = clv.fit_bgnbd(x, x * 30, T)
    assert not fit.converged and "diverge" in fit.message


def test_holdout_validation_buckets():
    histories, T = simulate_bgnbd(600, 0.5, 40.0, 0.8, 2.5, seed=1)
    as_of = D(2024, 12, 31)
    rows = []
    for c, (times, age) in enumerate(zip(histories, T)):
        first = as_of - dt.timedelta(days=int(age))
        rows.append((f"c{c}", first, 10.0))
        rows += [(f"c{c}", first + dt.timedelta(days=int(t)), 10.0) for t in times]
    p = purchases(*rows)
    v = clv.holdout_validation(p, as_of)
    cut = D(2024, 7, 4)
    assert v["calibration_end"].unique().to_list() == [cut]
    assert v["frequency_bucket"].to_list() == ["0", "1", "2", "3", "4", "5", "6", "7+"]
    assert v["customers"].sum() == len({c for c, d, _ in rows if d <= cut})  # each calibration buyer once
    # the actual holdout purchases are counted per distinct day after the calibration end,
    # for the buyers of the calibration period (later newcomers are not in the check)
    buyers = {c for c, d, _ in rows if d <= cut}
    holdout_of_calibration_buyers = len({(c, d) for c, d, _ in rows if cut < d <= as_of and c in buyers})
    assert (v["actual_purchases"] * v["customers"]).sum() == pytest.approx(holdout_of_calibration_buyers)
    # a correctly specified model predicts the holdout well in total (within 15 %)
    predicted = (v["predicted_purchases"] * v["customers"]).sum()
    assert predicted == pytest.approx(holdout_of_calibration_buyers, rel=0.15)


def test_fit_report_holds_numbers_only():
    s = synthetic_summary()
    rows = clv.fit_models(s).parameter_rows()
    holdout = pl.DataFrame({"frequency_bucket": ["0", "1"], "customers": [10, 5], "predicted_purchases": [0.5, 1.0],
                            "actual_purchases": [0.4, 1.2]})
    report = clv.fit_report(rows, holdout)
    assert report["fitted"] is True
    assert report["bg_nbd.customers_fitted"] == 1000
    assert report["holdout.predicted_purchases"] == pytest.approx(10.0)
    assert report["holdout.actual_purchases"] == pytest.approx(10.0)
    assert report["holdout.relative_error"] == pytest.approx(0.0)
    assert report["holdout.by_frequency"].startswith("0: 10 buyers, predicted 0.500, actual 0.400")
    assert clv.fit_report(rows.head(0), holdout.head(0)) == {"fitted": False}


def test_gamma_gamma_fit_does_not_depend_on_the_buyers_order():
    """The buyers come in customer_id order, and ids are drawn afresh on a new warehouse: the same
    buyers in another order must give the same parameters to the last bit (as BG/NBD does)."""
    rng = np.random.default_rng(3)
    x = rng.integers(1, 12, 500).astype(float)
    m = np.round(rng.gamma(3.0, 20.0, 500), 2)
    order = rng.permutation(500)
    a, b = clv.fit_gamma_gamma(x, m), clv.fit_gamma_gamma(x[order], m[order])
    assert a.converged and a.params == b.params
