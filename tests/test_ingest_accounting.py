"""CONTRACT section 2's accounting guarantee: every record of a landing file ends in raw or in
raw.rejected_rows, or the file fails as a whole, named, with the line where reading stopped;
a file's name is a name (never a pattern); only regular files inside the landing folder are
read. Each test is a case that once lost, duplicated or misread rows."""
from __future__ import annotations

import gzip
import json
import os

import numpy as np
import pytest

from pipelines.raw import load_source
from pipelines.raw.records import UnaccountableFile, count_csv_bytes
from tests.test_ingest import drop, make_settings, query

HEADER = "order_id,ordered_at,total_amount,email"


def orders_csv(n: int, start: int = 0) -> list[str]:
    """A header and n good order lines O<start>..O<start+n-1> (line k+2 holds order k)."""
    return [HEADER] + [f"O{i},2024-01-01T10:00:00Z,{i}.5,a{i}@example.com" for i in range(start, start + n)]


def state(s, file_name: str) -> dict:
    """What the warehouse holds of one file: raw rows, rejected rows, manifest rows."""
    lit = file_name.replace("'", "''")
    return {
        "raw": query(s, f"SELECT count(*) FROM raw.orders WHERE _source_file = '{lit}'")[0][0],
        "rejected": query(s, f"SELECT count(*) FROM raw.rejected_rows WHERE file_name = '{lit}'")[0][0],
        "manifest": query(s, f"SELECT count(*) FROM raw._manifest WHERE file_name = '{lit}'")[0][0],
    }


# --- 1. silent loss ------------------------------------------------------------------------

def test_an_unterminated_quote_fails_the_file_alone_and_names_its_line(tmp_path):
    s = make_settings(tmp_path)
    lines = orders_csv(200)
    lines[50] = 'O49,2024-01-01T10:00:00Z,"49.5,a49@example.com'  # line 51: the quote never closes
    drop(s, "orders", "a_broken.csv", "\n".join(lines) + "\n")
    drop(s, "orders", "b_good.csv", "\n".join(orders_csv(3, start=1000)) + "\n")
    result = load_source(s, "orders")
    by_file = {f.file: f for f in result.files}
    broken = by_file["orders/a_broken.csv"]
    assert broken.status == "failed"
    assert broken.error == ("orders/a_broken.csv: line 51 opens a quoted field that is never closed: reading "
                            "would stop there and swallow the rest of the file")
    assert state(s, "orders/a_broken.csv") == {"raw": 0, "rejected": 0, "manifest": 0}
    assert (by_file["orders/b_good.csv"].status, by_file["orders/b_good.csv"].rows_loaded) == ("loaded", 3)
    # the failure is on record until the file is fixed; a fixed re-delivery loads in full
    assert query(s, "SELECT file_name, status FROM raw._file_issues") == [("orders/a_broken.csv", "failed")]
    (s.landing_dir / "orders" / "a_broken.csv").unlink()
    drop(s, "orders", "a_fixed.csv", "\n".join(orders_csv(200)) + "\n")
    again = load_source(s, "orders")
    assert [(f.file, f.status, f.rows_loaded) for f in again.files if f.status != "duplicate"] == [
        ("orders/a_fixed.csv", "loaded", 200)]
    assert query(s, "SELECT count(*) FROM raw._file_issues") == [(0,)]


def test_an_open_quote_in_the_header_fails_the_file(tmp_path):
    s = make_settings(tmp_path)
    drop(s, "orders", "o.csv", 'order_id,"ordered_at,total_amount\nO1,2024-01-01,1\n')
    [f] = load_source(s, "orders").files
    assert (f.status, f.error) == ("failed", "orders/o.csv: line 1 opens a quoted field that is never closed: "
                                             "reading would stop there and swallow the rest of the file")


def test_a_quote_that_swallows_lines_into_a_rejected_record_fails_the_file(tmp_path):
    """A stray quote mid-file closes 20 lines later: DuckDB reads lines 11-31 as one malformed
    record; the count agrees (one record), but its lines would vanish inside the rejection."""
    s = make_settings(tmp_path)
    lines = orders_csv(40)
    lines[10] = 'O9,2024-01-01T10:00:00Z,"9.5,a9@example.com'
    lines[30] = 'O29,2024-01-01T10:00:00Z,29.5,a29@"example.com'
    drop(s, "orders", "o.csv", "\n".join(lines) + "\n")
    [f] = load_source(s, "orders").files
    assert f.status == "failed"
    assert f.error == ("orders/o.csv: line 11 starts a malformed record that runs over 21 lines (to line 31): "
                       "a quote there is not closed where it should be; nothing of the file was loaded")
    assert state(s, "orders/o.csv") == {"raw": 0, "rejected": 0, "manifest": 0}


