"""Great Expectations quality gates on the staging tables (pipelines/quality.py).

GX takes seconds to import and to set up, so one context is shared by the module.
"""
from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.staging import quality
from pipelines.staging.quality import SUITES, required_columns, validate_table

AS_OF = dt.date(2025, 12, 31)
COUNTRIES = {"DE", "AT", "US", "GB", "FR"}
CURRENCIES = {"EUR", "USD", "GBP", "CHF"}
BAD_EMAIL = "jane.secret@@example.com"
BAD_EMAIL_2 = "no-at-sign.example.com"
BAD_PHONE = "0176 5550199"


def ts(*values: str | None) -> pd.Series:
    """Naive UTC timestamps with the dtype DuckDB hands to pandas (microseconds)."""
    return pd.Series(pd.to_datetime(list(values), format="ISO8601")).astype("datetime64[us]")


def s(*values) -> pd.Series:
    return pd.Series(list(values), dtype="str")


def clean_frames() -> dict[str, pd.DataFrame]:
    times = ts("2024-01-01 10:00", "2024-02-01 11:00", "2024-03-01 12:00", "2025-12-31 23:00",
               "2026-01-01 12:00")  # the day after as_of_date is still allowed
    emails = s("ann@example.com", "bob.b+tag@mail.example.de", None, "c_d@sub.example.co.uk",
               "dora@xn--mller-kva.de")
    return {
        "stg_crm_contacts__contacts": pd.DataFrame({
            "contact_id": s("c1", "c2", "c3", "c4", "c5"),
            "created_at": times,
            "updated_at": times,
            "email": emails,
            "phone": s("+4917612345678", None, "+14155550100", "+441632960961", "+4312345678"),
            "country": s("DE", "US", None, "GB", "AT"),
            "referred_by_email": s(None, "ann@example.com", None, None, None),
            "lead_score": pd.array([0, 55, None, 100, 12], dtype="Int32"),
            "marketing_consent": pd.array([True, False, None, True, False], dtype="boolean"),
        }),
        "stg_crm_deals__deals": pd.DataFrame({
            "deal_id": s("d1", "d2", "d3"),
            "contact_id": s("c1", "c1", "c2"),
            "created_at": ts("2024-01-01", "2024-02-01", "2024-03-01"),
            "closed_at": ts("2024-01-10", None, "2024-03-05"),
            "deal_stage": s("won", "open", "lost"),
            "currency": s("EUR", "USD", None),
            "amount": pd.Series([Decimal("1200.50"), Decimal("0"), None], dtype=object),
        }),
        "stg_web_events__events": pd.DataFrame({
            "event_id": s("e1", "e2", "e3", "e4"),
            "event_at": ts("2024-01-01 10:00", "2024-01-01 10:01", "2024-01-02 08:00",
                           "2025-06-01 00:00"),
            "anonymous_id": s("a1", "a1", "a2", "a3"),
            "email": s(None, "ann@example.com", None, None),
            "country": s("DE", "DE", None, "FR"),
        }),
        "stg_orders__orders": pd.DataFrame({
            "order_id": s("o1", "o2", "o3", "o4", "o5"),
            "ordered_at": times,
            "email": emails,
            "phone": s("+4917612345678", None, None, "+441632960961", None),
            "country": s("DE", "DE", None, "GB", "AT"),
            "currency": s("EUR", "EUR", "USD", "GBP", "EUR"),
            "status": s("completed", "pending", "cancelled", "refunded", "partially_refunded"),
            "total_amount": [10.0, 20.0, 0.0, 15.5, 99.99],
            "discount_amount": [0.0, 2.0, 0.0, None, 9.99],
            "refunded_amount": [0.0, 0.0, 0.0, 15.5, 10.0],
        }),
        "stg_marketing_spend__spends": pd.DataFrame({
            "spend_date": ts("2024-01-01", "2024-01-01", "2024-01-01", "2024-01-02"),
            "channel": s("google", "google", "meta", "google"),
            "campaign": s("brand", "generic", None, "brand"),
            "currency": s("EUR", "EUR", "USD", "EUR"),
            "spend": [100.0, 0.0, 12.5, 80.0],
        }),
        "stg_surveys__responses": pd.DataFrame({
            "response_id": s("r1", "r2", "r3", "r4", "r5", "r6"),
            "responded_at": ts(*["2024-05-01"] * 6),
            "survey_type": s("nps", "nps", "ces", "ces", "csat", "csat"),
            "score": pd.array([0, 10, 1, 7, 1, 5], dtype="Int32"),
            "email": s("ann@example.com", None, None, None, None, "bob@example.org"),
        }),
        "stg_fx_rates__rates": pd.DataFrame({
            "rate_date": ts("2024-01-01", "2024-01-01", "2024-01-02"),
            "currency": s("EUR", "USD", "USD"),
            "rate_to_reporting": [1.0, 0.91, 0.92],
        }),
    }


