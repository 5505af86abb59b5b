"""BG/NBD and Gamma-Gamma fitted on every buyer as of as_of_date: a thin wrapper around
pipelines.lifecycle.clv (customer_summary, fit_models). One row per model parameter or diagnostic;
no rows when there are too few buyers to fit."""
import datetime as dt


def model(dbt, session):
    dbt.config(materialized="table")
    from pipelines.lifecycle.clv import customer_summary, fit_models

    as_of = dt.date.fromisoformat(dbt.config.get("as_of_date"))
    purchases = dbt.ref("int_purchases_filtered")
    return fit_models(customer_summary(purchases.pl().lazy(), as_of)).parameter_rows()
