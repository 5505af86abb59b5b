"""Each purchase's touches (the buyer's web sessions in the attribution lookback, at most
attribution_max_touches, the most recent) with the credit of every attribution model (CONTRACT
section 8). A thin wrapper around pipelines.journeys.attribution.attribute."""
import json


def model(dbt, session):
    dbt.config(materialized="table")
    import polars as pl

    from pipelines.journeys.attribution import attribute

    values = json.loads(dbt.config.get("attribution_rules"))
    purchases = dbt.ref("int_purchases_filtered").pl().select(
        "order_id", "customer_id", pl.col("ordered_at").alias("purchased_at"),
        (pl.col("order_number") == 1).alias("is_first_purchase"))
    sessions = dbt.ref("int_sessions_aggregated").pl().select("session_id", "customer_id", "started_at", "channel")
    return attribute(purchases, sessions, lookback_days=int(values["attribution_lookback_days"]),
                     max_touches=int(values["attribution_max_touches"]),
                     half_life_days=float(values["time_decay_half_life_days"]))