@pytest.fixture(scope="module")
def gx_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("gx")


@pytest.fixture(scope="module")
def context(gx_dir):
    return quality.make_context(gx_dir)


def run(table: str, df: pd.DataFrame, context, **kwargs) -> quality.QualityResult:
    kwargs.setdefault("as_of_date", AS_OF)
    return validate_table(table, df, country_codes=COUNTRIES, currency_codes=CURRENCIES,
                          context=context, **kwargs)


def by_check(result: quality.QualityResult) -> dict[str, dict]:
    return {r["check"]: r for r in result.results}


def failures(result: quality.QualityResult) -> dict[str, int]:
    return {r["check"]: r["unexpected_count"] for r in result.results if not r["success"]}


def test_suites_cover_every_staging_table():
    assert set(SUITES) == set(clean_frames())
    assert required_columns("staging.stg_orders__orders") == required_columns("stg_orders__orders")
    assert required_columns("stg_marketing_spend__spends") == [
        "spend_date", "channel", "campaign", "currency", "spend"]
    for table, frame in clean_frames().items():
        assert set(required_columns(table)) == set(frame.columns), table
    with pytest.raises(KeyError, match="no quality suite"):
        required_columns("stg_nope")


def test_importing_the_module_does_not_import_great_expectations():
    code = "import sys, pipelines.staging.quality; assert 'great_expectations' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parent.parent)


@pytest.mark.parametrize("table", sorted(SUITES))
def test_clean_frame_passes(table, context):
    df = clean_frames()[table]
    result = run(table, df, context)
    assert result.success, failures(result)
    assert result.rows == len(df)
    assert result.seconds > 0
    assert len(result.results) == len(SUITES[table].checks)
    assert all(r["unexpected_count"] == 0 for r in result.results)
    assert all("error" not in r for r in result.results)


def test_each_failure_mode_is_counted_exactly(context):
    df = clean_frames()["stg_orders__orders"]
    df["email"] = s("ann@example.com", BAD_EMAIL, None, BAD_EMAIL_2, "ok@example.org")
    df["phone"] = s("+4917612345678", BAD_PHONE, None, None, None)
    df["country"] = s("DE", "XX", None, "GB", "AT")
    df["currency"] = s("EUR", "EUROS", "USD", "GBP", "EUR")
    df["order_id"] = s("o1", "o2", "o2", None, "o5")
    df["ordered_at"] = ts("1970-01-01", "2024-01-01", "2026-01-02 00:00", "2025-12-31", None)
    df["total_amount"] = [10.0, -0.01, 0.0, 15.5, 99.99]
    df["status"] = s("completed", "shipped", "pending", "refunded", "completed")
    result = run("stg_orders__orders", df, context)
    assert not result.success
    assert failures(result) == {
        "order_id not null": 1,
        "order_id unique": 2,  # GX counts every row of a duplicated key
        "ordered_at in range": 2,  # 1970 and two days after as_of_date
        "email e-mail shape": 2,  # 2 of the 4 non-null e-mails (nulls are allowed)
        "phone E.164": 1,
        "country ISO 3166-1 alpha-2": 1,
        "currency ISO 4217": 1,
        "status in set": 1,
        "total_amount >= 0": 1,
    }
    email = by_check(result)["email e-mail shape"]
    assert email["element_count"] == 5 and email["unexpected_percent"] == 50.0
    assert email["columns"] == ["email"]
    assert email["expectation"] == "expect_column_values_to_match_regex"


@pytest.mark.parametrize(
    "value, ok",
    [("a@b.co", True), ("first.last+tag@sub.example.com", True), ("müller@bücher.de", True),
     ("a@b", False), ("a@@b.com", False), ("a b@c.com", False), ("a@b..com", False),
     ("@b.com", False), ("a@.com", False), ("a@b.com.", False), ("John <j@x.com>", False),
     ("a,b@c.com", False)],
)
def test_email_regex(value, ok):
    assert bool(pd.Series([value], dtype="str").str.contains(quality.EMAIL_REGEX).iloc[0]) is ok


