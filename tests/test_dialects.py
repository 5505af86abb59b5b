"""Real-world export dialects (pipelines.raw.dialects): HubSpot contacts, Shopify orders,
GA4 BigQuery events. The committed samples load with hand-checked values; the same facts
written canonically and in each dialect load to the same raw rows; and a whole demo data
set given once as vendor exports and once canonically gives identical staging rows and marts.
"""
from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest

from tools.demo import vendor_exports as vendor
from pipelines.config import PROJECT_ROOT, Settings, resolve_vars
from pipelines.raw.dialects import detect, normalize
from pipelines.raw.load import load_source

SAMPLES = PROJECT_ROOT / "data" / "samples"
LINEAGE = ["_source_file", "_file_hash", "_row_number", "_loaded_at", "_extra"]


def load(tmp: Path, source: str, files: dict[str, bytes | Path], vars_: dict | None = None):
    """Load files into a fresh warehouse under tmp; (result, connection)."""
    folder = tmp / "landing" / source
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        if isinstance(content, Path):
            shutil.copy(content, folder / name)
        else:
            (folder / name).write_bytes(content)
    settings = Settings(tmp / "landing", tmp / "warehouse", resolve_vars({"as_of_date": "2025-12-31", **(vars_ or {})}))
    result = load_source(settings, source)
    return result, duckdb.connect(str(settings.warehouse_path))


def rows(con, source: str, order: str) -> list[tuple]:
    return con.execute(f"SELECT * EXCLUDE ({', '.join(LINEAGE)}) FROM raw.{source} ORDER BY {order}").fetchall()


def test_detection_from_headers():
    assert detect("crm_contacts", ["Record ID", "Email", "Create Date"]).name == "hubspot_contacts"
    assert detect("crm_contacts", ["record_id", "CREATE-DATE"]).name == "hubspot_contacts"  # header matching rules
    assert detect("crm_contacts", ["contact_id", "created_at", "email"]) is None
    assert detect("orders", ["Name", "Financial Status", "Lineitem quantity", "Created at"]).name == "shopify_orders"
    assert detect("orders", ["order_id", "ordered_at", "total_amount", "name"]) is None
    assert detect("web_events", ["event_timestamp", "event_name", "user_pseudo_id"]).name == "ga4_bigquery"
    assert detect("surveys", ["Record ID", "Create Date"]) is None  # dialects belong to one source
    assert normalize(" Country/Region ") == "country/region"


# --------------------------------------------------------------------------- committed samples


def test_hubspot_sample(tmp_path):
    res, con = load(tmp_path, "crm_contacts", {"hubspot.csv": SAMPLES / "hubspot_contacts" /
                                                "hubspot-crm-exports-all-contacts-2025-01-15.csv"})
    f = res.files[0]
    assert (f.status, f.dialect, f.rows_loaded, f.rows_rejected) == ("loaded", "hubspot_contacts", 4, 0)
    assert f.extra_columns == ["Favourite Colour"]  # unknown: reported; Contact owner, Lead Status are known
    got = con.execute("""SELECT contact_id, created_at, updated_at, email, phone, country, lead_source, lead_score,
                                crm_lifecycle_stage, _row_number FROM raw.crm_contacts ORDER BY contact_id""").fetchall()
    assert got == [
        # Create Date is Berlin wall-clock time: 09:12:44 CET = 08:12:44 UTC
        ("51", dt.datetime(2024, 11, 3, 8, 12, 44), dt.datetime(2025, 1, 10, 15, 20, 5), "Jana.Novak@Example.com",
         "0176 5550101", "Germany", "paid_search", 72.0, "customer", 2),
        ("52", dt.datetime(2024, 12, 24, 22, 30), dt.datetime(2024, 12, 24, 22, 30), "tom.reed@googlemail.com",
         "+44 20 7946 0958", "United Kingdom", "organic_search", 15.0, "lead", 3),
        ("53", dt.datetime(2025, 1, 2, 7, 0), dt.datetime(2025, 1, 14, 10, 45, 10), "lea.martin@example.fr", None,
         "FR", "referral", 55.0, "opportunity", 4),
        ("54", dt.datetime(2025, 1, 5, 16, 5, 31), dt.datetime(2025, 1, 5, 16, 5, 31), None, "+43 1 5550199",
         "Österreich", "email", None, "subscriber", 5),  # EMAIL_MARKETING: an internal value, not a label
    ]
    extra = json.loads(con.execute("SELECT _extra FROM raw.crm_contacts WHERE contact_id = '51'").fetchone()[0])
    assert extra == {"Contact owner": "Sales Team", "Lead Status": "Open", "Favourite Colour": "green"}


