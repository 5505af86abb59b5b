"""Cohort retention grid per acquisition channel ('unknown' when none is known): a thin
wrapper around pipelines.lifecycle.cohorts.cohort_grid."""
import datetime as dt


def model(dbt, session):
    dbt.config(materialized="table")
    from pipelines.lifecycle.cohorts import cohort_grid

    purchases = dbt.ref("fct_orders").filter("is_purchase").project("customer_id, ordered_date, net_revenue")
    channels = dbt.ref("dim_customers").project(
        "customer_id, coalesce(acquisition_channel, 'unknown') as acquisition_channel")
    rows = purchases.join(channels, "customer_id")
    as_of = dt.date.fromisoformat(dbt.config.get("as_of_date"))
    return cohort_grid(rows.pl().lazy(), as_of, by=["acquisition_channel"]).collect()
