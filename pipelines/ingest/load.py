"""Load landing files into schema ``raw`` with the load guarantees of SPEC section 2.

Per file, in one DuckDB transaction:

1. the file is read by DuckDB as text (CSV with a sniffed delimiter, NDJSON,
   JSON array or Parquet; gzip; legacy encodings transcoded to UTF-8 first),
   one row per record in file order (its line number);
2. headers are matched to the source's canonical columns (case-insensitive,
   ignoring spaces, ``-`` and ``_``); a missing required column fails the file
   and nothing of it is written; unknown columns are kept in ``_extra`` (JSON);
3. every value is parsed to its column type (``pipelines.ingest.parse``) while the
   records are inserted into ``raw.<source>`` (one pass over the file); a record
   with an unparseable value or a blank required value is then moved to
   ``raw.rejected_rows`` (source, file, line, reason; never the row's text);
4. the file's content hash is recorded in ``raw._manifest``: a file with a
   hash already there (any name) is skipped.
"""
from __future__ import annotations

import datetime as dt
import gzip
import json
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from pipelines.config import Settings
from pipelines.erase import RECORD_KEYS, erased_rows_condition
from pipelines.ingest import dialects
from pipelines.ingest.files import (
    FileFormatError,
    FileInfo,
    inspect_file,
    list_landing_files,
    read_first_line,
    sniff_delimiter,
    split_header,
    transcode_to_utf8,
)
from pipelines.ingest.parse import (
    DECIMAL_COMMA_PATTERN,
    SQL_TYPES,
    has_offset_sql,
    quote_ident,
    quote_literal,
    timestamp_parts_sql,
    value_sql,
)
from pipelines.sources import INTEGER, MONEY, NUMBER, SOURCES, TEXT, TIMESTAMP, Source

JSON_LINE_DELIMITER = "\x1f"  # never appears unescaped in valid JSON text


class FileLoadError(ValueError):
    """A whole file cannot be loaded; the message names the file (and column)."""


@dataclass
class FileLoad:
    file: str
    file_hash: str
    status: str  # loaded | duplicate | failed
    rows_loaded: int = 0
    rows_rejected: int = 0
    extra_columns: list[str] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0
    size: int = 0
    dialect: str | None = None  # e.g. shopify_orders; None for canonical files
    rows_erased: int = 0  # rows of persons erased earlier (clm erase): dropped, not loaded


@dataclass
class SourceLoadResult:
    source: str
    files: list[FileLoad]
    seconds: float

    @property
    def rows_loaded(self) -> int:
        return sum(f.rows_loaded for f in self.files)

    @property
    def rows_rejected(self) -> int:
        return sum(f.rows_rejected for f in self.files)

    @property
    def rejected_share(self) -> float:
        total = self.rows_loaded + self.rows_rejected
        return self.rows_rejected / total if total else 0.0

    @property
    def failed_files(self) -> list[FileLoad]:
        return [f for f in self.files if f.status == "failed"]

    @property
    def bytes_loaded(self) -> int:
        return sum(f.size for f in self.files if f.status == "loaded")


normalize_header = dialects.normalize  # one definition of header matching


def raw_table_ddl(source: Source) -> str:
    cols = [f"{quote_ident(c.name)} {SQL_TYPES[c.type]}" for c in source.columns]
    cols += [
        "_source_file VARCHAR NOT NULL",
        "_file_hash VARCHAR NOT NULL",
        "_row_number BIGINT NOT NULL",
        "_loaded_at TIMESTAMP NOT NULL",
        "_extra JSON",
    ]
    return f"CREATE TABLE IF NOT EXISTS raw.{source.name} (\n  " + ",\n  ".join(cols) + "\n)"