def test_hubspot_dates_follow_the_portal_timezone(tmp_path):
    res, con = load(tmp_path, "crm_contacts", {"h.csv": b"Record ID,Create Date\n1,2024-07-01 12:00:00\n"},
                    {"source_timezones": {"crm_contacts": "America/New_York"}})
    assert con.execute("SELECT created_at FROM raw.crm_contacts").fetchone()[0] == dt.datetime(2024, 7, 1, 16, 0)


def test_shopify_sample_aggregates_line_items_to_orders(tmp_path):
    res, con = load(tmp_path, "orders", {"orders_export_1.csv": SAMPLES / "shopify_orders" / "orders_export_1.csv"})
    f = res.files[0]
    assert (f.status, f.dialect, f.rows_loaded, f.rows_rejected, f.extra_columns) == (
        "loaded", "shopify_orders", 4, 0, [])
    got = con.execute("""SELECT order_id, ordered_at, email, phone, status, currency, total_amount, discount_amount,
                                refunded_amount, coupon_code, items_count, country, customer_id, channel, _row_number
                         FROM raw.orders ORDER BY order_id""").fetchall()
    d = lambda v: None if v is None else __import__("decimal").Decimal(v)  # noqa: E731
    assert got == [
        # two line items (2 + 1); Subtotal 81.00 is after the 9.00 discount: item value 90.00;
        # the phone only on the billing address; order fields on the first line (line 2)
        ("#1001", dt.datetime(2025, 1, 10, 15, 20, 5), "jana.novak@example.com", "+49 176 5550101", "completed", "EUR",
         d("90.0000"), d("9.0000"), d("0.0000"), "WELCOME10", 3, "DE", None, None, 2),
        ("#1002", dt.datetime(2024, 12, 28, 10, 1), "TOM.REED@gmail.com", "+44 20 7946 0958", "partially_refunded",
         "GBP", d("42.5000"), d("0.0000"), d("12.5000"), None, 1, "GB", None, None, 4),
        ("#1003", dt.datetime(2025, 1, 12, 20, 15), "lea.martin@example.fr", None, "cancelled", "EUR",
         d("19.9000"), d("0.0000"), d("0.0000"), None, 1, "FR", None, None, 5),  # voided, Cancelled at
        ("#1004", dt.datetime(2025, 1, 14, 6, 59, 59), "jana.novak@example.com", None, "pending", "EUR",
         d("30.0000"), d("0.0000"), d("0.0000"), None, 3, "DE", None, None, 6),  # authorized: not a purchase
    ]
    extra = json.loads(con.execute("SELECT _extra FROM raw.orders WHERE order_id = '#1001'").fetchone()[0])
    # kept as delivered (text): the line items as one JSON list
    assert [(i["Lineitem name"], i["Lineitem quantity"]) for i in json.loads(extra["line_items"])] == [
        ("Wool socks - Grey", "2"), ("Merino sweater - Navy", "1")]
    assert extra["Total"] == "85.90" and extra["Source"] == "web"


@pytest.mark.parametrize(("financial", "cancelled", "status"), [
    ("paid", "", "completed"), ("partially_refunded", "", "partially_refunded"), ("refunded", "", "refunded"),
    ("voided", "", "cancelled"), ("paid", "2025-01-02 10:00:00 +0100", "cancelled"), ("pending", "", "pending"),
    ("authorized", "", "pending"), ("Partially_Paid", "", "pending"), ("chargeback", "", "chargeback"),
])
def test_shopify_financial_status(tmp_path, financial, cancelled, status):
    text = ("Name,Financial Status,Cancelled at,Created at,Subtotal,Lineitem quantity\n"
            f"#1,{financial},{cancelled},2025-01-01 10:00:00 +0100,10.00,1\n")
    _, con = load(tmp_path, "orders", {"o.csv": text.encode()})
    # an unknown status is passed on as it is: the staging quality gate names it, nothing
    # counts it as a purchase
    assert con.execute("SELECT status FROM raw.orders").fetchone()[0] == status


def test_shopify_bad_rows_are_rejected_with_the_orders_first_line(tmp_path):
    text = ("Name,Financial Status,Created at,Subtotal,Discount Amount,Lineitem quantity\n"
            "#1,paid,2025-01-01 10:00:00 +0100,10.00,,1\n"
            "#2,paid,yesterday,5.00,,1\n"
            "#2,,,,,2\n"
            "#3,paid,2025-01-01 10:00:00 +0100,abc,,1\n"
            ",paid,2025-01-01 10:00:00 +0100,1.00,,1\n")
    res, con = load(tmp_path, "orders", {"o.csv": text.encode()})
    assert (res.files[0].rows_loaded, res.files[0].rows_rejected) == (1, 3)
    assert con.execute("SELECT line_number, reason FROM raw.rejected_rows ORDER BY 1").fetchall() == [
        (3, "cannot parse ordered_at as timestamp"),
        (5, "cannot parse total_amount as money"),
        (6, "missing required value in order_id"),
    ]


