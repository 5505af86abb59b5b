"""Cohort retention grid over all buyers: a thin wrapper around pipelines.lifecycle.cohorts.cohort_grid."""
import datetime as dt


def model(dbt, session):
    dbt.config(materialized="table")
    from pipelines.lifecycle.cohorts import cohort_grid

    purchases = dbt.ref("int_purchases_filtered")
    as_of = dt.date.fromisoformat(dbt.config.get("as_of_date"))
    return cohort_grid(purchases.pl().lazy(), as_of).collect()
