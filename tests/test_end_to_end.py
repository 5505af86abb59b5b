"""One end-to-end `clm run` on a tiny generated landing set, checking real counts."""
from __future__ import annotations

import duckdb
import pytest

from orchestration.cli import main
from tools.demo.generate import generate
from pipelines.contract import SOURCES
from tests.pipeline import query as counts


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    landing, warehouse = root / "landing", root / "warehouse"
    summary = generate(landing, customers=120, seed=7)
    mp = pytest.MonkeyPatch()
    mp.setenv("CLM_LANDING_DIR", str(landing))
    mp.setenv("CLM_WAREHOUSE_DIR", str(warehouse))
    mp.setenv("CLM_VARS", '{"as_of_date": "2025-12-31"}')
    code = main(["run"])
    yield {"root": root, "landing": landing, "warehouse": warehouse, "summary": summary, "code": code, "mp": mp}
    mp.undo()


def test_run_succeeds_and_every_row_lands_in_exactly_one_place(first_run):
    assert first_run["code"] == 0
    db = first_run["warehouse"] / "clm.duckdb"
    for source in SOURCES:
        loaded = counts(db, f"SELECT count(*) FROM raw.{source}")[0][0]
        rejected = counts(db, f"SELECT count(*) FROM raw.rejected_rows WHERE source = '{source}'")[0][0]
        assert loaded + rejected == first_run["summary"][source], source
        assert rejected <= 0.05 * (loaded + rejected), source
    # The generator writes a few malformed rows: they are quarantined, with line numbers.
    assert counts(db, "SELECT count(*), count(line_number) FROM raw.rejected_rows")[0][0] > 0
    assert counts(db, "SELECT count(*) FROM raw.rejected_rows WHERE line_number IS NULL")[0][0] == 0


def test_redelivered_file_is_skipped_and_staging_matches_raw(first_run):
    db = first_run["warehouse"] / "clm.duckdb"
    files = [f for f in first_run["summary"]["files"] if not f.startswith("_truth")]
    manifest = {r[0] for r in counts(db, "SELECT file_name FROM raw._manifest")}
    resent = [f for f in files if "resend" in f]
    assert len(resent) == 1 and resent[0] not in manifest
    assert manifest == set(files) - set(resent)
    # staging keeps the latest version per business key
    assert counts(db, "SELECT count(*) FROM staging.stg_orders__orders") == counts(
        db, "SELECT count(DISTINCT trim(order_id)) FROM raw.orders")


def test_identity_resolution_against_the_generators_truth(first_run):
    import polars as pl

    from pipelines.identity.graph import pairwise_f1

    db = first_run["warehouse"] / "clm.duckdb"
    con = duckdb.connect(str(db), read_only=True)
    predicted = con.execute("SELECT source, source_key, customer_id FROM marts.customer_identities").pl()
    con.close()
    truth = pl.read_parquet(first_run["landing"] / "_truth" / "identities.parquet")
    assert pairwise_f1(predicted, truth)["f1"] >= 0.995
    # every record of every source is assigned exactly once, and every person is in dim_customers
    assert counts(db, "SELECT count(*) - count(DISTINCT (source, source_key)) FROM marts.customer_identities") == [(0,)]
    assert counts(db, "SELECT count(DISTINCT customer_id) FROM marts.customer_identities") == counts(
        db, "SELECT count(*) FROM marts.dim_customers")


def test_serving_snapshot_holds_marts_only(first_run):
    serving = first_run["warehouse"] / "serving.duckdb"
    schemas = {r[0] for r in counts(serving, "SELECT DISTINCT table_schema FROM information_schema.tables")}
    assert schemas == {"marts"}
    db = first_run["warehouse"] / "clm.duckdb"
    assert counts(serving, "SELECT count(*), sum(rows_loaded) FROM marts.fct_source_loads") == counts(
        db, "SELECT count(*), sum(rows_loaded) FROM raw._manifest")


def test_second_run_loads_nothing_new_and_a_bad_file_fails_the_run(first_run, capsys):
    db = first_run["warehouse"] / "clm.duckdb"
    before = counts(db, "SELECT (SELECT count(*) FROM raw.orders), (SELECT count(*) FROM raw._manifest)")
    ids_before = counts(db, "SELECT source, source_key, customer_id FROM marts.customer_identities ORDER BY 1, 2")
    assert main(["run"]) == 0
    assert counts(db, "SELECT (SELECT count(*) FROM raw.orders), (SELECT count(*) FROM raw._manifest)") == before
    assert counts(db, "SELECT source, source_key, customer_id FROM marts.customer_identities ORDER BY 1, 2") == ids_before
    bad = first_run["landing"] / "orders" / "zz_broken_export.csv"
    bad.write_text("order_id,total_amount\nX1,5\n")
    try:
        capsys.readouterr()
        assert main(["run"]) == 1
        err = capsys.readouterr().err
        assert "orders/zz_broken_export.csv: missing required column 'ordered_at'" in err
        assert err.count("\n") == 1  # one line
        assert counts(db, "SELECT (SELECT count(*) FROM raw.orders), (SELECT count(*) FROM raw._manifest)") == before
    finally:
        bad.unlink()