def ensure_raw_schema(con: duckdb.DuckDBPyConnection, source: Source) -> None:
    con.execute("CREATE SCHEMA IF NOT EXISTS raw")
    con.execute(raw_table_ddl(source))
    existing = {r[0] for r in con.execute(
        "SELECT column_name FROM information_schema.columns "
        f"WHERE table_schema = 'raw' AND table_name = {quote_literal(source.name)}").fetchall()}
    for c in source.columns:  # a column added to the contract later
        if c.name not in existing:
            con.execute(f"ALTER TABLE raw.{source.name} ADD COLUMN {quote_ident(c.name)} {SQL_TYPES[c.type]}")
    con.execute(
        """CREATE TABLE IF NOT EXISTS raw.rejected_rows (
             source VARCHAR NOT NULL, file_name VARCHAR NOT NULL, file_hash VARCHAR NOT NULL,
             line_number BIGINT, reason VARCHAR NOT NULL, rejected_at TIMESTAMP NOT NULL)"""
    )
    con.execute(
        """CREATE TABLE IF NOT EXISTS raw._manifest (
             file_hash VARCHAR PRIMARY KEY, source VARCHAR NOT NULL, file_name VARCHAR NOT NULL,
             file_size BIGINT NOT NULL, format VARCHAR NOT NULL, encoding VARCHAR,
             delimiter VARCHAR, decimal_comma BOOLEAN, rows_loaded BIGINT NOT NULL,
             rows_rejected BIGINT NOT NULL, extra_columns VARCHAR[], loaded_at TIMESTAMP NOT NULL,
             seconds DOUBLE, dialect VARCHAR, rows_erased BIGINT DEFAULT 0)"""
    )
    for column in ("dialect VARCHAR", "rows_erased BIGINT DEFAULT 0"):  # warehouses of older versions
        con.execute(f"ALTER TABLE raw._manifest ADD COLUMN IF NOT EXISTS {column}")


def connect(settings: Settings) -> duckdb.DuckDBPyConnection:
    settings.warehouse_dir.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(settings.warehouse_path))
    con.execute("SET TimeZone = 'UTC'")
    # FSST string compression roughly halves write throughput; the raw layer is written
    # once per file and read a few times, so it trades ~1.5x more space for ~1.8x faster loads.
    con.execute("SET disabled_compression_methods = 'fsst'")
    return con


def load_source(settings: Settings, source: str) -> SourceLoadResult:
    """Load every new file of one landing source; see the module docstring."""
    spec = SOURCES[source]
    started = time.perf_counter()
    files: list[FileLoad] = []
    con = connect(settings)
    try:
        ensure_raw_schema(con, spec)
        known = {r[0] for r in con.execute("SELECT file_hash FROM raw._manifest").fetchall()}
        for path in list_landing_files(settings.landing_dir, source):
            t0 = time.perf_counter()
            try:
                info = inspect_file(path, settings.landing_dir)
            except (FileFormatError, OSError) as exc:
                files.append(FileLoad(path.name, "", "failed", error=str(exc), size=0))
                continue
            if info.content_hash in known:
                files.append(FileLoad(info.relative_name, info.content_hash, "duplicate", size=info.size))
                continue
            try:
                result = load_file(con, settings, spec, info)
            except (FileLoadError, duckdb.Error) as exc:
                message = str(exc) if isinstance(exc, FileLoadError) else (
                    f"{info.relative_name}: cannot be read ({type(exc).__name__}: {_first_line(exc)})")
                files.append(FileLoad(info.relative_name, info.content_hash, "failed",
                                      error=message, size=info.size))
                continue
            result.seconds = time.perf_counter() - t0
            con.execute(f"UPDATE raw._manifest SET seconds = {result.seconds!r} "
                        f"WHERE file_hash = {quote_literal(info.content_hash)}")
            known.add(info.content_hash)
            files.append(result)
    finally:
        con.close()
    return SourceLoadResult(source, files, time.perf_counter() - started)


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""


def load_file(con: duckdb.DuckDBPyConnection, settings: Settings, spec: Source,
              info: FileInfo) -> FileLoad:
    """Load one file in one transaction; raise FileLoadError if it cannot be loaded."""
    loaded_at = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    with tempfile.TemporaryDirectory(dir=settings.warehouse_dir, prefix=".load-") as tmp:
        con.execute("BEGIN TRANSACTION")
        try:
            scan = _open_scan(con, info, Path(tmp))
            dialect = dialects.detect(spec.name, scan.headers)
            if dialect is not None:
                scan = _apply_dialect(con, spec, scan, dialect)
            result = _load_scan(con, settings, spec, info, scan, loaded_at)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        finally:
            for t in _TEMP_TABLES:
                con.execute(f"DROP TABLE IF EXISTS {t}")
    return result


