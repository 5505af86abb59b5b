"""Why customers leave, measured (CONTRACT section 7): among the buyers not churned at the
backtest's cutoff, per reason code and reason category held then, the share of them without a
purchase in the horizon against the others', and the lift. A thin wrapper around
pipelines.lifecycle.early_warning.backtest."""
import datetime as dt
import json


def model(dbt, session):
    dbt.config(materialized="table")
    from pipelines.lifecycle.early_warning import WarningRules, backtest

    values = json.loads(dbt.config.get("warning_rules"))
    purchases = dbt.ref("int_purchases_filtered").pl().rename({"ordered_date": "day"})
    signals = dbt.ref("int_warning_signals_collected").pl()
    texts = dbt.ref("int_reason_texts_categorised").pl()
    _metrics, drivers = backtest(purchases, signals, texts, dt.date.fromisoformat(values["as_of_date"]),
                                 WarningRules.from_vars(values))
    return drivers
