"""Publish the ``marts`` schema of the warehouse as ``serving.duckdb`` for BI tools.

The snapshot is written to a new temporary file beside the serving file and moved into
place with ``os.replace``, an atomic rename: a BI tool that has the old file open keeps
reading the old snapshot (its open file handle still points at it), the next connection
sees the new one, and nobody ever sees a half-written file. On failure the temporary
file is removed and the old snapshot is left untouched.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import duckdb

from pipelines.warehouse import SERVING_TEMP_INFIX, quote_ident, quote_literal

SCHEMA = "marts"
_OUT = "serving_out"  # catalog alias of the snapshot being written


class PublishError(RuntimeError):
    pass


def _remove(path: Path) -> None:
    for p in (path, Path(str(path) + ".wal")):
        try:
            p.unlink()
        except FileNotFoundError:
            pass


def publish_serving(warehouse_path: Path, serving_path: Path) -> dict:
    """Copy every table and view of schema ``marts`` (views as tables) into a fresh
    ``serving_path`` and swap it in atomically.

    Returns ``{"tables": n, "rows": {table: count}, "path": str, "seconds": s}``.
    Raises ``PublishError`` when the warehouse has no marts (an empty snapshot would
    silently break every BI report); the old serving file is then kept.
    """
    started = time.perf_counter()
    warehouse_path = Path(warehouse_path).resolve()
    serving_path = Path(serving_path).resolve()
    if not warehouse_path.exists():
        raise PublishError(f"warehouse {warehouse_path} does not exist")
    serving_path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = serving_path.with_name(f"{serving_path.name}{SERVING_TEMP_INFIX}{os.getpid()}")
    _remove(tmp_path)  # leftover of a crashed publish by a process with the same pid

    rows: dict[str, int] = {}
    try:
        # Open the warehouse itself (read-only) so that views resolve against its catalog
        # name exactly as dbt created them; the snapshot is attached as a second catalog.
        con = duckdb.connect(str(warehouse_path), read_only=True)
        try:
            tables = [
                name
                for (name,) in con.execute(
                    """
                    select table_name
                    from information_schema.tables
                    where table_catalog = current_database() and table_schema = ?
                    order by table_name
                    """,
                    [SCHEMA],
                ).fetchall()
            ]
            if not tables:
                raise PublishError(f"warehouse {warehouse_path.name} has no tables or views in schema {SCHEMA}")
            con.execute(f"attach {quote_literal(str(tmp_path))} as {_OUT} (read_write)")
            con.execute(f"create schema {_OUT}.{SCHEMA}")
            for name in tables:
                con.execute(
                    f"create table {_OUT}.{SCHEMA}.{quote_ident(name)} as "
                    f"select * from {SCHEMA}.{quote_ident(name)}"
                )
                rows[name] = con.execute(
                    f"select count(*) from {_OUT}.{SCHEMA}.{quote_ident(name)}"
                ).fetchone()[0]
            con.execute(f"checkpoint {_OUT}")
            con.execute(f"detach {_OUT}")
        finally:
            con.close()
        # A WAL beside the target would be replayed onto the new file: never leave one.
        _remove(Path(str(serving_path) + ".wal"))
        os.replace(tmp_path, serving_path)
    except BaseException:
        _remove(tmp_path)
        raise
    return {
        "tables": len(rows),
        "rows": rows,
        "path": str(serving_path),
        "seconds": round(time.perf_counter() - started, 3),
    }
