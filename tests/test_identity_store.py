"""pipelines.identity.registry: identity resolution against the warehouse, and the stored registry."""
from __future__ import annotations

import duckdb
import polars as pl

from pipelines.config import Settings, resolve_vars
from pipelines.identity.graph import KEY_TYPES
from pipelines.identity.registry import KEY_TYPE_SQL, REGISTRY, RESOLVED, resolve_in_warehouse

LINKS = [
    ("crm_contacts", "c1", "email", "anna@example.com"),
    ("orders", "o1", "email", "anna@example.com"),
    ("orders", "o2", "phone", "+4915112345678"),
    ("surveys", "s1", None, None),
]


def _warehouse(tmp_path, rows) -> Settings:
    settings = Settings(tmp_path / "landing", tmp_path / "warehouse", resolve_vars({"as_of_date": "2025-12-31"}))
    settings.warehouse_dir.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(settings.warehouse_path))
    con.execute("CREATE SCHEMA IF NOT EXISTS intermediate")
    frame = pl.DataFrame(rows, schema=["source", "source_key", "id_type", "id_value"], orient="row")  # noqa: F841
    con.execute("CREATE OR REPLACE TABLE intermediate.int_identity_links AS SELECT * FROM frame")
    con.close()
    return settings


def _read(settings: Settings, sql: str):
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_registry_is_stored_with_an_enum_key_type_and_ids_stay(tmp_path):
    settings = _warehouse(tmp_path, LINKS)
    stats = resolve_in_warehouse(settings)
    assert stats["records"] == 4 and stats["components"] == 3
    # 4 records + email + phone
    assert stats["registry_keys"] == 6
    columns = dict(_read(settings, "SELECT column_name, data_type FROM information_schema.columns "
                                   "WHERE table_schema = 'intermediate' AND table_name = 'customer_id_registry'"))
    assert columns["key_type"] == KEY_TYPE_SQL
    assert KEY_TYPE_SQL == "ENUM(" + ", ".join(f"'{k}'" for k in KEY_TYPES) + ")"
    first = _read(settings, f"SELECT source, source_key, customer_id FROM {RESOLVED} ORDER BY ALL")
    assert [r[:2] for r in first] == [("crm_contacts", "c1"), ("orders", "o1"), ("orders", "o2"), ("surveys", "s1")]
    assert first[0][2] == first[1][2] and len({r[2] for r in first}) == 3
    # a second run reads the ENUM back (as a Categorical) and keeps every id; a new record of
    # anna's joins her person
    con = duckdb.connect(str(settings.warehouse_path))
    con.execute("INSERT INTO intermediate.int_identity_links VALUES ('orders', 'o3', 'email', 'anna@example.com')")
    con.close()
    stats = resolve_in_warehouse(settings)
    assert stats["merged_ids"] == 0 and stats["split_ids"] == 0
    second = dict(((s, k), c) for s, k, c in _read(settings, f"SELECT source, source_key, customer_id FROM {RESOLVED}"))
    assert {(s, k): c for s, k, c in first} == {key: second[key] for key in second if key != ("orders", "o3")}
    assert second[("orders", "o3")] == second[("crm_contacts", "c1")]
    assert _read(settings, f"SELECT key_type::VARCHAR, count(*) FROM {REGISTRY} GROUP BY ALL ORDER BY 1") == [
        ("email", 1), ("phone", 1), ("record:crm_contacts", 1), ("record:orders", 3), ("record:surveys", 1)]
