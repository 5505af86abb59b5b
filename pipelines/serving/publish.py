"""Publish the ``marts`` schema of the warehouse as ``serving.duckdb`` for BI tools (CONTRACT
sections 3 and 9).

The snapshot is written to a new temporary file beside the serving file and moved into
place with ``os.replace``, an atomic rename: a BI tool that has the old file open (read-only
or, by default, read-write: its lock is on the old file) keeps reading the old snapshot, the
next connection sees the new one, and nobody ever sees a half-written file. On failure the
temporary file is removed and the old snapshot is left untouched.

Beside the marts the snapshot holds ``marts.warehouse_info`` (one row: the ``as_of_date`` the
numbers describe, the vars as JSON, when and by which run it was published, the project's
version and every mart's row count as JSON), a comment on every table and column (the
descriptions of the dbt docs), and Parquet copies of every table in ``serving/parquet/``
(a symlink swapped atomically to a new folder of files, so a reader never sees a mix).
Columns are types every BI driver reads: no lists, structs or 128-bit integers.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import time
from pathlib import Path

import duckdb

from pipelines.warehouse import SERVING_TEMP_INFIX, quote_ident, quote_literal

SCHEMA = "marts"
INFO_TABLE = "warehouse_info"
PARQUET_LINK = "parquet"  # <warehouse>/serving/parquet -> parquet.<stamp>/
_OUT = "serving_out"  # catalog alias of the snapshot being written
# types some BI drivers cannot read, and what they become
_PORTABLE = {"HUGEINT": "BIGINT", "UHUGEINT": "BIGINT"}


class PublishError(RuntimeError):
    pass


def _remove(path: Path) -> None:
    for p in (path, Path(str(path) + ".wal")):
        try:
            p.unlink()
        except FileNotFoundError:
            pass


def _portable(name: str, data_type: str) -> str:
    """The select expression that gives column ``name`` a type every BI driver reads."""
    column = quote_ident(name)
    if data_type in _PORTABLE:
        return f"cast({column} as {_PORTABLE[data_type]}) as {column}"
    if data_type.endswith("[]") or data_type.startswith(("STRUCT", "MAP", "UNION")):
        return f"cast(to_json({column}) as varchar) as {column}"
    return column


def publish_serving(warehouse_path: Path, serving_path: Path, info: dict | None = None,
                    descriptions: dict | None = None) -> dict:
    """Copy every table and view of schema ``marts`` (views as tables) into a fresh
    ``serving_path`` with ``warehouse_info`` and the comments, swap it in atomically, and
    write the Parquet copies beside it.

    ``info``: ``as_of_date``, ``vars`` (dict), ``run_id``, ``project_version``.
    ``descriptions``: table -> {"description": text, "columns": {column: text}}.
    Returns ``{"tables": n, "rows": {table: count}, "path": str, "parquet": str, "seconds": s}``.
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
    descriptions = descriptions or {}
    rows: dict[str, int] = {}
    try:
        # Open the warehouse itself (read-only) so that views resolve against its catalog
        # name exactly as dbt created them; the snapshot is attached as a second catalog.
        con = duckdb.connect(str(warehouse_path), read_only=True)
        try:
            tables = [name for (name,) in con.execute(
                "select table_name from information_schema.tables "
                "where table_catalog = current_database() and table_schema = ? order by table_name",
                [SCHEMA]).fetchall()]
            if not tables:
                raise PublishError(f"warehouse {warehouse_path.name} has no tables or views in schema {SCHEMA}")
            con.execute(f"attach {quote_literal(str(tmp_path))} as {_OUT} (read_write)")
            con.execute(f"create schema {_OUT}.{SCHEMA}")
            for name in tables:
                columns = con.execute(
                    "select column_name, data_type from information_schema.columns "
                    "where table_catalog = current_database() and table_schema = ? and table_name = ? "
                    "order by ordinal_position", [SCHEMA, name]).fetchall()
                select = ", ".join(_portable(c, t) for c, t in columns)
                target = f"{_OUT}.{SCHEMA}.{quote_ident(name)}"
                con.execute(f"create table {target} as select {select} from {SCHEMA}.{quote_ident(name)}")
                rows[name] = con.execute(f"select count(*) from {target}").fetchone()[0]
            if info is not None:
                _write_info(con, info, rows)
                descriptions = {**descriptions, INFO_TABLE: INFO_DESCRIPTION}
            _comment(con, descriptions)
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
    parquet = write_parquet_copies(serving_path)
    return {
        "tables": len(rows) + (1 if info is not None else 0),
        "rows": rows,
        "path": str(serving_path),
        "parquet": str(parquet),
        "seconds": round(time.perf_counter() - started, 3),
    }