def test_a_file_the_reader_cannot_account_for_fails_naming_the_line(tmp_path, monkeypatch):
    """Whatever makes the reader's rows and the independent count disagree fails the file:
    here a count that says the file has one record more than DuckDB reads."""
    import pipelines.raw.load as load

    s = make_settings(tmp_path)
    drop(s, "orders", "o.csv", "\n".join(orders_csv(5)) + "\n")
    real = load.Scan.expected
    monkeypatch.setattr(load.Scan, "expected", property(lambda self: real.fget(self) + 1))
    [f] = load_source(s, "orders").files
    assert f.error == ("orders/o.csv: the reader accounted for 5 of the file's 6 records (reading stopped "
                       "after line 6); nothing of the file was loaded")
    assert state(s, "orders/o.csv") == {"raw": 0, "rejected": 0, "manifest": 0}


# --- line numbers: empty lines, quoted line breaks, stray quotes ---------------------------------

def test_line_numbers_count_empty_lines_and_quoted_line_breaks(tmp_path):
    s = make_settings(tmp_path)
    text = (
        "order_id,ordered_at,total_amount,email\n"            # 1
        "O1,2024-01-01,1,\n"                                   # 2
        "\n"                                                   # 3 empty: no record
        'O2,2024-01-01,2,"two\nlines"\n'                       # 4-5
        "O3,2024-01-01,3,x,surplus\n"                          # 6 refused by the reader
        "\n"                                                   # 7 empty
        'O4,2024-01-01,4,"three\n\nlines"\n'                   # 8-10
        "O5,not a date,5,\n"                                   # 11 refused by the parser
        "O6,2024-01-01,6,"                                     # 12, no line end
    )
    drop(s, "orders", "o.csv", text)
    result = load_source(s, "orders")
    assert (result.rows_loaded, result.rows_rejected) == (4, 2)
    assert query(s, "SELECT order_id, _row_number FROM raw.orders ORDER BY 2") == [
        ("O1", 2), ("O2", 4), ("O4", 8), ("O6", 12)]
    assert query(s, "SELECT line_number, reason FROM raw.rejected_rows ORDER BY 1") == [
        (6, "malformed CSV record: too many columns (expected 4 fields)"),
        (11, "cannot parse ordered_at as timestamp")]
    assert query(s, "SELECT email FROM raw.orders WHERE order_id = 'O4'") == [("three\n\nlines",)]


def test_stray_quotes_are_read_as_characters_and_counted_by_the_csv_module(tmp_path):
    s = make_settings(tmp_path)
    text = ('order_id,ordered_at,total_amount,email\n'
            'O1,2024-01-01,1,5" screen\n'
            'O2,2024-01-01,2,"x"y\n'          # a closing quote followed by text: refused by the reader
            'O3,2024-01-01,3,"quoted, fine"\n')
    count = count_csv_bytes(text.encode())
    assert (count.records, list(count.blank_rows), list(count.multi_line_rows)) == (4, [], [])
    drop(s, "orders", "o.csv", text)
    result = load_source(s, "orders")
    assert (result.rows_loaded, result.rows_rejected) == (2, 1)
    assert query(s, "SELECT order_id, email, _row_number FROM raw.orders ORDER BY 3") == [
        ("O1", '5" screen', 2), ("O3", "quoted, fine", 4)]
    assert query(s, "SELECT line_number FROM raw.rejected_rows") == [(3,)]


def test_the_record_count_by_hand():
    c = count_csv_bytes(b'a,b\n1,2\n\n"x\ny",3\n\n4,"5"""\n6,7')
    # rows as DuckDB numbers them: header 0, "1,2" 1, empty 2, the two-line record 3, empty 4, 5, 6
    assert (c.rows, c.records, c.lines) == (7, 5, 8)
    assert list(c.blank_rows) == [2, 4] and list(c.multi_line_rows) == [3] and list(c.extra_lines) == [1]
    assert [c.start_line(r) for r in (0, 1, 3, 5, 6)] == [1, 2, 4, 7, 8]
    with pytest.raises(UnaccountableFile, match="line 3 ends in a carriage return"):
        count_csv_bytes(b"a,b\n1,2\n3,4\r5,6\n")


