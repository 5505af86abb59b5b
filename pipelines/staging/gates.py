"""The quality gates on the staging tables, run against the warehouse.

Reads only the columns each suite needs from DuckDB into pandas (GX over SQLAlchemy/DuckDB
is broken upstream) and validates them with ``pipelines.staging.quality``; the newest
``KEEP_RUNS`` validation results per suite are kept in ``<warehouse_dir>/gx``. People read the
results in the report's quality section and ``marts.fct_quality_checks`` (GX's Data Docs load
their styles and scripts from a CDN and are empty offline, so none are built). ISO country and
currency sets come from the dbt seeds.
"""
from __future__ import annotations

import datetime as dt
import gc
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa

from pipelines.config import Settings
from pipelines.warehouse import quote_ident
from pipelines.staging.quality import SUITES, QualityResult, make_context, prune_validation_results, required_columns

STAGING_SCHEMA = "staging"


def gx_dir(settings: Settings) -> Path:
    return settings.warehouse_dir / "gx"


KEEP_RUNS = 50  # stored GX validation results per suite


def run_quality_gates(settings: Settings, tables: list[str] | None = None, run_name: str | None = None,
                      ) -> dict[str, QualityResult]:
    """Validate every staging table with a suite; returns the results per table."""
    tables = list(tables or SUITES)
    # Timestamps may not lie in the future of the run: the upper bound is the later of today
    # and as_of_date (staging holds everything delivered; as_of_date only filters the marts).
    as_of = max(dt.date.fromisoformat(settings.vars["as_of_date"]), dt.date.today())
    context = make_context(gx_dir(settings))
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        countries = {r[0] for r in con.execute("SELECT DISTINCT country_code FROM seeds.country_aliases").fetchall()}
        currencies = {r[0] for r in con.execute("SELECT currency_code FROM seeds.currencies").fetchall()}
        results = {}
        for table in tables:
            frame = read_columns(con, table)
            results[table] = _validate(table, frame, as_of, countries, currencies, context, run_name)
            # the frame (5-7 GB of web events at 1M customers) must not outlive its table: GX's
            # objects hold it in reference cycles
            del frame
            gc.collect()
    finally:
        con.close()
    prune_validation_results(context, KEEP_RUNS)
    return results


# pandas' nullable dtype of each Arrow type that .df() gives one when the column has NULLs
_NULLABLE = {
    **{getattr(pa, f"{sign}int{bits}")(): pd.api.types.pandas_dtype(f"{'U' if sign else ''}Int{bits}")
       for sign in ("", "u") for bits in (8, 16, 32, 64)},
    pa.bool_(): pd.BooleanDtype(),
}


def read_columns(con: duckdb.DuckDBPyConnection, table: str) -> pd.DataFrame:
    """The columns ``table``'s suite needs, as pandas with the dtypes DuckDB's ``.df()`` gives
    (DECIMAL as float64, DATE as datetime64, integers and booleans with NULLs as pandas'
    nullable dtypes), fetched through Arrow: 3x faster than ``.df()`` on the web events (5M
    rows: 1.0 s instead of 3.1 s)."""
    types = dict(con.execute(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = ? AND table_name = ?",
        [STAGING_SCHEMA, table]).fetchall())
    select = []
    for column in required_columns(table):
        kind = types.get(column, "")
        cast = "DOUBLE" if kind.startswith("DECIMAL") else "TIMESTAMP" if kind == "DATE" else None
        select.append(f"{quote_ident(column)}::{cast} AS {quote_ident(column)}" if cast else quote_ident(column))
    arrow = con.execute(f"SELECT {', '.join(select)} FROM {STAGING_SCHEMA}.{quote_ident(table)}").fetch_arrow_table()
    frame = arrow.to_pandas()
    for name in arrow.column_names:
        column = arrow.column(name)
        if column.null_count and column.type in _NULLABLE:
            frame[name] = column.to_pandas(types_mapper=_NULLABLE.get)
    return frame


def _validate(table, frame, as_of, countries, currencies, context, run_name) -> QualityResult:
    from pipelines.staging.quality import validate_table

    return validate_table(table, frame, as_of_date=as_of, country_codes=countries,
                          currency_codes=currencies, context=context, run_name=run_name)