def test_ga4_sample_flattens_nested_records(tmp_path):
    res, con = load(tmp_path, "web_events", {"events.ndjson": SAMPLES / "ga4_bigquery" / "events_20250115.ndjson"})
    f = res.files[0]
    assert (f.status, f.dialect, f.rows_loaded, f.rows_rejected) == ("loaded", "ga4_bigquery", 5, 0)
    assert f.extra_columns == ["consent_mode"]  # event_date, items, ecommerce ... are known GA4 fields
    got = con.execute("""SELECT event_at, anonymous_id, event_name, user_id, email, page_url, referrer, utm_source,
                                utm_medium, utm_campaign, device, country, session_id, event_id
                         FROM raw.web_events ORDER BY _row_number""").fetchall()
    anon1, anon2 = "1234567890.1736935200", "9876543210.1737012000"
    assert got == [
        (dt.datetime(2025, 1, 15, 10, 0), anon1, "page_view", None, None,
         "https://shop.example.com/?utm_source=google&utm_medium=cpc", "https://www.google.com/", "google", "cpc",
         "generic_search", "desktop", "Germany", "1736935200", None),
        (dt.datetime(2025, 1, 15, 10, 1, 0, 500000), anon1, "add_to_cart", None, None,
         "https://shop.example.com/products/wool-socks", None, None, None, None, "desktop", "Germany", "1736935200",
         None),
        (dt.datetime(2025, 1, 15, 10, 5), anon1, "sign_up", "cust-1001", "Jana.Novak@Example.com ", None, None, None,
         None, None, "desktop", "Germany", "1736935200", None),  # the user_email parameter
        # event_timestamp as a JSON number, not a string; no web_info, no referrer
        (dt.datetime(2025, 1, 16, 7, 20), anon2, "page_view", None, None, "https://shop.example.com/", None, None,
         None, None, "mobile", "Austria", "1737012000", None),
        (dt.datetime(2025, 1, 16, 7, 21, 40), anon2, "purchase", None, "max.huber@example.at", None, None, None, None,
         None, "mobile", "Austria", "1737012000", None),  # the email parameter
    ]
    extra = json.loads(con.execute("SELECT _extra FROM raw.web_events WHERE event_name = 'add_to_cart'").fetchone()[0])
    assert json.loads(extra["items"])[0]["item_id"] == "SOCK-GR"  # kept, not lost


def test_ga4_missing_keys_and_broken_records(tmp_path):
    lines = [
        {"event_timestamp": "1736935200000000", "event_name": "page_view", "user_pseudo_id": "a1"},  # no params
        {"event_timestamp": "soon", "event_name": "page_view", "user_pseudo_id": "a1", "event_params": []},
        {"event_timestamp": "1736935200000000", "event_name": "page_view", "user_pseudo_id": "",
         "event_params": "not a list"},
    ]
    text = "\n".join(json.dumps(x) for x in lines) + "\n{broken\n"
    res, con = load(tmp_path, "web_events", {"e.ndjson": text.encode()})
    assert (res.files[0].rows_loaded, res.files[0].rows_rejected) == (1, 3)
    assert con.execute("SELECT page_url, session_id, device FROM raw.web_events").fetchall() == [(None, None, None)]
    assert con.execute("SELECT line_number, reason FROM raw.rejected_rows ORDER BY 1").fetchall() == [
        (2, "cannot parse event_at as timestamp"),
        (3, "missing required value in anonymous_id"),
        (4, "malformed JSON record (not a valid JSON object)"),
    ]


# --------------------------------------------------------------------------- same facts, two forms


