"""Cohort retention grid per acquisition channel ('unknown' when none is known): a thin
wrapper around pipelines.lifecycle.cohorts.cohort_grid."""
import datetime as dt


def model(dbt, session):
    dbt.config(materialized="table")
    from pipelines.lifecycle.cohorts import cohort_grid

    purchases = dbt.ref("int_purchases_filtered")
    channels = dbt.ref("int_acquisition_channels_attributed").project("customer_id, acquisition_channel")
    rows = purchases.join(channels, "customer_id", how="left").project(
        "* replace (coalesce(acquisition_channel, 'unknown') as acquisition_channel)")
    as_of = dt.date.fromisoformat(dbt.config.get("as_of_date"))
    return cohort_grid(rows.pl().lazy(), as_of, by=["acquisition_channel"]).collect()
