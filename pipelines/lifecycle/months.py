"""Calendar months as integers (year * 12 + month - 1), shared by the Polars cohort and
stage computations: month arithmetic without date parsing or calendar lookups."""
from __future__ import annotations

import datetime as dt

import polars as pl

MONTH_DTYPE = pl.Int32


def month_index(expr: pl.Expr) -> pl.Expr:
    """The month of a Date expression as year * 12 + month - 1."""
    return expr.dt.year().cast(MONTH_DTYPE) * 12 + expr.dt.month().cast(MONTH_DTYPE) - 1


def month_start(index: pl.Expr) -> pl.Expr:
    """The first day of a month index, as a Date."""
    return pl.date(index // 12, index % 12 + 1, 1)


def month_of(day: dt.date) -> int:
    return day.year * 12 + day.month - 1