def facts_orders() -> tuple[pl.DataFrame, np.ndarray]:
    df = pl.DataFrame({
        "order_id": ["A-1", "A-2", "A-3", "A-4", "A-5"],
        "ordered_at": [None] * 5,
        "total_amount": [90.0, 42.5, 19.9, 30.0, 12.35],
        "customer_id": ["u1", None, "u2", None, None],
        "email": ["Ann@Example.com", "bob@example.com", None, "ann@example.com", None],
        "phone": [None, "+44 20 7946 0958", "0176 5550101", None, None],
        "status": ["completed", "partially_refunded", "cancelled", "pending", "refunded"],
        "currency": ["EUR", "GBP", "EUR", None, "EUR"],
        "discount_amount": [9.0, 0.0, 0.0, 0.0, 1.23],
        "refunded_amount": [0.0, 12.5, 0.0, 0.0, 11.12],
        "channel": ["email", None, None, None, None],
        "coupon_code": ["WELCOME10", None, None, None, "VIP5"],
        "items_count": [3, 1, 2, 4, 1],
        "country": ["DE", "United Kingdom", "Deutschland", "at", None],
    })
    # the last one on the night the clocks go back in Berlin (01:30 UTC = 02:30 CET)
    seconds = np.array([1736522405, 1735380060, 1736716500, 1736837999, 1729992600])
    return df, seconds


def test_the_same_orders_load_the_same_from_shopify(tmp_path):
    df, seconds = facts_orders()
    bad = np.array([False, False, False, False, False])
    shop = vendor.shopify_orders(df, seconds, bad).write_csv().encode()
    canon = vendor.canonical_equivalent("orders", df, {"ordered_at": seconds}, bad).write_csv().encode()
    _, a = load(tmp_path / "a", "orders", {"canonical.csv": canon})
    _, b = load(tmp_path / "b", "orders", {"shopify.csv": shop})
    assert rows(b, "orders", "order_id") == rows(a, "orders", "order_id")
    assert len(rows(a, "orders", "order_id")) == 5
    assert b.execute("SELECT sum(items_count) FROM raw.orders").fetchone()[0] == 11


def facts_contacts() -> tuple[pl.DataFrame, dict]:
    df = pl.DataFrame({
        "contact_id": ["1", "2", "3"], "created_at": [None] * 3, "email": ["a@example.com", None, "c@gmail.com"],
        "phone": [None, "030 1234567", None], "first_name": ["Ann", "Ben", None], "last_name": ["Lee", None, None],
        "company": [None, "ACME", None], "country": ["DE", "Germany", None], "city": ["Berlin", None, None],
        "crm_lifecycle_stage": ["customer", "lead", "salesqualifiedlead"],
        "lead_source": ["affiliate", "paid_search", None], "lead_score": [10, 80, None],
        "marketing_consent": ["true", "false", None], "updated_at": [None] * 3,
        "referred_by_email": [None, "a@example.com", None],
    })
    created = np.array([1700000000, 1729992600, 1711846800])  # the last two: DST change nights in Berlin
    return df, {"created_at": created, "updated_at": created + 86_400}


def test_the_same_contacts_load_the_same_from_hubspot(tmp_path):
    df, times = facts_contacts()
    hub = vendor.hubspot_contacts(df, times["created_at"], times["updated_at"]).write_csv().encode()
    canon = vendor.canonical_equivalent("crm_contacts", df, times).write_csv().encode()
    _, a = load(tmp_path / "a", "crm_contacts", {"canonical.csv": canon})
    res, b = load(tmp_path / "b", "crm_contacts", {"hubspot.csv": hub})
    assert rows(b, "crm_contacts", "contact_id") == rows(a, "crm_contacts", "contact_id")
    # affiliate has no HubSpot Original Source of its own: both say other_campaigns
    assert b.execute("SELECT lead_source FROM raw.crm_contacts ORDER BY contact_id").fetchall() == [
        ("other_campaigns",), ("paid_search",), (None,)]
    # consent and referrer are custom properties named like the canonical columns
    assert b.execute("SELECT count(marketing_consent), count(referred_by_email) FROM raw.crm_contacts"
                     ).fetchone() == (2, 1)
    assert res.files[0].extra_columns == []


def facts_events() -> tuple[pl.DataFrame, np.ndarray]:
    df = pl.DataFrame({
        "event_id": ["e1", "e2", "e3"], "event_at": [None] * 3, "anonymous_id": ["a1", "a1", "a2"],
        "event_name": ["page_view", "sign_up", "purchase"], "user_id": [None, "u1", None],
        "email": [None, "Ann@Example.com", "bob@example.com"], "page_url": ["https://shop.example.com/", None, None],
        "referrer": ["https://www.google.com/", None, None], "utm_source": ["google", None, None],
        "utm_medium": ["cpc", None, None], "utm_campaign": [None, None, None], "device": ["desktop", "desktop", None],
        "country": ["DE", "Germany", None], "session_id": ["s000-1", "s000-1", "s001-7"],
    })
    return df, np.array([1736935200, 1736935500, 1737012100])