def test_customer_ids_stay_stable_when_data_is_added(first_run):
    db = first_run["warehouse"] / "clm.duckdb"
    ids_before = dict(((r[0], r[1]), r[2]) for r in counts(
        db, "SELECT source, source_key, customer_id FROM marts.customer_identities"))
    email, person = counts(db, """
        SELECT o.email, i.customer_id FROM staging.stg_orders__orders o
        JOIN marts.customer_identities i ON i.source = 'orders' AND i.source_key = o.order_id
        WHERE o.email IS NOT NULL ORDER BY o.order_id LIMIT 1""")[0]
    extra = first_run["landing"] / "orders" / "zz_new_orders.csv"
    extra.write_text(
        "order_id,ordered_at,total_amount,email,status\n"
        f"NEW-1,2025-06-01T10:00:00Z,50,{email.upper()},completed\n"
        "NEW-2,2025-06-02T10:00:00Z,20,brand.new.person@example.com,completed\n")
    try:
        assert main(["run"]) == 0
        after = dict(((r[0], r[1]), r[2]) for r in counts(
            db, "SELECT source, source_key, customer_id FROM marts.customer_identities"))
        assert {k: after[k] for k in ids_before} == ids_before  # nobody's id changed
        assert after[("orders", "NEW-1")] == person              # joins the existing person
        assert after[("orders", "NEW-2")] not in set(ids_before.values())  # a new person
        assert counts(db, "SELECT orders_count >= 1 FROM marts.dim_customers "
                          f"WHERE customer_id = '{after[('orders', 'NEW-2')]}'") == [(True,)]
    finally:
        extra.unlink()


def test_failed_quality_gate_blocks_marts_and_keeps_the_old_snapshot(first_run, capsys):
    serving = first_run["warehouse"] / "serving.duckdb"
    snapshot_before = serving.stat().st_mtime_ns
    bad = first_run["landing"] / "orders" / "zz_negative.csv"
    bad.write_text("order_id,ordered_at,total_amount\nNEG-1,2025-06-01T10:00:00Z,-50\n")
    try:
        capsys.readouterr()
        assert main(["run"]) == 1
        err = capsys.readouterr().err
        assert "staging/stg_orders__orders:great_expectations" in err
        assert "total_amount" in err
        assert serving.stat().st_mtime_ns == snapshot_before  # not republished
        db = first_run["warehouse"] / "clm.duckdb"
        assert counts(db, "SELECT count(*) FROM marts.fct_orders WHERE order_id = 'NEG-1'") == [(0,)]
    finally:
        bad.unlink()


def test_lifecycle_marts_are_consistent_with_each_other(first_run):
    db = first_run["warehouse"] / "serving.duckdb"
    # every stage of CONTRACT section 5 occurs (the generator scripts one person per stage)
    stages = {r[0] for r in counts(db, "SELECT DISTINCT lifecycle_stage FROM marts.dim_customers")}
    assert stages >= {"churned", "at_risk", "reactivated", "advocate", "loyal", "repeat_buyer", "first_time_buyer",
                      "trial", "opportunity", "lead", "visitor"}
    # the current spell is dim_customers' stage
    assert counts(db, """SELECT count(*) FROM marts.dim_customers d JOIN marts.customer_stage_history h
                         USING (customer_id) WHERE h.valid_to IS NULL AND h.lifecycle_stage <> d.lifecycle_stage""") == [(0,)]
    # purchases add up the same in orders, KPIs and cohorts
    purchases = counts(db, "SELECT count(*), sum(net_revenue) FROM marts.fct_orders WHERE is_purchase")[0]
    assert counts(db, "SELECT sum(orders), sum(net_revenue) FROM marts.kpi_monthly")[0] == purchases
    assert counts(db, "SELECT sum(orders), sum(net_revenue) FROM marts.cohort_retention")[0] == purchases
    assert counts(db, "SELECT sum(orders) FROM marts.cohort_retention_by_channel")[0][0] == purchases[0]
    buyers = counts(db, "SELECT count(*) FROM marts.dim_customers WHERE orders_count > 0")[0][0]
    assert counts(db, "SELECT sum(new_customers) FROM marts.kpi_monthly")[0][0] == buyers
    assert counts(db, "SELECT sum(cohort_size) FROM marts.cohort_retention WHERE months_since_first_order = 0"
                  )[0][0] == buyers
    assert counts(db, "SELECT sum(new_customers) FROM marts.kpi_channels")[0][0] == buyers
    # transitions count every person of the grid once per month
    assert counts(db, "SELECT month, sum(customers) FROM marts.stage_transitions_monthly GROUP BY 1 ORDER BY 1") == \
        counts(db, "SELECT month, count(*) FROM marts.customer_stages_monthly GROUP BY 1 ORDER BY 1")
    # RFM and CLV for every buyer, none for the others
    assert counts(db, """SELECT count(rfm_segment), count(p_alive), count(predicted_clv_365d)
                         FROM marts.dim_customers WHERE orders_count > 0""")[0] == (buyers, buyers, buyers)
    assert counts(db, "SELECT count(rfm_segment) + count(p_alive) FROM marts.dim_customers WHERE orders_count = 0"
                  ) == [(0,)]
    assert counts(db, "SELECT count(*) FROM marts.clv_model_params WHERE parameter = 'converged' AND value = 1"
                  ) == [(2,)]