_TEMP_TABLES = ("_rejects", "_rejects_scan", "_reader_rejects", "_reject_gaps", "_dialect_rows")


# --- step 1: a text scan of the file --------------------------------------------------------

@dataclass
class Scan:
    """A SELECT yielding text columns c0..cN (one per header) in file order."""

    headers: list[str]
    sql: str  # the scan itself
    sample_sql: str  # a cheap scan of the first records (for decimal-comma sniffing)
    line_column: bool  # True: the scan has a `_line` column; False: lines from the rows' order
    delimiter: str | None = None
    header_lines: int = 0  # lines before the first record (line_column False): 1 for CSV
    csv_reader: bool = False  # DuckDB's CSV reader may refuse records (see _csv_reader_rejects)
    # line_column False, JSON lines: a `_bad` column, non-null for a line that is no record:
    # _SKIPPED (blank) or the reason it is rejected (malformed)
    bad_column: bool = False
    dialect: str | None = None  # the export dialect the scan was rewritten from (None = canonical)
    known_extras: tuple[str, ...] = ()  # kept in _extra but known to the dialect: not reported


def _open_scan(con, info: FileInfo, tmp: Path) -> Scan:
    for t in _TEMP_TABLES:
        con.execute(f"DROP TABLE IF EXISTS {t}")
    if info.format == "csv":
        return _csv_scan(info, tmp)
    if info.format in ("ndjson", "json"):
        return _json_scan(con, info)
    if info.format == "parquet":
        return _parquet_scan(con, info, tmp)
    raise FileLoadError(f"{info.relative_name}: unsupported format {info.format}")


def _csv_scan(info: FileInfo, tmp: Path) -> Scan:
    path, compressed = info.path, info.compressed
    if info.encoding != "utf-8":
        path, compressed = transcode_to_utf8(info, tmp / "utf8.csv"), False
    header_line = read_first_line(path, compressed)
    if not header_line.strip():
        raise FileLoadError(f"{info.relative_name}: empty file or missing header line")
    delimiter = sniff_delimiter(header_line)
    headers = [h.strip().lstrip("\ufeff") for h in split_header(header_line, delimiter)]
    columns = "{" + ", ".join(f"'c{i}': 'VARCHAR'" for i in range(len(headers))) + "}"
    common = (f"{quote_literal(str(path))}, auto_detect = false, header = true, "
              f"delim = {quote_literal(delimiter)}, quote = '\"', escape = '\"', columns = {columns}, "
              f"compression = {quote_literal('gzip' if compressed else 'none')}, max_line_size = 10000000")
    return Scan(
        headers=headers,
        sql=(f"SELECT * FROM read_csv({common}, store_rejects = true, "
             f"rejects_table = '_rejects', rejects_scan = '_rejects_scan')"),
        sample_sql=f"SELECT * FROM read_csv({common}, ignore_errors = true) LIMIT 100000",
        line_column=False,
        delimiter=delimiter,
        header_lines=1,
        csv_reader=True,
    )


