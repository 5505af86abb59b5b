"""For every person who became churned by as_of_date, the reasons (codes and categories) they
carried on the day they became at risk before it (CONTRACT section 7, churn_reasons_monthly).
A thin wrapper around pipelines.lifecycle.early_warning.reasons_when_at_risk."""
import datetime as dt
import json


def model(dbt, session):
    dbt.config(materialized="table")
    from pipelines.lifecycle.early_warning import WarningRules, reasons_when_at_risk

    values = json.loads(dbt.config.get("warning_rules"))
    purchases = dbt.ref("int_purchases_filtered").pl().rename({"ordered_date": "day"})
    signals = dbt.ref("int_warning_signals_collected").pl()
    texts = dbt.ref("int_reason_texts_categorised").pl()
    spells = dbt.ref("int_stage_spells_reconstructed").pl()
    return reasons_when_at_risk(purchases, signals, texts, spells, dt.date.fromisoformat(values["as_of_date"]),
                                WarningRules.from_vars(values))
