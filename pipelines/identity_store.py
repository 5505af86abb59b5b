"""Identity resolution against the warehouse: read the links dbt built, resolve them with
``pipelines.identity.resolve_identities``, write the assignments and the id registry.

Tables (schema ``intermediate``):
- ``int_identity_links`` (dbt): the input.
- ``customer_id_registry`` (this module): identifier and record keys -> customer_id, kept
  across runs so that ids stay stable while any identifier of a person persists.
- ``int_identities_resolved`` (this module): one row per source record with its customer_id.
Both outputs are replaced in one transaction.
"""
from __future__ import annotations

from pipelines.config import Settings
from pipelines.identity import resolve_identities
from pipelines.ingest.load import connect

LINKS = "intermediate.int_identity_links"
REGISTRY = "intermediate.customer_id_registry"
RESOLVED = "intermediate.int_identities_resolved"


def resolve_in_warehouse(settings: Settings) -> dict:
    con = connect(settings)
    try:
        links = con.execute(f"SELECT source, source_key, id_type, id_value FROM {LINKS}").pl()
        has_registry = con.execute(
            "SELECT count(*) FROM information_schema.tables "
            "WHERE table_schema = 'intermediate' AND table_name = 'customer_id_registry'").fetchone()[0]
        registry = con.execute(f"SELECT id_key, customer_id FROM {REGISTRY}").pl() if has_registry else None
        result = resolve_identities(links, registry)
        assignments, new_registry = result.assignments, result.registry  # noqa: F841 (used by SQL)
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(f"CREATE OR REPLACE TABLE {REGISTRY} AS SELECT id_key, customer_id FROM new_registry")
            con.execute(
                f"CREATE OR REPLACE TABLE {RESOLVED} AS "
                "SELECT source, source_key, customer_id FROM assignments ORDER BY source, source_key")
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    finally:
        con.close()
    stats = dict(result.stats)
    stats["registry_keys"] = new_registry.height
    return stats