def test_the_same_events_load_the_same_from_ga4(tmp_path):
    df, seconds = facts_events()
    bad = np.array([False, False, True])
    ga4 = vendor.ga4_events(df, seconds, bad)
    canon = vendor.canonical_equivalent("web_events", df, {"event_at": seconds}, bad).write_ndjson().encode()
    ra, a = load(tmp_path / "a", "web_events", {"canonical.ndjson": canon})
    rb, b = load(tmp_path / "b", "web_events", {"ga4.ndjson": ga4})
    assert rows(b, "web_events", "event_at") == rows(a, "web_events", "event_at")
    assert (rb.files[0].rows_loaded, rb.files[0].rows_rejected) == (ra.files[0].rows_loaded,
                                                                    ra.files[0].rows_rejected) == (2, 1)
    assert b.execute("SELECT session_id FROM raw.web_events ORDER BY event_at").fetchall() == [("1",), ("1",)]


# --------------------------------------------------------------------------- the bar: identical marts


MART_QUERIES = {
    "buyers": "SELECT count(*) FROM marts.dim_customers WHERE orders_count > 0",
    "persons": "SELECT count(*) FROM marts.dim_customers",
    "orders": "SELECT count(*), count(*) FILTER (WHERE is_purchase), sum(net_revenue) FROM marts.fct_orders",
    "orders by status": "SELECT status, count(*), sum(net_revenue) FROM marts.fct_orders GROUP BY 1 ORDER BY 1",
    "countries": "SELECT country, count(*) FROM marts.dim_customers GROUP BY 1 ORDER BY 1 NULLS FIRST",
    "sessions": "SELECT count(*), sum(events_count), count(*) FILTER (WHERE converted) FROM marts.fct_sessions",
    "channels": "SELECT channel, count(*) FROM marts.fct_sessions GROUP BY 1 ORDER BY 1 NULLS FIRST",
    "stages": "SELECT lifecycle_stage, count(*) FROM marts.dim_customers GROUP BY 1 ORDER BY 1 NULLS FIRST",
    "stage grid": "SELECT month, lifecycle_stage, count(*) FROM marts.customer_stages_monthly GROUP BY 1, 2 ORDER BY 1, 2",
    "kpis": "SELECT * FROM marts.kpi_monthly ORDER BY month",
    "cohorts": "SELECT * FROM marts.cohort_retention ORDER BY 1, 2",
    "acquisition": "SELECT acquisition_channel, count(*) FROM marts.dim_customers GROUP BY 1 ORDER BY 1 NULLS FIRST",
}
STAGING = {
    "stg_crm_contacts__contacts": "contact_id",
    "stg_orders__orders": "order_id",
    "stg_web_events__events": "event_id",
}


@pytest.fixture(scope="module")
def two_forms(tmp_path_factory):
    from tools.demo.generate import generate
    from tests.pipeline import run_clm

    out = {}
    for form in ("vendor", "vendor-equivalent"):
        root = tmp_path_factory.mktemp(form)
        generate(root / "landing", customers=150, seed=7, dialect=form)
        out[form] = (run_clm(root, '{"as_of_date": "2025-12-31"}'), root / "warehouse" / "clm.duckdb")
    return out


def test_vendor_exports_give_the_same_marts_as_canonical_files(two_forms):
    (code_v, db_v), (code_c, db_c) = two_forms["vendor"], two_forms["vendor-equivalent"]
    assert code_v == 0 and code_c == 0
    v, c = duckdb.connect(str(db_v), read_only=True), duckdb.connect(str(db_c), read_only=True)
    try:
        dialects = dict(v.execute("SELECT source, list(DISTINCT dialect) FROM raw._manifest GROUP BY 1").fetchall())
        assert dialects["orders"] == ["shopify_orders"] and dialects["crm_contacts"] == ["hubspot_contacts"]
        assert dialects["web_events"] == ["ga4_bigquery"]
        for name, sql in MART_QUERIES.items():
            assert v.execute(sql).fetchall() == c.execute(sql).fetchall(), name
        assert v.execute(MART_QUERIES["buyers"]).fetchone()[0] > 50
        for table, key in STAGING.items():
            cols = [r[0] for r in c.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = 'staging' "
                f"AND table_name = '{table}' AND column_name NOT IN ('_source_file', '_row_number', '_loaded_at')"
            ).fetchall()]
            sql = f"SELECT {', '.join(cols)} FROM staging.{table} ORDER BY {key}"
            assert v.execute(sql).fetchall() == c.execute(sql).fetchall(), table
        # the same rows were refused, for the same reasons
        rejected = "SELECT source, reason, count(*) FROM raw.rejected_rows GROUP BY 1, 2 ORDER BY 1, 2"
        assert v.execute(rejected).fetchall() == c.execute(rejected).fetchall()
    finally:
        v.close()
        c.close()
