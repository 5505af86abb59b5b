"""E.164 phone numbers: one row per distinct (raw phone, default region) pair.

A thin wrapper: the rule is pipelines.staging.phones.normalise_phones (the
`phonenumbers` library, once per distinct value). Default region = the record's
ISO country from the base models.
"""
import polars as pl


def model(dbt, session):
    dbt.config(materialized="table")
    from pipelines.staging.phones import normalise_phones

    frames = [
        relation.filter("phone_raw is not null").project("phone_raw, country as default_region").distinct().pl()
        for relation in (dbt.ref("base_crm_contacts__contacts"), dbt.ref("base_orders__orders"))
    ]
    pairs = pl.concat(frames).unique()
    return normalise_phones(pairs)