def _json_scan(con, info: FileInfo) -> Scan:
    compression = quote_literal("gzip" if info.compressed else "none")
    path = quote_literal(str(info.path))
    if info.encoding != "utf-8":
        raise FileLoadError(f"{info.relative_name}: JSON must be UTF-8 (found {info.encoding} bytes)")
    if info.format == "ndjson":
        scan = (f"SELECT j FROM read_csv({path}, auto_detect = false, header = false, "
                f"delim = {quote_literal(JSON_LINE_DELIMITER)}, quote = '', escape = '', "
                f"columns = {{'j': 'VARCHAR'}}, compression = {compression}, max_line_size = 100000000)")
    else:
        json_compression = quote_literal("gzip" if info.compressed else "uncompressed")
        scan = (f"SELECT json::VARCHAR AS j FROM read_json_objects({path}, format = 'array', "
                f"compression = {json_compression})")
    # a JSON object; most lines start with '{', so ltrim (which copies the line) runs on few
    quick_valid = "((starts_with(j, '{') AND json_valid(j)) OR (json_valid(j) AND starts_with(ltrim(j), '{')))"
    # Keys in order of first appearance: group records by their key list (few distinct lists).
    try:
        lists = [ks for (ks,) in con.execute(f"SELECT DISTINCT json_keys(j) FROM ({scan}) WHERE {quick_valid}").fetchall()]
    except duckdb.Error as exc:
        raise FileLoadError(f"{info.relative_name}: not valid {info.format.upper()} ({_first_line(exc)})") from exc
    if len(lists) > 1:  # first appearance among the first 100k records, then the rest by their text
        first = {tuple(ks): n for ks, n in con.execute(
            f"""SELECT ks, min(n) FROM (SELECT json_keys(j) AS ks, row_number() OVER () AS n
                FROM (SELECT j FROM ({scan}) LIMIT 100000) WHERE {quick_valid}) GROUP BY ks""").fetchall()}
        lists.sort(key=lambda ks: (first.get(tuple(ks), float("inf")), str(ks)))
    keys: list[str] = []
    for key_list in lists:
        keys += [k for k in key_list if k not in keys]
    con.execute("CREATE TEMP TABLE _reader_rejects (line BIGINT, reason VARCHAR)")
    # One JSON parse per record: every key at once into a struct of strings. Lines that are no
    # JSON object carry a reason in _bad (blank lines: skipped) and no values.
    structure = quote_literal(json.dumps({k: "VARCHAR" for k in keys}))
    select = "".join(f"struct_extract(_s, {quote_literal(k)}) AS c{i}, " for i, k in enumerate(keys))
    bad = (f"CASE WHEN {quick_valid} THEN NULL WHEN j IS NULL OR trim(j) = '' THEN {_SKIPPED} "
           "ELSE 'malformed JSON record (not a valid JSON object)' END")
    sql = (f"SELECT {select}_bad FROM (SELECT json_transform(CASE WHEN _bad IS NULL THEN j END, {structure}) AS _s, "
           f"_bad FROM (SELECT j, {bad} AS _bad FROM ({scan})))")
    return Scan(keys, sql, sql + " LIMIT 100000", line_column=False, bad_column=True)


def json_path_key(key: str) -> str:
    return '"' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _parquet_scan(con, info: FileInfo, tmp: Path) -> Scan:
    path = info.path
    if info.compressed:  # a gzip-wrapped Parquet file
        path = tmp / "file.parquet"
        with gzip.open(info.path, "rb") as src, open(path, "wb") as dst:
            shutil.copyfileobj(src, dst, 8 * 1024 * 1024)
    try:
        names = [r[0] for r in con.execute(
            f"DESCRIBE SELECT * FROM read_parquet({quote_literal(str(path))})").fetchall()]
    except duckdb.Error as exc:
        raise FileLoadError(f"{info.relative_name}: not a valid Parquet file ({_first_line(exc)})") from exc
    select = ", ".join(f"{quote_ident(n)}::VARCHAR AS c{i}" for i, n in enumerate(names))
    sql = (f"SELECT {select}, file_row_number + 1 AS _line "
           f"FROM read_parquet({quote_literal(str(path))}, file_row_number = true)")
    con.execute("CREATE TEMP TABLE _reader_rejects (line BIGINT, reason VARCHAR)")
    return Scan(names, sql, sql + " LIMIT 100000", line_column=True)


