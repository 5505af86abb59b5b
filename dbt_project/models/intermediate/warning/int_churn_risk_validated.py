"""The early-warning backtest (CONTRACT section 7): the scoring done as of the cutoff
(as_of_date - churn_risk_horizon_days) for the buyers not churned then, against whether they
bought in the horizon; per scorer (churn_risk, recency) AUC, top-decile lift and Brier score.
A thin wrapper around pipelines.lifecycle.early_warning.backtest."""
import datetime as dt
import json


def model(dbt, session):
    dbt.config(materialized="table")
    from pipelines.lifecycle.early_warning import WarningRules, backtest

    values = json.loads(dbt.config.get("warning_rules"))
    purchases = dbt.ref("int_purchases_filtered").pl().rename({"ordered_date": "day"})
    signals = dbt.ref("int_warning_signals_collected").pl()
    texts = dbt.ref("int_reason_texts_categorised").pl()
    metrics, _drivers = backtest(purchases, signals, texts, dt.date.fromisoformat(values["as_of_date"]),
                                 WarningRules.from_vars(values))
    return metrics