@pytest.mark.parametrize(
    "value, ok",
    [("+4917612345678", True), ("+1234567", True), ("+123456789012345", True),
     ("+123456", False), ("+1234567890123456", False), ("+0123456789", False),
     ("004917612345678", False), ("+49 176 1234567", False), ("+49-176", False)],
)
def test_phone_regex(value, ok):
    assert bool(pd.Series([value], dtype="str").str.contains(quality.PHONE_REGEX).iloc[0]) is ok


def test_score_ranges_depend_on_survey_type(context):
    df = clean_frames()["stg_surveys__responses"]
    df["score"] = pd.array([11, 10, 0, 8, 5, 6], dtype="Int32")
    df["response_id"] = s("r1", "r2", None, "r4", "r5", "r6")
    result = run("stg_surveys__responses", df, context)
    assert failures(result) == {
        "response_id not null": 1,
        "score nps 0-10": 1,
        "score ces 1-7": 2,
        "score csat 1-5": 1,
    }
    assert by_check(result)["score ces 1-7"]["condition"] == "survey_type == 'ces'"
    df["survey_type"] = s("nps", "nps", "ces", "ces", "csat", "promoter")
    assert failures(run("stg_surveys__responses", df, context))["survey_type in set"] == 1


def test_compound_keys_and_other_tables(context):
    spend = clean_frames()["stg_marketing_spend__spends"]
    spend.loc[3] = [pd.Timestamp("2024-01-01"), "meta", None, "EUR", -5.0]  # same day/channel/no campaign
    assert failures(run("stg_marketing_spend__spends", spend, context)) == {
        "spend_date+channel+campaign unique": 2, "spend >= 0": 1}

    fx = clean_frames()["stg_fx_rates__rates"]
    fx["rate_date"] = ts("2024-01-01", "2024-01-02", "2024-01-02")
    fx["rate_to_reporting"] = [0.0, 0.91, 0.92]
    fx["currency"] = s("EUR", "USD", "USD")
    assert failures(run("stg_fx_rates__rates", fx, context)) == {
        "rate_date+currency unique": 2, "rate_to_reporting > 0": 1}

    contacts = clean_frames()["stg_crm_contacts__contacts"]
    contacts["lead_score"] = pd.array([101, -1, None, 50, 100], dtype="Int32")
    contacts["referred_by_email"] = s(None, BAD_EMAIL, None, None, None)
    contacts["updated_at"] = ts("1989-12-31 23:59", None, None, None, None)  # one minute too early
    assert failures(run("stg_crm_contacts__contacts", contacts, context)) == {
        "lead_score 0-100": 2, "referred_by_email e-mail shape": 1, "updated_at in range": 1}

    deals = clean_frames()["stg_crm_deals__deals"]
    deals["deal_stage"] = s("won", "closed", "lost")
    deals["amount"] = pd.Series([Decimal("-1"), Decimal("0"), None], dtype=object)
    deals["contact_id"] = s("c1", None, "c2")
    assert failures(run("stg_crm_deals__deals", deals, context)) == {
        "contact_id not null": 1, "deal_stage in set": 1, "amount >= 0": 1}

    events = clean_frames()["stg_web_events__events"]
    events["event_id"] = s("e1", "e1", "e3", "e4")
    events["country"] = s("DE", "Germany", None, "XX")
    assert failures(run("stg_web_events__events", events, context)) == {
        "event_id unique": 2, "country ISO 3166-1 alpha-2": 2}


def test_timestamps_of_any_unit_and_zone_and_out_of_nanosecond_range(context):
    df = clean_frames()["stg_web_events__events"]
    far = np.array(["1500-01-01", "2024-01-01", "3000-01-01", "NaT"], dtype="datetime64[us]")
    df["event_at"] = far
    assert failures(run("stg_web_events__events", df, context)) == {"event_at in range": 2}
    df["event_at"] = pd.to_datetime(["2024-01-01T10:00:00+02:00"] * 4, utc=True)
    assert run("stg_web_events__events", df, context).success
    # Only the latest bound follows as_of_date; an as_of_date before the earliest
    # bound flags every timestamp instead of crashing GX (min > max).
    early = run("stg_web_events__events", df, context, as_of_date=dt.date(1998, 6, 30))
    assert failures(early) == {"event_at in range": 4}
    backtest = run("stg_web_events__events", df, context, as_of_date=dt.date(1998, 6, 30),
                   earliest_date=dt.date(1990, 1, 1))
    assert failures(backtest) == {"event_at in range": 4}