def _apply_dialect(con, spec: Source, scan: Scan, dialect: dialects.Dialect) -> Scan:
    """The scan rewritten from an export dialect into canonical columns (see
    pipelines.ingest.dialects). A CSV scan is first materialised with its line numbers:
    a dialect may combine several lines into one record (Shopify line items)."""
    if not scan.line_column:
        con.execute(f"CREATE TEMP TABLE _dialect_rows AS SELECT * FROM ({scan.sql})")
        first = con.execute("SELECT min(rowid) FROM _dialect_rows").fetchone()[0] or 0
        numbered = f"(SELECT *, rowid - {first} + 1 AS _k FROM _dialect_rows) p"
        if scan.csv_reader and _csv_reader_rejects(con, len(scan.headers)):
            line, join = _CSV_LINE, _CSV_LINE_JOIN
        else:
            line, join = f"p._k + {scan.header_lines}", ""
        if scan.bad_column:  # lines that are no record are rejected (or skipped) here
            con.execute("DROP TABLE IF EXISTS _reader_rejects")
            con.execute(f"""CREATE TEMP TABLE _reader_rejects AS SELECT {line} AS line, p._bad AS reason
                            FROM {numbered} {join} WHERE p._bad IS NOT NULL AND p._bad <> {_SKIPPED}""")
            sql = f"SELECT p.* EXCLUDE (_k, _bad), {line} AS _line FROM {numbered} {join} WHERE p._bad IS NULL"
        else:
            sql = f"SELECT p.* EXCLUDE (_k), {line} AS _line FROM {numbered} {join}"
        scan = Scan(scan.headers, sql, sql + " LIMIT 100000", line_column=True, delimiter=scan.delimiter)
    out = dialects.rewrite(dialect, scan.headers, scan.sql, spec.column_names)
    return Scan(out.headers, out.sql, out.sql + " LIMIT 100000", line_column=True, delimiter=scan.delimiter,
                dialect=dialect.name, known_extras=out.known_extras)


# Line k (file order) of a CSV whose reader refused some lines (see _csv_reader_rejects).
_CSV_LINE = "p._k + 1 + coalesce(g.j, 0)"
_CSV_LINE_JOIN = "ASOF LEFT JOIN _reject_gaps g ON p._k > g.g"


# --- steps 2-4: map, parse, split, record ---------------------------------------------

def map_headers(spec: Source, headers: list[str], file_name: str) -> tuple[dict[str, int], dict[str, int]]:
    """Canonical column -> position, and extra header -> position."""
    canonical = {normalize_header(c): c for c in spec.column_names}
    mapped: dict[str, int] = {}
    extras: dict[str, int] = {}
    for i, h in enumerate(headers):
        name = canonical.get(normalize_header(h))
        if name is None:
            key = h or f"column_{i + 1}"
            while key in extras:
                key += "_"
            extras[key] = i
        elif name in mapped:
            raise FileLoadError(f"{file_name}: column '{name}' appears twice in the header")
        else:
            mapped[name] = i
    missing = [c for c in spec.required if c not in mapped]
    if missing:
        raise FileLoadError(
            f"{file_name}: missing required column '{missing[0]}'"
            + (f" (also missing: {', '.join(missing[1:])})" if missing[1:] else "")
        )
    return mapped, extras


def _sniff_decimal_comma(con, scan: Scan, spec: Source, mapped: dict[str, int]) -> bool:
    numeric = [c for c in mapped if spec.column(c).type in (MONEY, NUMBER, INTEGER)]
    if not numeric:
        return False
    checks = " OR ".join(
        f"coalesce(bool_or(regexp_matches(c{mapped[c]}, {quote_literal(DECIMAL_COMMA_PATTERN)})), false)"
        for c in numeric)
    return bool(con.execute(f"SELECT {checks} FROM ({scan.sample_sql})").fetchone()[0])