INFO_DESCRIPTION = {
    "description": ("Grain: one row: which day the numbers of this snapshot describe, with which rules, "
                    "published when and by which run."),
    "columns": {
        "as_of_date": "The day every mart is evaluated as of (later events are ignored).",
        "vars": "The effective business-rule vars of the run, as JSON.",
        "published_at": "When this snapshot was published (UTC).",
        "run_id": "The Dagster run that published it.",
        "project_version": "The version of the customer-lifecycle-warehouse project.",
        "mart_rows": "Rows per mart in this snapshot, as JSON ({mart: rows}).",
    },
}


def _write_info(con, info: dict, rows: dict[str, int]) -> None:
    published = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)
    values = [
        f"cast({quote_literal(str(info['as_of_date']))} as date)",
        quote_literal(json.dumps(info.get("vars", {}), sort_keys=True)),
        f"cast({quote_literal(published.isoformat(sep=' '))} as timestamp)",
        quote_literal(str(info.get("run_id", ""))),
        quote_literal(str(info.get("project_version", ""))),
        quote_literal(json.dumps(rows, sort_keys=True)),
    ]
    con.execute(f"""create table {_OUT}.{SCHEMA}.{INFO_TABLE} as select {values[0]} as as_of_date,
                    {values[1]} as vars, {values[2]} as published_at, {values[3]} as run_id,
                    {values[4]} as project_version, {values[5]} as mart_rows""")


def _comment(con, descriptions: dict) -> None:
    for table, doc in descriptions.items():
        target = f"{_OUT}.{SCHEMA}.{quote_ident(table)}"
        exists = con.execute(
            f"select count(*) from duckdb_tables() where database_name = '{_OUT}' and schema_name = ? "
            "and table_name = ?", [SCHEMA, table]).fetchone()[0]
        if not exists:
            continue
        if doc.get("description"):
            con.execute(f"comment on table {target} is {quote_literal(' '.join(doc['description'].split()))}")
        for column, text in (doc.get("columns") or {}).items():
            if text:
                con.execute(f"comment on column {target}.{quote_ident(column)} is "
                            f"{quote_literal(' '.join(text.split()))}")


def write_parquet_copies(serving_path: Path) -> Path:
    """Every table of the snapshot as ``<table>.parquet`` in a new folder, then the link
    ``serving/parquet`` swapped to it atomically and older folders removed. Returns the link."""
    root = Path(serving_path).parent / "serving"
    root.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%f")
    folder = root / f"{PARQUET_LINK}.{stamp}"
    folder.mkdir()
    con = duckdb.connect(str(serving_path), read_only=True)
    try:
        for (table,) in con.execute(
                "select table_name from information_schema.tables where table_schema = ? order by 1",
                [SCHEMA]).fetchall():
            con.execute(f"copy {SCHEMA}.{quote_ident(table)} to "
                        f"{quote_literal(str(folder / (table + '.parquet')))} (format parquet)")
    finally:
        con.close()
    link = root / PARQUET_LINK
    tmp_link = root / f".{PARQUET_LINK}.link-{os.getpid()}"
    tmp_link.unlink(missing_ok=True)
    tmp_link.symlink_to(folder.name)
    if link.exists() and not link.is_symlink():  # a folder of an older version
        shutil.rmtree(link)
    os.replace(tmp_link, link)
    for old in root.glob(f"{PARQUET_LINK}.*"):
        if old.is_dir() and old.name != folder.name:
            shutil.rmtree(old, ignore_errors=True)
    return link
