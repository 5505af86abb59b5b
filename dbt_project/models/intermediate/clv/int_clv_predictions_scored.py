"""p_alive, expected purchases and predicted CLV per buyer from the fitted parameters: a
thin wrapper around pipelines.lifecycle.clv (customer_summary, usable_params, predict)."""
import datetime as dt


def model(dbt, session):
    dbt.config(materialized="table")
    from pipelines.lifecycle.clv import customer_summary, predict, usable_params

    as_of = dt.date.fromisoformat(dbt.config.get("as_of_date"))
    purchases = dbt.ref("int_purchases_filtered")
    params = usable_params(dbt.ref("int_clv_models_fitted").pl())
    return predict(customer_summary(purchases.pl().lazy(), as_of), params)
