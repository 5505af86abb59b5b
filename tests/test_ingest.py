"""Load guarantees of CONTRACT section 2, on small hand-written files."""
from __future__ import annotations

import datetime as dt
import gzip
import json

import duckdb
import polars as pl
import pytest

from pipelines.config import Settings, resolve_vars
from pipelines.raw import load_source
from pipelines.raw.load import normalize_header

T = dt.datetime


def make_settings(tmp_path, **overrides) -> Settings:
    return Settings(tmp_path / "landing", tmp_path / "warehouse", resolve_vars(overrides))


def drop(settings: Settings, source: str, name: str, content: bytes | str, encoding="utf-8"):
    folder = settings.landing_dir / source
    folder.mkdir(parents=True, exist_ok=True)
    data = content.encode(encoding) if isinstance(content, str) else content
    (folder / name).write_bytes(data)
    return folder / name


def query(settings: Settings, sql: str):
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        con.execute("SET TimeZone = 'UTC'")
        return con.execute(sql).fetchall()
    finally:
        con.close()


ORDERS_WITH_BAD_ROWS = (
    "order_id,ordered_at,total_amount,email,status\n"          # line 1
    "O1,2024-01-05T10:00:00Z,100.50,anna@example.com,completed\n"  # 2 ok
    "O2,2024-01-06 10:00:00,20,,completed\n"                    # 3 ok
    "O3,not-a-date,5,secret@example.com,completed\n"            # 4 bad timestamp
    "O4,2024-01-07,5,b@example.com,completed,EXTRA\n"           # 5 too many fields
    ",2024-01-08,3,,completed\n"                                # 6 blank key
    "O6,2024-01-09,abc,,completed\n"                            # 7 bad amount
    "O7,2024-01-10,7.25,,pending\n"                             # 8 ok
)


def test_malformed_rows_are_quarantined_with_line_numbers(tmp_path):
    s = make_settings(tmp_path)
    drop(s, "orders", "orders.csv", ORDERS_WITH_BAD_ROWS)
    result = load_source(s, "orders")
    assert (result.rows_loaded, result.rows_rejected) == (3, 4)
    assert result.rejected_share == pytest.approx(4 / 7)
    assert query(s, "SELECT order_id, _row_number FROM raw.orders ORDER BY _row_number") == [
        ("O1", 2), ("O2", 3), ("O7", 8)]
    rejected = query(s, "SELECT source, file_name, line_number, reason FROM raw.rejected_rows ORDER BY line_number")
    assert rejected == [
        ("orders", "orders/orders.csv", 4, "cannot parse ordered_at as timestamp"),
        ("orders", "orders/orders.csv", 5, "malformed CSV record: too many columns (expected 5 fields)"),
        ("orders", "orders/orders.csv", 6, "missing required value in order_id"),
        ("orders", "orders/orders.csv", 7, "cannot parse total_amount as money"),
    ]
    # Never the row text: no value of a rejected row appears anywhere in the quarantine.
    assert not query(s, "SELECT * FROM raw.rejected_rows WHERE reason LIKE '%example.com%' OR reason LIKE '%O3%'")
    # Every input row ends in exactly one place.
    assert result.rows_loaded + result.rows_rejected == ORDERS_WITH_BAD_ROWS.count("\n") - 1


def test_rejected_lines_before_good_rows_keep_line_numbers_exact(tmp_path):
    s = make_settings(tmp_path)
    lines = ["order_id,ordered_at,total_amount"]
    for i in range(1, 21):
        lines.append(f"O{i},2024-01-01,1" if i not in (3, 4, 10) else f"O{i},2024-01-01,1,x")
    drop(s, "orders", "o.csv", "\n".join(lines) + "\n")
    load_source(s, "orders")
    got = query(s, "SELECT order_id, _row_number FROM raw.orders ORDER BY _row_number")
    assert got == [(f"O{i}", i + 1) for i in range(1, 21) if i not in (3, 4, 10)]
    assert [r[0] for r in query(s, "SELECT line_number FROM raw.rejected_rows ORDER BY 1")] == [4, 5, 11]


