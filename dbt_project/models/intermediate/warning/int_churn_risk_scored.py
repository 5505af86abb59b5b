"""Each buyer not churned at as_of_date with the early-warning score (CONTRACT section 7): the
purchase profile, churn_risk (BG/NBD probability of no purchase in the horizon), risk_band and
the reasons held, strongest (highest measured lift) first. A thin wrapper around
pipelines.lifecycle.early_warning.risk_list."""
import datetime as dt
import json


def model(dbt, session):
    dbt.config(materialized="table")
    from pipelines.lifecycle.early_warning import WarningRules, risk_list

    values = json.loads(dbt.config.get("warning_rules"))
    purchases = dbt.ref("int_purchases_filtered").pl().rename({"ordered_date": "day"})
    signals = dbt.ref("int_warning_signals_collected").pl()
    drivers = dbt.ref("int_churn_drivers_measured").pl()
    strength = {r["reason"]: r["lift"] for r in drivers.filter(drivers["reason_type"] == "code").iter_rows(named=True)
                if r["lift"] is not None}
    return risk_list(purchases, signals, dt.date.fromisoformat(values["as_of_date"]), WarningRules.from_vars(values),
                     strength)