def _load_scan(con, settings: Settings, spec: Source, info: FileInfo, scan: Scan,
               loaded_at: dt.datetime) -> FileLoad:
    mapped, extras = map_headers(spec, scan.headers, info.relative_name)
    decimal_comma = _sniff_decimal_comma(con, scan, spec, mapped)
    source_format = settings.source_date_format(spec.name)
    # Every record is parsed once, in layered projections so that every expression is
    # evaluated once per record: clean text -> offset flags and typed values -> timestamp
    # parts (naive ones stay local, <col>__local, and are shifted to UTC in the insert) -> reasons.
    clean, flags, typed, parts, final, problems = [], [], [], [], [], []
    for col in spec.columns:
        if col.name not in mapped:
            continue
        src, name = f"c{mapped[col.name]}", quote_ident(col.name)
        t = quote_ident("_t_" + col.name)  # trimmed text, NULL when blank
        if col.type == TEXT:
            final.append(f"{src} AS {name}")
        else:
            clean.append(f"nullif(trim({src}), '') AS {t}")
        if col.required:
            check = t if col.type != TEXT else f"nullif(trim({src}), '')"
            problems.append(f"CASE WHEN {check} IS NULL THEN 'missing required value in {col.name}' END")
        if col.type == TIMESTAMP:
            flag = quote_ident("_o_" + col.name)
            flags.append(f"{has_offset_sql(t)} AS {flag}")
            utc, local = timestamp_parts_sql(t, flag, source_format)
            utc_name, local_name = quote_ident(col.name + "__utc"), quote_ident(col.name + "__local")
            parts += [f"{utc} AS {utc_name}", f"{local} AS {local_name}"]
            final += [utc_name, local_name]
            value = f"coalesce({utc_name}, {local_name})"
        elif col.type != TEXT:
            typed.append(f"{value_sql(t, col.type, source_format=source_format, decimal_comma=decimal_comma)} AS {name}")
            final.append(name)
            value = name
        if col.type != TEXT:
            problems.append(f"CASE WHEN {t} IS NOT NULL AND {value} IS NULL THEN "
                            f"'cannot parse {col.name} as {col.type}' END")
    if extras:
        final.append("json_object(" + ", ".join(
            f"{quote_literal(name)}, c{i}" for name, i in extras.items()) + ") AS _extra")
    final.append((f"nullif(concat_ws('; ', {', '.join(problems)}), '')" if problems else "NULL::VARCHAR")
                 + " AS _reason")
    if scan.line_column:
        final.append("_line")
    if scan.bad_column:
        final.append("_bad")
    layered = f"SELECT *{''.join(', ' + c for c in clean)} FROM ({scan.sql})"
    for layer in (flags + typed, parts):
        if layer:
            layered = f"SELECT *, {', '.join(layer)} FROM ({layered})"
    parsed = f"SELECT {', '.join(final)} FROM ({layered})"
    # Rows of persons erased earlier (clm erase) are dropped and counted, never loaded: they
    # get a reason of their own, which takes precedence over parse problems.
    erased = erased_rows_condition(con, spec.name, set(mapped)) if spec.name in RECORD_KEYS else None
    reason = f"CASE WHEN {erased} THEN {_ERASED} ELSE _reason END" if erased else "_reason"
    if scan.bad_column:
        reason = f"coalesce(_bad, {reason})"
    # One pass: every record is read, parsed and inserted into raw once, in file order. A
    # rejected (or erased) record is inserted too, marked by a negative _row_number and its
    # reason in _extra; after the insert it is copied to raw.rejected_rows and deleted (all
    # inside this file's transaction). CSV scans have no line column: the rows' transaction-
    # local rowids follow file order, so their line numbers are set from them afterwards.
    # No joins here: they may reorder rows, and the CSV line numbers rely on the order.
    selects = []
    for col in spec.columns:
        name = quote_ident(col.name)
        if col.name not in mapped:
            selects.append(f"NULL::{SQL_TYPES[col.type]}")
        elif col.type == TIMESTAMP:
            local = f"p.{quote_ident(col.name + '__local')}"
            utc = _local_to_utc(con, local, settings.source_timezone(spec.name))
            selects.append(f"coalesce(p.{quote_ident(col.name + '__utc')}, {utc})")
        else:
            selects.append(f"p.{name}")
    ok = "p._r IS NULL"
    row_number = (f"CASE WHEN {ok} THEN p._line ELSE -p._line END" if scan.line_column
                  else f"CASE WHEN {ok} THEN 0 ELSE -1 END")
    extra = f"CASE WHEN {ok} THEN {'p._extra' if extras else 'NULL::JSON'} ELSE to_json(p._r) END"
    cols = ", ".join(quote_ident(c) for c in spec.column_names)
    source_lit, file_lit, hash_lit = (quote_literal(spec.name), quote_literal(info.relative_name),
                                      quote_literal(info.content_hash))
    at_lit = f"{quote_literal(loaded_at.isoformat(sep=' '))}::TIMESTAMP"
    inserted = con.execute(
        f"""INSERT INTO raw.{spec.name} ({cols}, _source_file, _file_hash, _row_number, _loaded_at, _extra)
            SELECT {', '.join(selects)}, {file_lit}, {hash_lit}, {row_number}, {at_lit}, {extra}
            FROM (SELECT *, {reason} AS _r FROM ({parsed})) p"""
    ).fetchone()[0]
    table = f"raw.{spec.name}"
    first = con.execute(f"SELECT min(rowid) FROM {table} WHERE _file_hash = {hash_lit}").fetchone()[0]
    scope = f"rowid >= {first or 0} AND _file_hash = {hash_lit}"  # this file's rows
    if inserted and not scan.line_column:
        sign = "CASE WHEN _row_number < 0 THEN -1 ELSE 1 END"
        if scan.csv_reader and _csv_reader_rejects(con, len(scan.headers)):
            con.execute(
                f"""UPDATE {table} SET _row_number = {sign} * s.line
                    FROM (SELECT p._row, {_CSV_LINE} AS line
                          FROM (SELECT rowid AS _row, rowid - {first} + 1 AS _k FROM {table} WHERE {scope}) p
                          {_CSV_LINE_JOIN}) s
                    WHERE {table}.rowid = s._row""")
        else:
            con.execute(f"UPDATE {table} SET _row_number = {sign} * (rowid - {first} + 1 + {scan.header_lines}) "
                        f"WHERE {scope}")
    elif scan.csv_reader:
        _csv_reader_rejects(con, len(scan.headers))
    bad, rows_erased = con.execute(
        f"SELECT count(*), count(*) FILTER ((_extra ->> '$') = {_ERASED}) FROM {table} "
        f"WHERE {scope} AND _row_number < 0").fetchone()
    rows_loaded = inserted - bad
    con.execute(
        f"""INSERT INTO raw.rejected_rows
            SELECT {source_lit}, {file_lit}, {hash_lit}, line, reason, {at_lit} FROM (
              SELECT -_row_number AS line, _extra ->> '$' AS reason FROM {table}
              WHERE {scope} AND _row_number < 0 AND (_extra ->> '$') NOT IN ({_ERASED}, {_SKIPPED})
              UNION ALL SELECT line, reason FROM _reader_rejects)
            ORDER BY line"""
    )
    if bad:
        con.execute(f"DELETE FROM {table} WHERE {scope} AND _row_number < 0")
    rows_rejected = con.execute(
        f"SELECT count(*) FROM raw.rejected_rows WHERE file_hash = {hash_lit}").fetchone()[0]
    # Literals, not bound parameters: binding Python values makes duckdb import pandas (seconds).
    def lit(value) -> str:
        if value is None:
            return "NULL"
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int):
            return str(value)
        return quote_literal(str(value))

    unknown = [e for e in extras if e not in scan.known_extras]  # reported; all extras are kept
    extra_list = "[" + ", ".join(quote_literal(e) for e in unknown) + "]::VARCHAR[]"
    values = [info.content_hash, spec.name, info.relative_name, info.size, info.format, info.encoding,
              scan.delimiter, decimal_comma, rows_loaded, rows_rejected]
    con.execute(
        "INSERT INTO raw._manifest (file_hash, source, file_name, file_size, format, encoding, delimiter, "
        "decimal_comma, rows_loaded, rows_rejected, extra_columns, loaded_at, seconds, dialect, rows_erased) "
        f"VALUES ({', '.join(lit(v) for v in values)}, {extra_list}, {at_lit}, NULL, {lit(scan.dialect)}, "
        f"{rows_erased})")
    return FileLoad(info.relative_name, info.content_hash, "loaded", rows_loaded, rows_rejected,
                    unknown, None, 0.0, info.size, dialect=scan.dialect, rows_erased=rows_erased)