def test_latin1_semicolon_decimal_comma_file_keeps_umlauts(tmp_path):
    s = make_settings(tmp_path)
    content = (
        "Contact ID;Created At;First Name;Last Name;City;Lead Score\n"
        "C1;01.02.2024 10:00;Jürgen;Müller;Köln;55,5\n"
        "C2;03.02.2024;Änne;Weiß;München;1.234,5\n"
    )
    drop(s, "crm_contacts", "export.csv", content, encoding="latin-1")
    result = load_source(s, "crm_contacts")
    assert (result.rows_loaded, result.rows_rejected) == (2, 0)
    assert query(s, "SELECT contact_id, created_at, first_name, last_name, city, lead_score "
                    "FROM raw.crm_contacts ORDER BY contact_id") == [
        ("C1", T(2024, 2, 1, 9, 0), "Jürgen", "Müller", "Köln", 55.5),   # CET = UTC+1
        ("C2", T(2024, 2, 2, 23, 0), "Änne", "Weiß", "München", 1234.5),
    ]
    assert query(s, "SELECT format, encoding, delimiter, decimal_comma FROM raw._manifest") == [
        ("csv", "cp1252", ";", True)]


def test_windows_1252_euro_sign(tmp_path):
    s = make_settings(tmp_path)
    drop(s, "crm_contacts", "c.csv", "contact_id,created_at,company\nC1,2024-01-01,Preis € GmbH\n",
         encoding="cp1252")
    load_source(s, "crm_contacts")
    assert query(s, "SELECT company FROM raw.crm_contacts") == [("Preis € GmbH",)]


def test_redelivered_file_under_new_name_is_not_loaded_twice(tmp_path):
    s = make_settings(tmp_path)
    drop(s, "orders", "orders.csv", ORDERS_WITH_BAD_ROWS)
    first = load_source(s, "orders")
    drop(s, "orders", "orders_resend_2024.csv", ORDERS_WITH_BAD_ROWS)
    second = load_source(s, "orders")
    assert [f.status for f in first.files] == ["loaded"]
    assert sorted((f.file, f.status) for f in second.files) == [
        ("orders/orders.csv", "duplicate"), ("orders/orders_resend_2024.csv", "duplicate")]
    assert second.rows_loaded == 0 and second.rejected_share == 0.0
    assert query(s, "SELECT count(*) FROM raw.orders") == [(3,)]
    assert query(s, "SELECT count(*) FROM raw.rejected_rows") == [(4,)]
    # A new file is loaded on the next run, the old ones are not touched.
    drop(s, "orders", "orders_feb.csv", "order_id,ordered_at,total_amount\nO9,2024-02-01,9\n")
    third = load_source(s, "orders")
    assert [(f.file, f.status, f.rows_loaded) for f in third.files if f.status == "loaded"] == [
        ("orders/orders_feb.csv", "loaded", 1)]
    assert query(s, "SELECT count(*) FROM raw.orders") == [(4,)]


def test_same_content_twice_in_one_delivery_loads_once(tmp_path):
    s = make_settings(tmp_path)
    drop(s, "orders", "a.csv", "order_id,ordered_at,total_amount\nO1,2024-02-01,9\n")
    drop(s, "orders", "b.csv", "order_id,ordered_at,total_amount\nO1,2024-02-01,9\n")
    result = load_source(s, "orders")
    assert [f.status for f in result.files] == ["loaded", "duplicate"]
    assert query(s, "SELECT count(*) FROM raw.orders") == [(1,)]


def test_missing_required_column_fails_the_file_and_leaves_raw_unchanged(tmp_path):
    s = make_settings(tmp_path)
    drop(s, "orders", "a_good.csv", "order_id,ordered_at,total_amount\nO1,2024-02-01,9\n")
    load_source(s, "orders")
    before = query(s, "SELECT count(*) FROM raw.orders"), query(s, "SELECT count(*) FROM raw._manifest")
    drop(s, "orders", "b_bad.csv", "order_id,total_amount,email\nO2,5,x@example.com\n")
    result = load_source(s, "orders")
    failed = result.failed_files
    assert len(failed) == 1
    assert failed[0].error == "orders/b_bad.csv: missing required column 'ordered_at'"
    assert (query(s, "SELECT count(*) FROM raw.orders"), query(s, "SELECT count(*) FROM raw._manifest")) == before
    assert query(s, "SELECT count(*) FROM raw.rejected_rows") == [(0,)]


