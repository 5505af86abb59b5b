from __future__ import annotations

from pathlib import Path

import subprocess
import sys

import duckdb
import pytest

from pipelines.serving.publish import PublishError, publish_serving


_COUNT_SCRIPT = (
    "import sys, duckdb; c = duckdb.connect(sys.argv[1], read_only=True); "
    "print(c.execute('select count(*) from marts.fct_orders').fetchone()[0])"
)


def _build_warehouse(path: Path, orders: int = 3) -> None:
    con = duckdb.connect(str(path))
    try:
        con.execute("create schema if not exists raw")
        con.execute("create schema if not exists staging")
        con.execute("create schema if not exists marts")
        con.execute("create or replace table raw.orders as select range as id from range(100)")
        con.execute(
            "create or replace table staging.stg_orders as "
            f"select range as order_id, range * 1.5 as amount from range({orders})"
        )
        con.execute("create or replace table marts.fct_orders as select * from staging.stg_orders")
        con.execute("create or replace table marts.dim_customers as select 'c1' as customer_id")
        # a view reading another schema: must arrive in serving as a table
        con.execute(
            "create or replace view marts.kpi_monthly as "
            "select count(*) as orders, sum(amount) as revenue from staging.stg_orders"
        )
    finally:
        con.close()


def _tables(path: Path) -> dict[tuple[str, str], str]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return {
            (schema, name): kind
            for schema, name, kind in con.execute(
                "select table_schema, table_name, table_type from information_schema.tables"
            ).fetchall()
        }
    finally:
        con.close()


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp-" in p.name)


def test_publish_copies_only_marts_with_exact_counts(tmp_path):
    wh, serving = tmp_path / "clm.duckdb", tmp_path / "serving.duckdb"
    _build_warehouse(wh, orders=7)

    result = publish_serving(wh, serving)

    assert result["tables"] == 3
    assert result["rows"] == {"dim_customers": 1, "fct_orders": 7, "kpi_monthly": 1}
    assert result["path"] == str(serving.resolve())
    assert result["seconds"] >= 0
    assert _tables(serving) == {
        ("marts", "dim_customers"): "BASE TABLE",
        ("marts", "fct_orders"): "BASE TABLE",
        ("marts", "kpi_monthly"): "BASE TABLE",
    }
    con = duckdb.connect(str(serving), read_only=True)
    try:
        assert con.execute("select count(*) from marts.fct_orders").fetchone()[0] == 7
        assert con.execute("select orders from marts.kpi_monthly").fetchone()[0] == 7
    finally:
        con.close()
    assert _leftovers(tmp_path) == []


def test_reader_on_old_file_is_not_disturbed_by_republish(tmp_path):
    wh, serving = tmp_path / "clm.duckdb", tmp_path / "serving.duckdb"
    _build_warehouse(wh, orders=3)
    publish_serving(wh, serving)

    reader = duckdb.connect(str(serving), read_only=True)
    try:
        assert reader.execute("select count(*) from marts.fct_orders").fetchone()[0] == 3

        _build_warehouse(wh, orders=5)
        result = publish_serving(wh, serving)
        assert result["rows"]["fct_orders"] == 5

        # the open reader still sees the snapshot it opened, fully readable
        assert reader.execute("select count(*) from marts.fct_orders").fetchone()[0] == 3
        assert reader.execute("select orders from marts.kpi_monthly").fetchone()[0] == 3
        # a new reader (another process, like a BI tool; in this process DuckDB would hand
        # back its cached instance of the path) sees the new snapshot
        out = subprocess.run(
            [sys.executable, "-c", _COUNT_SCRIPT, str(serving)],
            capture_output=True, text=True, check=True,
        ).stdout
        assert out.strip() == "5"
    finally:
        reader.close()
    assert _leftovers(tmp_path) == []


def test_failure_midway_keeps_old_snapshot_and_removes_temp_file(tmp_path):
    wh, serving = tmp_path / "clm.duckdb", tmp_path / "serving.duckdb"
    _build_warehouse(wh, orders=3)
    publish_serving(wh, serving)
    before = serving.read_bytes()

    # A mart view that breaks when read, sorted after tables that copy fine.
    con = duckdb.connect(str(wh))
    try:
        con.execute("create table staging.tmp_src as select 1 as x")
        con.execute("create view marts.zz_broken as select x from staging.tmp_src")
        con.execute("drop table staging.tmp_src")
        con.execute("create or replace table staging.stg_orders as select range as order_id, 1.0 as amount from range(9)")
        con.execute("create or replace table marts.fct_orders as select * from staging.stg_orders")
    finally:
        con.close()

    with pytest.raises(duckdb.Error):
        publish_serving(wh, serving)

    assert serving.read_bytes() == before
    assert _leftovers(tmp_path) == []
    reader = duckdb.connect(str(serving), read_only=True)
    try:
        assert reader.execute("select count(*) from marts.fct_orders").fetchone()[0] == 3
    finally:
        reader.close()


def test_warehouse_without_marts_is_refused(tmp_path):
    wh, serving = tmp_path / "clm.duckdb", tmp_path / "serving.duckdb"
    con = duckdb.connect(str(wh))
    con.execute("create schema raw")
    con.execute("create table raw.orders as select 1 as id")
    con.close()

    with pytest.raises(PublishError):
        publish_serving(wh, serving)
    assert not serving.exists()
    assert _leftovers(tmp_path) == []
