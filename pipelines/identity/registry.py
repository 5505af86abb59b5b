"""Identity resolution against the warehouse: read the links dbt built, resolve them with
``pipelines.identity.graph.resolve_identities``, write the assignments and the id registry.

Tables (schema ``intermediate``):
- ``int_identity_links`` (dbt): the input.
- ``customer_id_registry`` (this module): identifier and record keys (``key_type``, a DuckDB
  ENUM of the known types, e.g. ``email`` or ``record:orders``, and ``key_value``) -> customer_id, kept
  across runs so that ids stay stable while any identifier of a person persists; with the
  id's hex value and each key's two hashes (``customer_code``, ``key_hash``, ``key_check``),
  derived columns that spare the next run from parsing and hashing every row again (it
  reads customer_id only when a code is missing).
- ``int_identities_resolved`` (this module): one row per source record with its customer_id.
Both outputs are replaced in one transaction.
"""
from __future__ import annotations

from pipelines.config import Settings
from pipelines.identity.graph import KEY_TYPES, LEGACY_KEY_COLUMN, REGISTRY_TABLE_SCHEMA, registry_table, resolve_identities
from pipelines.warehouse import connect, quote_literal

LINKS = "intermediate.int_identity_links"
REGISTRY = "intermediate.customer_id_registry"
RESOLVED = "intermediate.int_identities_resolved"
# key_type is stored as a DuckDB ENUM: read back into Polars in two thirds of the time text takes
KEY_TYPE_SQL = "ENUM(" + ", ".join(quote_literal(k) for k in KEY_TYPES) + ")"


def resolve_in_warehouse(settings: Settings) -> dict:
    con = connect(settings.warehouse_path)
    try:
        links = con.execute(f"SELECT source, source_key, id_type, id_value FROM {LINKS}").pl()
        stored = {r[0] for r in con.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = 'intermediate' AND table_name = 'customer_id_registry'").fetchall()}
        # an older registry has only id_key and customer_id: the rest is derived again
        columns = [c for c in (*REGISTRY_TABLE_SCHEMA, LEGACY_KEY_COLUMN) if c in stored]
        if "key_type" in stored:
            columns = [c for c in columns if c != LEGACY_KEY_COLUMN]
        if {"customer_code", "customer_id"} <= stored and not con.execute(
                f"SELECT count(*) FILTER (customer_code IS NULL) FROM {REGISTRY}").fetchone()[0]:
            columns.remove("customer_id")  # every code is there: the id strings are not needed
        registry = con.execute(f"SELECT {', '.join(columns)} FROM {REGISTRY}").pl() if stored else None
        result = resolve_identities(links, registry)
        del links, registry
        assignments = result.assignments  # noqa: F841 (used by SQL)
        new_registry = registry_table(result.registry)  # noqa: F841 (used by SQL)
        con.execute("BEGIN TRANSACTION")
        try:
            columns = ", ".join(f"key_type::{KEY_TYPE_SQL} AS key_type" if c == "key_type" else c
                                for c in REGISTRY_TABLE_SCHEMA)
            con.execute(f"CREATE OR REPLACE TABLE {REGISTRY} AS SELECT {columns} FROM new_registry")
            # (not sorted: at 13M records sorting added 7 s to a 13 s write, and nothing reads
            # it in order)
            con.execute(f"CREATE OR REPLACE TABLE {RESOLVED} AS SELECT source, source_key, customer_id FROM assignments")
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    finally:
        con.close()
    stats = dict(result.stats)
    stats["registry_keys"] = result.registry.height
    return stats
