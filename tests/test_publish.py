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


_READ_WRITE_CLIENT = """
import sys, duckdb
con = duckdb.connect(sys.argv[1])  # DuckDB's default: read-write, holding the file's write lock
print(con.execute("select count(*) from marts.fct_orders").fetchone()[0], flush=True)
sys.stdin.readline()
print(con.execute("select count(*) from marts.fct_orders").fetchone()[0], flush=True)
"""


def test_a_read_write_client_does_not_stop_the_next_publish(tmp_path):
    """A BI tool that opens serving.duckdb with default settings (read-write) holds DuckDB's
    write lock on that file; the next publish still succeeds and new clients see it."""
    wh, serving = tmp_path / "clm.duckdb", tmp_path / "serving.duckdb"
    _build_warehouse(wh, orders=3)
    publish_serving(wh, serving)
    client = subprocess.Popen([sys.executable, "-c", _READ_WRITE_CLIENT, str(serving)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert client.stdout.readline().strip() == "3"
        _build_warehouse(wh, orders=5)
        assert publish_serving(wh, serving)["rows"]["fct_orders"] == 5
        out = subprocess.run([sys.executable, "-c", _COUNT_SCRIPT, str(serving)], capture_output=True, text=True,
                             check=True).stdout
        assert out.strip() == "5"
        client.stdin.write("\n")
        client.stdin.flush()
        assert client.stdout.readline().strip() == "3"  # its own, old snapshot, intact
    finally:
        client.kill()
        client.wait()
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


def test_warehouse_info_comments_portable_types_and_parquet_copies(tmp_path):
    wh, serving = tmp_path / "clm.duckdb", tmp_path / "serving.duckdb"
    _build_warehouse(wh, orders=4)
    with duckdb.connect(str(wh)) as con:
        con.execute("create table marts.customer_churn_risk as select 'c1' as customer_id, "
                    "['recency_overdue', 'fewer_orders'] as reason_codes, sum(range::hugeint) as total "
                    "from range(3)")
    info = {"as_of_date": "2025-12-31", "vars": {"as_of_date": "2025-12-31", "churn_days": 180},
            "run_id": "run-1", "project_version": "0.1.0"}
    docs = {"fct_orders": {"description": "Grain: one row per order.",
                           "columns": {"order_id": "The order's key.", "amount": "Net  revenue\n in EUR."}},
            "not_a_mart": {"description": "ignored"}}
    result = publish_serving(wh, serving, info, docs)
    assert result["tables"] == 5 and result["rows"] == {"customer_churn_risk": 1, "dim_customers": 1,
                                                         "fct_orders": 4, "kpi_monthly": 1}
    with duckdb.connect(str(serving), read_only=True) as con:
        row = con.execute("select as_of_date::varchar, vars, run_id, project_version, mart_rows, "
                          "published_at is not null from marts.warehouse_info").fetchall()
        assert row == [("2025-12-31", '{"as_of_date": "2025-12-31", "churn_days": 180}', "run-1", "0.1.0",
                        '{"customer_churn_risk": 1, "dim_customers": 1, "fct_orders": 4, "kpi_monthly": 1}', True)]
        assert con.execute("select comment from duckdb_tables() where table_name = 'fct_orders'").fetchone()[0] == (
            "Grain: one row per order.")
        comments = dict(con.execute("select column_name, comment from duckdb_columns() "
                                    "where table_name = 'fct_orders'").fetchall())
        assert comments == {"order_id": "The order's key.", "amount": "Net revenue in EUR."}
        info_comments = con.execute("select count(*) from duckdb_columns() where table_name = 'warehouse_info' "
                                    "and comment is null").fetchone()[0]
        assert info_comments == 0
        types = dict(con.execute("select column_name, data_type from duckdb_columns() "
                                 "where table_name = 'customer_churn_risk'").fetchall())
        assert types["reason_codes"] == "VARCHAR" and types["total"] in ("DOUBLE", "BIGINT", "DECIMAL(38,0)")
        assert con.execute("select reason_codes, total::bigint from marts.customer_churn_risk").fetchone() == (
            '["recency_overdue","fewer_orders"]', 3)
    link = tmp_path / "serving" / "parquet"
    assert link.is_symlink() and sorted(p.name for p in link.iterdir()) == [
        "customer_churn_risk.parquet", "dim_customers.parquet", "fct_orders.parquet", "kpi_monthly.parquet",
        "warehouse_info.parquet"]
    assert duckdb.sql(f"select count(*) from read_parquet('{link / 'fct_orders.parquet'}')").fetchone()[0] == 4
    first = link.resolve()
    _build_warehouse(wh, orders=6)
    publish_serving(wh, serving, info, docs)
    assert link.resolve() != first and not first.exists()
    assert duckdb.sql(f"select count(*) from read_parquet('{link / 'fct_orders.parquet'}')").fetchone()[0] == 6
    assert sorted(p.name for p in (tmp_path / "serving").iterdir() if not p.name.startswith(".")) == [
        "parquet", link.resolve().name]
