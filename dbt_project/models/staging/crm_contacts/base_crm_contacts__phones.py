"""E.164 phone numbers of CRM contacts: one row per distinct (phone as delivered, default
region) pair of base_crm_contacts__contacts.

A thin wrapper: the rule is pipelines.staging.phones.normalise_phones (the `phonenumbers`
library, once per distinct value). Default region = the record's ISO country. Each source
parses its own phones, so that staging reads nothing of another source.
"""


def model(dbt, session):
    dbt.config(materialized="table")
    from pipelines.staging.phones import normalise_phones

    pairs = (dbt.ref("base_crm_contacts__contacts").filter("phone_raw is not null")
             .project("phone_raw, country as default_region").distinct())
    return normalise_phones(pairs.pl())