def test_extra_columns_are_kept_and_reported(tmp_path):
    s = make_settings(tmp_path)
    drop(s, "orders", "o.csv", "order_id,ordered_at,total_amount,Gift Note,warehouse\n"
                               "O1,2024-02-01,9,for mum,W1\nO2,2024-02-02,3,,W2\n")
    result = load_source(s, "orders")
    assert result.files[0].extra_columns == ["Gift Note", "warehouse"]
    rows = query(s, "SELECT order_id, _extra FROM raw.orders ORDER BY order_id")
    assert [(r[0], json.loads(r[1])) for r in rows] == [
        ("O1", {"Gift Note": "for mum", "warehouse": "W1"}),
        ("O2", {"Gift Note": None, "warehouse": "W2"}),
    ]
    assert query(s, "SELECT extra_columns FROM raw._manifest") == [(["Gift Note", "warehouse"],)]


def test_headers_match_ignoring_case_spaces_dashes_underscores(tmp_path):
    assert normalize_header(" Order-ID ") == normalize_header("order_id") == "orderid"
    s = make_settings(tmp_path)
    drop(s, "orders", "o.csv", "\ufeffORDER ID,Ordered-At,total_Amount\nO1,2024-02-01,9\n")
    result = load_source(s, "orders")
    assert (result.rows_loaded, result.files[0].extra_columns) == (1, [])


def test_gzip_csv_ndjson_json_array_and_parquet(tmp_path):
    s = make_settings(tmp_path)
    drop(s, "orders", "o.csv.gz", gzip.compress(b"order_id,ordered_at,total_amount\nO1,2024-02-01T08:00:00Z,9\n"))
    frame = pl.DataFrame({
        "order_id": ["P1", "P2"],
        "ordered_at": [T(2024, 3, 1, 12, 0), T(2024, 3, 2, 12, 0)],
        "total_amount": [10.5, 20.0],
        "items_count": [1, 3],
    })
    frame.write_parquet(s.landing_dir / "orders" / "o.parquet")
    ndjson = (
        '{"event_at": "2024-01-01T10:00:00+01:00", "anonymous_id": "a1", "event_name": "page_view"}\n'
        "\n"
        '{"event_at": "2024-01-01T11:00:00Z", "anonymous_id": "a2", "event_name": "login", "user_id": "U1"}\n'
        '{"event_at": broken\n'
        "[1, 2]\n"  # valid JSON, but no object
        "   \n"
        '  {"event_at": "2024-01-01T12:00:00Z", "anonymous_id": "a3", "event_name": "page_view", "plan": "pro"}\n'
    )
    drop(s, "web_events", "e.ndjson.gz", gzip.compress(ndjson.encode()))
    drop(s, "surveys", "s.json", json.dumps([
        {"responded_at": "2024-05-01T10:00:00Z", "survey_type": "nps", "score": 9},
        {"responded_at": "2024-05-02T10:00:00Z", "survey_type": "ces", "score": "3", "email": "x@example.com"},
    ]))
    orders = load_source(s, "orders")
    assert sorted((f.file, f.rows_loaded) for f in orders.files) == [
        ("orders/o.csv.gz", 1), ("orders/o.parquet", 2)]
    assert query(s, "SELECT order_id, ordered_at, total_amount, items_count, _row_number FROM raw.orders "
                    "ORDER BY order_id") == [
        ("O1", T(2024, 2, 1, 8), 9, None, 2),
        ("P1", T(2024, 3, 1, 11), 10.5, 1, 1),  # naive Parquet timestamps are Berlin wall-clock time
        ("P2", T(2024, 3, 2, 11), 20, 3, 2),
    ]
    events = load_source(s, "web_events")
    assert (events.rows_loaded, events.rows_rejected) == (3, 2)  # blank lines are skipped, not rejected
    assert events.files[0].extra_columns == ["plan"]
    assert query(s, "SELECT anonymous_id, event_at, user_id, _row_number, _extra ->> 'plan' FROM raw.web_events "
                    "ORDER BY 1") == [
        ("a1", T(2024, 1, 1, 9), None, 1, None), ("a2", T(2024, 1, 1, 11), "U1", 3, None),
        ("a3", T(2024, 1, 1, 12), None, 7, "pro")]
    assert query(s, "SELECT line_number, reason FROM raw.rejected_rows ORDER BY 1") == [
        (4, "malformed JSON record (not a valid JSON object)"), (5, "malformed JSON record (not a valid JSON object)")]
    surveys = load_source(s, "surveys")
    assert surveys.rows_loaded == 2
    assert query(s, "SELECT survey_type, score, email, _row_number FROM raw.surveys ORDER BY 4") == [
        ("nps", 9, None, 1), ("ces", 3, "x@example.com", 2)]