def test_value_sets_come_from_the_caller(context):
    df = clean_frames()["stg_orders__orders"]
    result = validate_table("stg_orders__orders", df, as_of_date=AS_OF, country_codes={"DE"},
                            currency_codes={"EUR", "USD", "GBP"}, context=context)
    assert failures(result) == {"country ISO 3166-1 alpha-2": 2}  # GB and AT


def test_extra_columns_are_ignored_and_missing_ones_named(context):
    df = clean_frames()["stg_fx_rates__rates"].assign(note=s("x", "y", "z"))
    assert run("stg_fx_rates__rates", df, context).success
    with pytest.raises(ValueError, match="rate_to_reporting"):
        run("stg_fx_rates__rates", df.drop(columns="rate_to_reporting"), context)


def test_uncheckable_column_fails_with_the_error_class_only(context):
    df = clean_frames()["stg_fx_rates__rates"]
    df["rate_to_reporting"] = s("one", "0.91", BAD_EMAIL)
    result = run("stg_fx_rates__rates", df, context)
    check = by_check(result)["rate_to_reporting > 0"]
    assert not result.success and not check["success"]
    assert check["error"] == "TypeError" and check["unexpected_count"] is None
    assert "error: rate_to_reporting > 0" in result.metadata()
    assert BAD_EMAIL not in json.dumps(result.results)


def test_results_and_metadata_never_hold_values(context, gx_dir):
    df = clean_frames()["stg_orders__orders"]
    df["email"] = s(BAD_EMAIL, BAD_EMAIL_2, None, "ann@example.com", "bob@example.com")
    df["phone"] = s(BAD_PHONE, None, None, None, None)
    result = run("stg_orders__orders", df, context, run_name="test-run")
    meta = result.metadata()
    assert meta["rows"] == 5 and meta["failed_expectations"] == 2
    assert meta["unexpected: email e-mail shape"] == 2
    assert meta["unexpected: phone E.164"] == 1
    assert meta["failed_checks"] == "email e-mail shape, phone E.164"
    text = json.dumps({"results": result.results, "metadata": meta})
    for value in (BAD_EMAIL, BAD_EMAIL_2, BAD_PHONE, "jane.secret"):
        assert value not in text
    assert all(isinstance(v, (int, float, str, type(None))) for v in meta.values())
    # nor do the validation results GX stored
    stored = list((gx_dir / "validations").rglob("*.json"))
    assert stored
    for path in stored:
        body = path.read_text()
        assert "jane.secret" not in body and BAD_PHONE not in body
        assert '"partial_unexpected_list": []' in body or "partial_unexpected_list" not in body


def test_old_results_are_pruned(tmp_path):
    ctx = quality.make_context(tmp_path / "gx")
    assert quality.make_context(tmp_path / "gx") is ctx
    df = clean_frames()["stg_fx_rates__rates"]
    for _ in range(3):
        run("stg_fx_rates__rates", df, ctx)
    runs = lambda: list((tmp_path / "gx" / "validations" / "stg_fx_rates__rates").glob("*/*"))
    assert len(runs()) == 3
    assert quality.prune_validation_results(ctx, keep_runs=2) == 1
    assert len(runs()) == 2


def test_default_context_is_in_memory_and_reused():
    df = clean_frames()["stg_fx_rates__rates"]
    first = validate_table("stg_fx_rates__rates", df, as_of_date=AS_OF, country_codes=COUNTRIES,
                           currency_codes=CURRENCIES)
    assert first.success
    assert quality.make_context(None) is quality.make_context()


def test_throughput_is_reported(context):
    result = validate_table("stg_orders__orders", quality.synthetic_orders(200_000),
                            as_of_date=AS_OF, country_codes=COUNTRIES | {"CH", "NL"},
                            currency_codes=CURRENCIES, context=context)
    assert result.success and result.rows == 200_000
    # a rate is reported (its size is measured by `make bench`, not asserted in a test)
    assert result.metadata()["rows_per_second"] > 0


def test_empty_frame_passes(context):
    df = clean_frames()["stg_orders__orders"].iloc[0:0]
    result = run("stg_orders__orders", df, context)
    assert result.success and result.rows == 0
    assert all(r["unexpected_count"] == 0 for r in result.results)


