"""Property: whatever is done to a landing file (cut short, a stray quote, flipped bytes, a
line end added, another encoding, gzip cut short), after its load every record is in exactly
one place (raw or raw.rejected_rows, at its own line) or the file failed as a whole and
nothing of it was written.

The records of the damaged file are found by a third reader (Python's csv module, or a split
into lines for NDJSON), not by the loader's own count: where the loader's reader and count
would miss records, the oracle sees them.
"""
from __future__ import annotations

import csv
import gzip
import io
import json
import tempfile
import zlib
from pathlib import Path

import duckdb
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.config import Settings, resolve_vars
from pipelines.raw import load_source

VARS = resolve_vars({"as_of_date": "2025-12-31"})

text_value = st.text(alphabet=st.sampled_from(list("abcxyz019 ,;\"'\n\r\täöü€-@.")), max_size=12)


@st.composite
def csv_file(draw) -> bytes:
    n = draw(st.integers(0, 25))
    end = draw(st.sampled_from(["\n", "\r\n"]))
    lines = ["order_id,ordered_at,total_amount,email"]
    for i in range(n):
        email = draw(text_value)
        quoted = '"' + email.replace('"', '""') + '"'
        email = quoted if draw(st.booleans()) or any(c in email for c in ',"\r\n') else email
        amount = draw(st.sampled_from([f"{i}.5", "abc", "", "7"]))
        lines.append(f"O{i},2024-0{1 + i % 9}-1{i % 10}T10:00:00Z,{amount},{email}")
        if draw(st.integers(0, 9)) == 0:
            lines.append("")  # an empty line
    text = end.join(lines) + (end if draw(st.booleans()) else "")
    return text.encode("utf-8")


@st.composite
def ndjson_file(draw) -> bytes:
    n = draw(st.integers(0, 25))
    end = draw(st.sampled_from(["\n", "\r\n"]))
    lines = []
    for i in range(n):
        event = {"event_at": f"2024-01-0{1 + i % 9}T10:00:00Z", "anonymous_id": f"a{i % 4}",
                 "event_name": draw(st.sampled_from(["page_view", "login", ""])), "email": draw(text_value)}
        lines.append(json.dumps(event, ensure_ascii=draw(st.booleans())))
        if draw(st.integers(0, 9)) == 0:
            lines.append(draw(st.sampled_from(["", "   "])))
    return (end.join(lines) + (end if draw(st.booleans()) else "")).encode("utf-8")


@st.composite
def damage(draw, data: bytes) -> tuple[bytes, bool]:
    """The file after 0-3 random injuries, and whether it is gzip-compressed."""
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(data)))
        kind = draw(st.sampled_from(["cut", "quote", "flip", "delete", "newline", "cr"]))
        if kind == "cut":
            data = data[:at]
        elif kind == "quote":
            data = data[:at] + b'"' + data[at:]
        elif kind == "flip" and data:
            at = min(at, len(data) - 1)
            data = data[:at] + bytes([draw(st.integers(0, 255))]) + data[at + 1:]
        elif kind == "delete":
            data = data[:at] + data[at + 1:]
        elif kind == "newline":
            data = data[:at] + b"\n" + data[at:]
        elif kind == "cr":
            data = data[:at] + b"\r" + data[at:]
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "latin-1", "utf-16"]))
    if encoding != "utf-8":
        try:
            data = data.decode("utf-8").encode(encoding)
        except (UnicodeDecodeError, UnicodeEncodeError):
            pass
    compressed = draw(st.booleans())
    if compressed:
        data = gzip.compress(data)
        if draw(st.booleans()):
            data = data[: draw(st.integers(0, len(data)))]
    return data, compressed


def records_by_oracle(data: bytes, compressed: bool, fmt: str) -> list[int] | None:
    """Start lines of the records (header excluded), or None if the file is no readable text."""
    if compressed:
        try:
            data = gzip.decompress(data)
        except (EOFError, OSError, zlib.error):
            return None
    if data.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in data:
        return None
    text = data.decode("utf-8") if _is_utf8(data) else data.decode("latin-1")
    if fmt == "ndjson":
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        return [i + 1 for i, line in enumerate(lines) if line.removesuffix("\r").strip(" ")]
    reader = csv.reader(io.StringIO(text, newline="\n"), strict=False)  # lines end in LF (or CRLF)
    starts, last = [], 0
    try:
        for row in reader:
            if row:
                starts.append(last + 1)
            last = reader.line_num
    except csv.Error:
        return None
    return starts[1:]


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def check_load(data: bytes, compressed: bool, fmt: str) -> None:
    source, name = ("orders", "o.csv") if fmt == "csv" else ("web_events", "e.ndjson")
    with tempfile.TemporaryDirectory() as tmp:
        s = Settings(Path(tmp) / "landing", Path(tmp) / "warehouse", VARS)
        folder = s.landing_dir / source
        folder.mkdir(parents=True)
        name += ".gz" if compressed else ""
        (folder / name).write_bytes(data)
        [result] = load_source(s, source).files
        con = duckdb.connect(str(s.warehouse_path), read_only=True)
        try:
            raw_lines = [r[0] for r in con.execute(f"SELECT _row_number FROM raw.{source}").fetchall()]
            rejected = [r[0] for r in con.execute("SELECT line_number FROM raw.rejected_rows").fetchall()]
            manifest = con.execute("SELECT count(*) FROM raw._manifest").fetchone()[0]
        finally:
            con.close()
    relative = f"{source}/{name}"
    if result.status == "failed":
        assert result.error.startswith(relative + ": "), result.error
        assert "\n" not in result.error
        assert (raw_lines, rejected, manifest) == ([], [], 0)
        return
    assert result.status == "loaded", result
    expected = records_by_oracle(data, compressed, fmt)
    assert expected is not None, "the loader loaded a file no reader can read"
    assert sorted(raw_lines + rejected) == expected
    assert result.rows_loaded + result.rows_rejected == len(expected)


SETTINGS = settings(max_examples=120, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@SETTINGS
@given(st.data())
def test_damaged_csv_files_are_accounted_for_or_fail_whole(data):
    damaged, compressed = data.draw(damage(data.draw(csv_file())))
    check_load(damaged, compressed, "csv")


@SETTINGS
@given(st.data())
def test_damaged_ndjson_files_are_accounted_for_or_fail_whole(data):
    damaged, compressed = data.draw(damage(data.draw(ndjson_file())))
    check_load(damaged, compressed, "ndjson")
