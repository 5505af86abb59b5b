"""Each person's lifecycle stage evaluated at every month-end (the grid of CONTRACT
customer_stages_monthly): a thin wrapper around pipelines.lifecycle.stages.monthly_stages
over the stage spells."""
import datetime as dt


def model(dbt, session):
    dbt.config(materialized="table")
    from pipelines.lifecycle.stages import monthly_stages

    as_of = dt.date.fromisoformat(dbt.config.get("as_of_date"))
    spells = dbt.ref("int_stage_spells_reconstructed").pl().lazy()
    return monthly_stages(spells, as_of).collect()