def _csv_reader_rejects(con, n_fields: int) -> int:
    """Records DuckDB's CSV reader refused, and the gaps they leave in the line numbering.

    Record k (file order; temp-table rowids keep it) sits on line k + 1 + (rejected
    lines before it); g = good records before a rejected line. Returns how many.
    """
    con.execute(
        f"""CREATE TEMP TABLE _reader_rejects AS
            SELECT line, 'malformed CSV record: ' || lower(string_agg(DISTINCT error_type, ', '))
                   || ' (expected {n_fields} fields)' AS reason
            FROM _rejects GROUP BY line"""
    )
    con.execute(
        """CREATE TEMP TABLE _reject_gaps AS
           SELECT g, max(j) AS j FROM (
             SELECT line - row_number() OVER (ORDER BY line) - 1 AS g,
                    row_number() OVER (ORDER BY line) AS j
             FROM _reader_rejects) GROUP BY g"""
    )
    return con.execute("SELECT count(*) FROM _reader_rejects").fetchone()[0]


# reasons marking rows inside a load that are dropped without being recorded as rejected
_ERASED = "'erased person (clm erase)'"  # counted as rows_erased
_SKIPPED = "'blank line'"  # a blank line of a JSON-lines file
_TZ_RANGE = (dt.datetime(2000, 1, 1), dt.datetime(2040, 1, 1))  # local times outside: converted row by row
_TZ_RANGE_SQL = tuple(f"TIMESTAMP {quote_literal(t.isoformat(sep=' '))}" for t in _TZ_RANGE)
_tz_breaks: dict[str, list[tuple[dt.datetime, int]]] = {}


