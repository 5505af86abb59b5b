"""Cohort grids (CONTRACT section 6, Cohorts) in pipelines.lifecycle.cohorts: hand-computed on tiny inputs."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import polars as pl
import pytest

from pipelines.lifecycle.cohorts import cohort_grid

D = dt.date


def purchases(*rows) -> pl.LazyFrame:
    """rows: (customer_id, ordered_date, net_revenue[, channel])."""
    return pl.LazyFrame(
        [{"customer_id": r[0], "ordered_date": r[1], "net_revenue": r[2],
          "acquisition_channel": r[3] if len(r) > 3 else None} for r in rows],
        schema={"customer_id": pl.String, "ordered_date": pl.Date, "net_revenue": pl.Decimal(18, 4),
                "acquisition_channel": pl.String},
    )


def grid_rows(frame: pl.LazyFrame, *cols: str) -> list[tuple]:
    return frame.collect().select(*cols).rows()


def test_offsets_cross_a_year_boundary_and_zero_months_are_kept():
    p = purchases(
        ("a", D(2023, 12, 5), Decimal("10.00")), ("a", D(2024, 2, 1), Decimal("5.50")),
        ("a", D(2024, 2, 20), Decimal("4.50")),
        ("b", D(2023, 12, 31), Decimal("20.00")),
        ("c", D(2024, 1, 31), Decimal("7.25")), ("c", D(2024, 3, 1), Decimal("1.00")),
    )
    g = cohort_grid(p, D(2024, 3, 10))
    assert grid_rows(g, "cohort_month", "months_since_first_order", "cohort_size", "active_customers",
                     "orders", "net_revenue") == [
        (D(2023, 12, 1), 0, 2, 2, 2, 30.0),
        (D(2023, 12, 1), 1, 2, 0, 0, 0.0),   # January 2024: nobody bought; kept as zeros
        (D(2023, 12, 1), 2, 2, 1, 2, 10.0),  # February: a twice
        (D(2023, 12, 1), 3, 2, 0, 0, 0.0),   # March, the month of as_of_date
        (D(2024, 1, 1), 0, 1, 1, 1, 7.25),
        (D(2024, 1, 1), 1, 1, 0, 0, 0.0),
        (D(2024, 1, 1), 2, 1, 1, 1, 1.0),
    ]
    out = g.collect()
    assert out["retention_rate"].to_list() == [1.0, 0.0, 0.5, 0.0, 1.0, 0.0, 1.0]
    assert out["cumulative_net_revenue_per_customer"].to_list() == pytest.approx(
        [15.0, 15.0, 20.0, 20.0, 7.25, 7.25, 8.25])


def test_purchases_after_as_of_date_are_ignored():
    p = purchases(("a", D(2024, 1, 1), Decimal("1")), ("a", D(2024, 2, 2), Decimal("2")),
                  ("b", D(2024, 2, 2), Decimal("3")))
    g = cohort_grid(p, D(2024, 2, 1))
    assert grid_rows(g, "cohort_month", "months_since_first_order", "cohort_size", "orders") == [
        (D(2024, 1, 1), 0, 1, 1), (D(2024, 1, 1), 1, 1, 0)]


def test_missing_fx_revenue_counts_as_an_order_not_as_revenue():
    p = purchases(("a", D(2024, 1, 1), Decimal("2.0001")), ("a", D(2024, 1, 2), None))
    g = cohort_grid(p, D(2024, 1, 31)).collect()
    assert g.select("orders", "net_revenue", "active_customers").rows() == [(2, 2.0001, 1)]


def test_money_is_summed_exactly():
    p = purchases(*(("a", D(2024, 1, 1), Decimal("0.1000")) for _ in range(10)),
                  ("b", D(2024, 1, 2), Decimal("0.2000")))
    g = cohort_grid(p, D(2024, 1, 31)).collect()
    assert g["net_revenue"].to_list() == [1.2]
    assert g["cumulative_net_revenue_per_customer"].to_list() == [0.6]


def test_by_channel_splits_cohorts():
    p = purchases(("a", D(2024, 1, 1), Decimal("10"), "email"), ("b", D(2024, 1, 9), Decimal("30"), "direct"),
                  ("b", D(2024, 2, 9), Decimal("30"), "direct"), ("c", D(2024, 2, 1), Decimal("5"), "email"))
    g = cohort_grid(p, D(2024, 2, 15), by=["acquisition_channel"])
    assert grid_rows(g, "acquisition_channel", "cohort_month", "months_since_first_order", "cohort_size",
                     "active_customers", "net_revenue", "cumulative_net_revenue_per_customer") == [
        ("direct", D(2024, 1, 1), 0, 1, 1, 30.0, 30.0),
        ("direct", D(2024, 1, 1), 1, 1, 1, 30.0, 60.0),
        ("email", D(2024, 1, 1), 0, 1, 1, 10.0, 10.0),
        ("email", D(2024, 1, 1), 1, 1, 0, 0.0, 10.0),
        ("email", D(2024, 2, 1), 0, 1, 1, 5.0, 5.0),
    ]


def test_empty_input_gives_an_empty_grid():
    g = cohort_grid(purchases(), D(2024, 1, 1)).collect()
    assert g.height == 0 and "retention_rate" in g.columns


def test_a_hash_collision_falls_back_to_the_exact_keys(monkeypatch):
    from pipelines.lifecycle import cohorts

    p = purchases(("a", D(2024, 1, 1), Decimal("10"), "email"), ("b", D(2024, 1, 9), Decimal("30"), "direct"),
                  ("b", D(2024, 2, 9), Decimal("30"), "direct"), ("c", D(2024, 2, 1), Decimal("5"), "email"))
    expected = cohort_grid(p, D(2024, 2, 15), by=["acquisition_channel"]).collect()
    real = cohorts._person_hash
    # every person collides in the first hash; the second one tells them apart
    monkeypatch.setattr(cohorts, "_person_hash", lambda which=0: pl.lit(7, pl.UInt64) if which == 0 else real(1))
    assert cohort_grid(p, D(2024, 2, 15), by=["acquisition_channel"]).collect().equals(expected)