def test_line_numbers_hold_in_a_file_read_in_parallel(tmp_path):
    """A 22 MB CSV (several of DuckDB's 8 MB scan ranges, read by both threads): every record
    keeps its own line number, whether it is loaded (from the rows' order in the insert) or
    rejected by the parser (every 997th) or by the CSV reader (every 1999th: a field too many)."""
    s = make_settings(tmp_path)
    n = 300_000
    pad = "x" * 40
    lines = ["order_id,ordered_at,total_amount,coupon_code"]
    for i in range(n):
        if i % 1999 == 5:
            lines.append(f"O{i},2024-01-01 10:00:00,1,{pad},surplus")
        elif i % 997 == 3:
            lines.append(f"O{i},not a time,1,{pad}")
        else:  # naive (Berlin) and UTC times alternate
            lines.append(f"O{i},2024-07-01 1{i % 10}:00:00{'Z' if i % 2 else ''},{i % 100}.5,{pad}")
    drop(s, "orders", "big.csv", "\n".join(lines) + "\n")
    reader = [i for i in range(n) if i % 1999 == 5]
    parser = [i for i in range(n) if i % 997 == 3 and i % 1999 != 5]
    result = load_source(s, "orders")
    assert (result.rows_loaded, result.rows_rejected) == (n - len(reader) - len(parser), len(reader) + len(parser))
    assert query(s, "SELECT count(*) FROM raw.orders WHERE _row_number <> CAST(substr(order_id, 2) AS BIGINT) + 2 "
                    "OR total_amount <> CAST(substr(order_id, 2) AS BIGINT) % 100 + 0.5") == [(0,)]
    assert query(s, "SELECT ordered_at FROM raw.orders WHERE order_id IN ('O10', 'O11') ORDER BY order_id") == [
        (T(2024, 7, 1, 8),), (T(2024, 7, 1, 11),)]  # 10:00 in Berlin (CEST), 11:00Z
    rejected = query(s, "SELECT line_number, reason FROM raw.rejected_rows ORDER BY 1")
    assert [line for line, _ in rejected] == sorted(i + 2 for i in reader + parser)
    assert {reason for line, reason in rejected if line - 2 in parser} == {"cannot parse ordered_at as timestamp"}


def test_timestamp_forms_and_timezones(tmp_path):
    s = make_settings(tmp_path, source_timezones={"web_events": "America/New_York"},
                      source_date_formats={"surveys": "%m/%d/%Y %H:%M"})
    drop(s, "orders", "o.csv", "\n".join([
        "order_id,ordered_at,total_amount",
        "A,2024-03-31 01:30:00,1",        # CET, before the spring-forward gap
        "B,2024-03-31 03:30:00,1",        # CEST
        "C,2024-10-27 01:59:00,1",        # CEST, before fall-back
        "D,2024-10-27 03:00:00,1",        # CET
        "E,2024-07-01T12:00:00+0200,1",
        "F,2024-07-01T12:00:00.250Z,1",
        "G,01.07.2024 12:00:00,1",
        "H,01.07.2024,1",
        "I,2024-07-01T12:00:00-05:00,1",
        "J,03/04/2025 10:00,1",           # ambiguous: never guessed
    ]) + "\n")
    load_source(s, "orders")
    assert query(s, "SELECT order_id, ordered_at FROM raw.orders ORDER BY 1") == [
        ("A", T(2024, 3, 31, 0, 30)), ("B", T(2024, 3, 31, 1, 30)),
        ("C", T(2024, 10, 26, 23, 59)), ("D", T(2024, 10, 27, 2, 0)),
        ("E", T(2024, 7, 1, 10, 0)), ("F", T(2024, 7, 1, 12, 0, 0, 250000)),
        ("G", T(2024, 7, 1, 10, 0)), ("H", T(2024, 6, 30, 22, 0)),
        ("I", T(2024, 7, 1, 17, 0)),
    ]
    assert query(s, "SELECT line_number, reason FROM raw.rejected_rows") == [
        (11, "cannot parse ordered_at as timestamp")]
    drop(s, "web_events", "e.csv", "event_at,anonymous_id,event_name\n2024-07-01 08:00:00,a,page_view\n")
    load_source(s, "web_events")
    assert query(s, "SELECT event_at FROM raw.web_events") == [(T(2024, 7, 1, 12, 0),)]  # EDT = UTC-4
    drop(s, "surveys", "s.csv", "responded_at,survey_type,score\n03/04/2025 10:00,nps,7\n")
    load_source(s, "surveys")
    assert query(s, "SELECT responded_at FROM raw.surveys") == [(T(2025, 3, 4, 9, 0),)]