def test_gate_reads_through_arrow_give_the_frames_df_gives():
    """quality_gates.read_columns fetches through Arrow but keeps .df()'s dtypes: DECIMAL as
    float64, DATE as datetime64, nullable text as str -- so GX sees the same frames."""
    import duckdb

    from pipelines.staging.gates import read_columns

    con = duckdb.connect()
    con.execute("CREATE SCHEMA staging")
    con.execute("""CREATE TABLE staging.stg_crm_deals__deals AS SELECT * FROM (VALUES
        ('d1', 'c1', TIMESTAMP '2025-01-02 10:00', NULL::TIMESTAMP, 'open', 'EUR', 12.50::DECIMAL(18, 2), 'x'),
        ('d2', 'c2', TIMESTAMP '2025-01-03 11:00', TIMESTAMP '2025-02-01', 'won', NULL, NULL, 'y'))
        t(deal_id, contact_id, created_at, closed_at, deal_stage, currency, amount, extra)""")
    con.execute("""CREATE TABLE staging.stg_fx_rates__rates AS SELECT * FROM (VALUES
        (DATE '2025-01-01', 'USD', 1.0832::DECIMAL(18, 6)), (DATE '2025-01-02', 'USD', 1.0790::DECIMAL(18, 6)))
        t(rate_date, currency, rate_to_reporting)""")
    con.execute("""CREATE TABLE staging.stg_surveys__responses AS SELECT * FROM (VALUES
        ('r1', TIMESTAMP '2025-01-02 10:00', 'nps', 9::BIGINT, 'a@example.com'),
        ('r2', TIMESTAMP '2025-01-02 11:00', 'ces', NULL::BIGINT, NULL))
        t(response_id, responded_at, survey_type, score, email)""")
    con.execute("""CREATE TABLE staging.stg_crm_contacts__contacts AS SELECT * FROM (VALUES
        ('c1', TIMESTAMP '2025-01-02', NULL::TIMESTAMP, 'a@example.com', '+4930123456', 'DE', NULL, 50::INTEGER, true),
        ('c2', TIMESTAMP '2025-01-03', NULL::TIMESTAMP, NULL, NULL, NULL, NULL, NULL::INTEGER, NULL::BOOLEAN))
        t(contact_id, created_at, updated_at, email, phone, country, referred_by_email, lead_score, marketing_consent)""")
    for table in ("stg_crm_deals__deals", "stg_fx_rates__rates", "stg_surveys__responses",
                  "stg_crm_contacts__contacts"):
        got = read_columns(con, table)
        expected = con.execute(f"SELECT {', '.join(required_columns(table))} FROM staging.{table}").df()
        assert list(got.columns) == required_columns(table)  # only what the suite needs
        assert dict(got.dtypes.astype(str)) == dict(expected.dtypes.astype(str))
        pd.testing.assert_frame_equal(got, expected)
    deals = read_columns(con, "stg_crm_deals__deals")
    assert deals["amount"].tolist()[0] == 12.5 and np.isnan(deals["amount"].tolist()[1])
    assert str(deals["amount"].dtype) == "float64"
    assert str(read_columns(con, "stg_fx_rates__rates")["rate_date"].dtype).startswith("datetime64")
    # integers and booleans with NULLs: pandas' nullable dtypes, as .df() gives them
    assert str(read_columns(con, "stg_surveys__responses")["score"].dtype) == "Int64"
    contacts = read_columns(con, "stg_crm_contacts__contacts")
    assert str(contacts["lead_score"].dtype) == "Int32" and str(contacts["marketing_consent"].dtype) == "boolean"


def test_gx_keeps_no_frame_after_a_validation(context):
    """GX's pandas engine caches each batch's data; validate_table drops it, so a 5-7 GB frame
    of web events does not stay in the process after the gates."""
    import gc
    import weakref

    df = clean_frames()["stg_orders__orders"]
    prepared: list = []
    real_prepare = quality._prepare

    def spy(spec, frame):
        out = real_prepare(spec, frame)
        prepared.append(weakref.ref(out))
        return out

    quality._prepare = spy
    try:
        result = run("stg_orders__orders", df, context)
    finally:
        quality._prepare = real_prepare
    assert result.success
    engine = context.data_sources.get(quality.DATASOURCE).get_execution_engine()
    assert engine.batch_manager.batch_data_cache == {}
    gc.collect()
    assert prepared and prepared[0]() is None  # the frame GX validated is gone


def test_duckdb_memory_limit_for_dbt_runs(monkeypatch):
    import psutil

    from orchestration.defs.dbt import project as dbt

    monkeypatch.setenv("CLM_DUCKDB_MEMORY_LIMIT", "12GB")
    assert dbt.duckdb_memory_limit() == "12GB"
    monkeypatch.delenv("CLM_DUCKDB_MEMORY_LIMIT")
    expected = int(psutil.virtual_memory().total * 0.4 / 2**20)
    assert dbt.duckdb_memory_limit() == f"{expected}MiB"