def test_mixed_line_ends_fail_the_file_naming_the_line(tmp_path):
    """DuckDB's reader takes one kind of line end per file and stops with "invalid state" at
    another: the count names the line instead."""
    s = make_settings(tmp_path)
    drop(s, "orders", "a.csv", "\n".join(orders_csv(3)) + "\rO9,2024-01-01,9,\n")
    drop(s, "orders", "b.csv", "\n".join(orders_csv(3)) + "\r\nO9,2024-01-01,9,\n")
    drop(s, "orders", "c.csv", "\r\n".join(orders_csv(2)) + "\r\n\nO9,2024-01-01,9,\r\n")
    assert sorted((f.file, f.error) for f in load_source(s, "orders").files) == [
        ("orders/a.csv", "orders/a.csv: line 4 ends in a carriage return without a line feed (mixed or old Mac "
                         "line ends); save the file with LF or CRLF line ends"),
        ("orders/b.csv", "orders/b.csv: line 4 ends in CRLF where the lines before end in LF (mixed line ends); "
                         "save the file with one kind of line end"),
        ("orders/c.csv", "orders/c.csv: line 4 ends in LF where the lines before end in CRLF (mixed line ends); "
                         "save the file with one kind of line end"),
    ]


def test_crlf_files_with_empty_lines_keep_exact_line_numbers(tmp_path):
    s = make_settings(tmp_path)
    drop(s, "orders", "o.csv", "\r\n".join(orders_csv(2) + ["", "", "O7,2024-01-01,7,", ""]))
    result = load_source(s, "orders")
    assert (result.rows_loaded, result.rows_rejected) == (3, 0)
    assert query(s, "SELECT order_id, _row_number FROM raw.orders ORDER BY 2") == [("O0", 2), ("O1", 3), ("O7", 6)]


# --- 2. duplication: names are names, only regular files inside the landing folder ------------

@pytest.mark.parametrize("name", ["*.csv", "x?.csv", "[ab].csv", "o'quote.csv"])
def test_a_file_name_is_never_a_pattern(tmp_path, name):
    s = make_settings(tmp_path)
    drop(s, "crm_deals", "a.csv", "deal_id,contact_id,created_at,deal_stage\n" +
         "".join(f"D{i},C{i},2024-01-01,open\n" for i in range(33)))
    drop(s, "crm_deals", "xa.csv", "deal_id,contact_id,created_at,deal_stage\nX1,C1,2024-01-01,won\n")
    drop(s, "crm_deals", name, "deal_id,contact_id,created_at,deal_stage\nP1,C1,2024-01-01,lost\n")
    result = load_source(s, "crm_deals")
    assert sorted((f.file, f.rows_loaded) for f in result.files) == sorted(
        [("crm_deals/a.csv", 33), ("crm_deals/xa.csv", 1), (f"crm_deals/{name}", 1)])
    assert query(s, "SELECT count(*), count(DISTINCT deal_id) FROM raw.crm_deals") == [(35, 35)]
    assert query(s, f"SELECT deal_id FROM raw.crm_deals WHERE _source_file = 'crm_deals/{name.replace(chr(39), 2 * chr(39))}'"
                 ) == [("P1",)]


def test_symlinks_leading_outside_and_special_files_are_skipped_and_reported(tmp_path):
    s = make_settings(tmp_path)
    outside = tmp_path / "outside.csv"
    outside.write_text("deal_id,contact_id,created_at,deal_stage\nSECRET,C1,2024-01-01,won\n")
    folder = s.landing_dir / "crm_deals"
    folder.mkdir(parents=True)
    (folder / "passwd.csv").symlink_to("/etc/passwd")
    (folder / "outside.csv").symlink_to(outside)
    os.mkfifo(folder / "pipe.csv")  # reading it would block for ever
    drop(s, "crm_deals", "real.csv", "deal_id,contact_id,created_at,deal_stage\nD1,C1,2024-01-01,open\n")
    (folder / "inside_link.csv").symlink_to(folder / "real.csv")  # inside: read (a duplicate here)
    (s.landing_dir / "elsewhere").mkdir()
    (folder / "sub").symlink_to(s.landing_dir / "elsewhere")
    result = load_source(s, "crm_deals")
    assert sorted((f.file, f.status, f.error) for f in result.files) == [
        ("crm_deals/inside_link.csv", "loaded", None),
        ("crm_deals/outside.csv", "skipped", "crm_deals/outside.csv: skipped: a symlink leading outside the landing folder"),
        ("crm_deals/passwd.csv", "skipped", "crm_deals/passwd.csv: skipped: a symlink leading outside the landing folder"),
        ("crm_deals/pipe.csv", "skipped", "crm_deals/pipe.csv: skipped: not a regular file"),
        ("crm_deals/real.csv", "duplicate", None),
        ("crm_deals/sub", "skipped", "crm_deals/sub: skipped: a symlinked folder (not followed)"),
    ]
    assert query(s, "SELECT deal_id FROM raw.crm_deals") == [("D1",)]
    assert query(s, "SELECT file_name, status FROM raw._file_issues ORDER BY 1") == [
        ("crm_deals/outside.csv", "skipped"), ("crm_deals/passwd.csv", "skipped"),
        ("crm_deals/pipe.csv", "skipped"), ("crm_deals/sub", "skipped")]