@pytest.mark.parametrize("timezone", ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata",
                                      "UTC"])
def test_naive_times_convert_exactly_as_icu_hour_by_hour(timezone):
    """The loader's offset search (no ICU per row) gives what ICU gives for the value's hour:
    every 20 minutes through 2024 (DST changes; Lord Howe shifts by 30 minutes), and outside
    the search's range (1999, 2041: ICU row by row)."""
    from pipelines.raw.parse import local_to_utc_sql as _local_to_utc
    from pipelines.raw.parse import offset_sql as _offset_sql

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("""CREATE TABLE t AS SELECT ts FROM range(TIMESTAMP '2024-01-01', TIMESTAMP '2025-01-01',
                   INTERVAL 20 MINUTE) r(ts) UNION ALL SELECT * FROM (VALUES (TIMESTAMP '1999-07-01 12:00'),
                   (TIMESTAMP '2041-07-01 12:00'), (TIMESTAMP '2039-12-31 23:59:59'), (TIMESTAMP '2000-01-01 00:00'))""")
    fast = _local_to_utc(con, "ts", timezone)
    hour = "date_trunc('hour', ts)"
    exact = f"ts - {_offset_sql(hour, timezone)}"
    n, differ = con.execute(f"SELECT count(*), count(*) FILTER (({fast}) IS DISTINCT FROM ({exact})) FROM t").fetchone()
    assert (n, differ) == (26356, 0)
    summer = con.execute(f"SELECT {fast} FROM (SELECT TIMESTAMP '2024-07-01 12:00' AS ts)").fetchone()[0]
    assert summer == {"Europe/Berlin": T(2024, 7, 1, 10), "America/New_York": T(2024, 7, 1, 16),
                      "Australia/Lord_Howe": T(2024, 7, 1, 1, 30), "Asia/Kolkata": T(2024, 7, 1, 6, 30),
                      "UTC": T(2024, 7, 1, 12)}[timezone]


def test_numbers_integers_booleans_and_dates(tmp_path):
    s = make_settings(tmp_path)
    drop(s, "orders", "o.csv", "order_id,ordered_at,total_amount,items_count\n"
                               "A,2024-01-01,1,3.0\nB,2024-01-01,1,3.5\nC,2024-01-01,-2.5,\n")
    drop(s, "crm_contacts", "c.csv", "contact_id,created_at,marketing_consent\n"
                                     "C1,2024-01-01,Yes\nC2,2024-01-01,0\nC3,2024-01-01,\nC4,2024-01-01,maybe\n")
    drop(s, "marketing_spend", "m.csv", "spend_date,channel,spend\n2024-01-31,email,10.5\n31.01.2024,display,2\n")
    load_source(s, "orders")
    load_source(s, "crm_contacts")
    load_source(s, "marketing_spend")
    assert query(s, "SELECT order_id, total_amount, items_count FROM raw.orders ORDER BY 1") == [
        ("A", 1, 3), ("C", -2.5, None)]
    assert query(s, "SELECT contact_id, marketing_consent FROM raw.crm_contacts ORDER BY 1") == [
        ("C1", True), ("C2", False), ("C3", None)]
    assert query(s, "SELECT spend_date, channel, spend FROM raw.marketing_spend ORDER BY 2") == [
        (dt.date(2024, 1, 31), "display", 2), (dt.date(2024, 1, 31), "email", 10.5)]
    assert query(s, "SELECT file_name, line_number, reason FROM raw.rejected_rows ORDER BY 1") == [
        ("crm_contacts/c.csv", 5, "cannot parse marketing_consent as boolean"),
        ("orders/o.csv", 3, "cannot parse items_count as integer"),
    ]


def test_unreadable_files_fail_with_a_message_naming_them(tmp_path):
    s = make_settings(tmp_path)
    drop(s, "surveys", "broken.json", '[{"responded_at": "2024-01-01", ')
    drop(s, "orders", "empty.csv", "")
    assert load_source(s, "surveys").failed_files[0].error.startswith("surveys/broken.json: not valid JSON")
    assert load_source(s, "orders").failed_files[0].error == (
        "orders/empty.csv: empty file or missing header line")


def test_hidden_and_partial_files_are_ignored(tmp_path):
    s = make_settings(tmp_path)
    drop(s, "orders", ".hidden.csv", "x")
    drop(s, "orders", "upload.csv.part", "x")
    assert load_source(s, "orders").files == []
