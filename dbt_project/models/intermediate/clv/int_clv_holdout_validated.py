"""Calibration / holdout check of BG/NBD: a thin wrapper around pipelines.lifecycle.clv.holdout_validation."""
import datetime as dt


def model(dbt, session):
    dbt.config(materialized="table")
    from pipelines.lifecycle.clv import holdout_validation

    as_of = dt.date.fromisoformat(dbt.config.get("as_of_date"))
    purchases = dbt.ref("int_purchases_filtered")
    return holdout_validation(purchases.pl().lazy(), as_of)