# --- 5. one bad file never stops a source ----------------------------------------------------

def test_a_truncated_gzip_fails_alone_naming_the_line_and_later_files_load(tmp_path):
    s = make_settings(tmp_path)
    big = "\n".join(orders_csv(5000)) + "\n"
    packed = gzip.compress(big.encode())
    drop(s, "orders", "a_cut.csv.gz", packed[: len(packed) // 2])
    drop(s, "orders", "b_later.csv", "\n".join(orders_csv(2, start=9000)) + "\n")
    result = load_source(s, "orders")
    by_file = {f.file: f for f in result.files}
    cut = by_file["orders/a_cut.csv.gz"]
    assert cut.status == "failed"
    assert cut.error.startswith("orders/a_cut.csv.gz: truncated gzip data: the file ends inside line ")
    line = int(cut.error.rsplit(" ", 1)[1])
    assert 1 < line < 5002
    assert (by_file["orders/b_later.csv"].status, by_file["orders/b_later.csv"].rows_loaded) == ("loaded", 2)
    # every later run says the same, and still loads what else arrives
    drop(s, "orders", "c_next.csv", "\n".join(orders_csv(1, start=9100)) + "\n")
    again = {f.file: f for f in load_source(s, "orders").files}
    assert again["orders/a_cut.csv.gz"].error == cut.error and again["orders/c_next.csv"].rows_loaded == 1


def test_json_keys_that_are_empty_or_differ_only_in_case_keep_their_own_values(tmp_path):
    s = make_settings(tmp_path)
    lines = [{"event_at": "2024-01-01T10:00:00Z", "anonymous_id": "a1", "event_name": "page_view",
              "": "empty key", "Plan": "upper", "plan": "lower"}]
    drop(s, "web_events", "e.ndjson", "".join(json.dumps(e) + "\n" for e in lines))
    [f] = load_source(s, "web_events").files
    assert (f.status, f.rows_loaded) == ("loaded", 1)
    assert query(s, "SELECT anonymous_id, _extra ->> 'Plan', _extra ->> 'plan', _extra ->> 'column_4' "
                    "FROM raw.web_events") == [("a1", "upper", "lower", "empty key")]


@pytest.mark.parametrize("content, why", [
    ("order_id,ordered_at,total_amount\nO1,2024-01-01,1\n".encode("utf-16"),
     "is UTF-16 text; save the export as UTF-8 (or Windows-1252)"),
    ("order_id,ordered_at,total_amount\nO1,2024-01-01,1\n".encode("utf-16-le"),
     "holds binary data (a NUL byte on line 1): not a CSV or JSON text file (UTF-16 text must be saved as UTF-8)"),
    (bytes(range(256)) * 4,
     "holds binary data (a NUL byte on line 1): not a CSV or JSON text file (UTF-16 text must be saved as UTF-8)"),
])
def test_binary_and_utf16_files_get_a_message_that_says_so(tmp_path, content, why):
    s = make_settings(tmp_path)
    drop(s, "orders", "o.csv", content)
    [f] = load_source(s, "orders").files
    assert (f.status, f.error) == ("failed", f"orders/o.csv: {why}")


def test_a_json_document_that_is_not_valid_names_line_and_column(tmp_path):
    s = make_settings(tmp_path)
    drop(s, "surveys", "s.json", '[\n {"responded_at": "2024-01-01", "survey_type": "nps", "score": 9},\n {"x": }\n]')
    [f] = load_source(s, "surveys").files
    assert f.error == "surveys/s.json: not valid JSON: Expecting value at line 3, column 8"


def test_counts_agree_on_a_parallel_read_of_a_big_quoted_file(tmp_path):
    """A 25 MB CSV with every field quoted, quoted line breaks and doubled quotes: the fast count
    (quote parity, several 8 MB chunks) and DuckDB's parallel reader agree on every record."""
    s = make_settings(tmp_path)
    rows = ['"order_id","ordered_at","total_amount","email"']
    for i in range(120_000):
        note = f'line one\nline "two" of {i}' if i % 1000 == 7 else f'say ""hi"" {i}'
        rows.append(f'"O{i}","2024-01-01T10:00:00Z","{i % 50}.5","{note}"'.replace('"two"', '""two""'))
    drop(s, "orders", "q.csv", "\n".join(rows) + "\n")
    result = load_source(s, "orders")
    assert (result.rows_loaded, result.rows_rejected) == (120_000, 0)
    got = np.array(query(s, "SELECT _row_number FROM raw.orders ORDER BY CAST(substr(order_id, 2) AS BIGINT)"))[:, 0]
    extra_before = np.array([(i + 992) // 1000 for i in range(120_000)])  # one extra line per earlier note
    assert (got == np.arange(120_000) + 2 + extra_before).all()