def _offset_sql(local_hour: str, timezone: str) -> str:
    """UTC offset of wall-clock hour ``local_hour`` in ``timezone``: the one definition of
    reading naive times in the source's timezone (ICU decides for skipped and repeated hours)."""
    return f"({local_hour} - timezone('UTC', timezone({quote_literal(timezone)}, {local_hour})))"


def _offset_changes(con, timezone: str) -> list[tuple[dt.datetime, int]]:
    """(local hour, offset in seconds from then on) at each change of the UTC offset within
    _TZ_RANGE, starting with the range's first hour; computed once per timezone and process."""
    if timezone not in _tz_breaks:
        lo, hi = _TZ_RANGE_SQL
        rows = con.execute(
            f"""SELECT h, off FROM (
                  SELECT h, off, lag(off) OVER (ORDER BY h) AS before FROM (
                    SELECT h, epoch({_offset_sql('h', timezone)})::BIGINT AS off
                    FROM range({lo}, {hi}, INTERVAL 1 HOUR) r(h)))
                WHERE before IS NULL OR off <> before ORDER BY h""").fetchall()
        _tz_breaks[timezone] = rows
    return _tz_breaks[timezone]


def _local_to_utc(con, local: str, timezone: str) -> str:
    """SQL for the UTC instant of naive wall-clock timestamp ``local`` read in ``timezone``: the
    offset of its hour (``_offset_sql``), found by a binary search over the offset changes
    written out as nested CASEs (a few comparisons per row, no ICU call, no join: the rows keep
    their order); outside _TZ_RANGE the offset is computed for each row."""
    changes = _offset_changes(con, timezone)

    def search(lo: int, hi: int) -> str:
        if lo == hi:
            return f"INTERVAL '{changes[lo][1]} seconds'"
        mid = (lo + hi + 1) // 2
        at = quote_literal(changes[mid][0].isoformat(sep=" "))
        return f"CASE WHEN {local} < TIMESTAMP {at} THEN {search(lo, mid - 1)} ELSE {search(mid, hi)} END"

    lo, hi = _TZ_RANGE_SQL
    fallback = _offset_sql(f"date_trunc('hour', {local})", timezone)
    return (f"{local} - CASE WHEN {local} >= {lo} AND {local} < {hi} "
            f"THEN {search(0, len(changes) - 1)} ELSE {fallback} END")
