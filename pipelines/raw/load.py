"""Load landing files into schema ``raw`` with the load guarantees of CONTRACT section 2.

Per file, in one DuckDB transaction:

1. the file is read by DuckDB as text (CSV with a sniffed delimiter, NDJSON,
   JSON array or Parquet; gzip; legacy encodings transcoded to UTF-8 first),
   one row per record in file order (its line number);
2. headers are matched to the source's canonical columns (case-insensitive,
   ignoring spaces, ``-`` and ``_``); a missing required column fails the file
   and nothing of it is written; unknown columns are kept in ``_extra`` (JSON);
3. every value is parsed to its column type (``pipelines.raw.parse``) while the
   records are inserted into ``raw.<source>`` (one pass over the file); a record
   with an unparseable value or a blank required value is then moved to
   ``raw.rejected_rows`` (source, file, line, reason; never the row's text);
4. the records are accounted for: the rows the reader produced plus those it refused must
   equal the records counted from the file's bytes without DuckDB
   (``pipelines.raw.records``), and no refused record may span several lines (a quote
   left open swallows the lines after it); otherwise the whole file fails, named, with the
   line where reading stopped, and nothing of it is written;
5. the file's content hash is recorded in ``raw._manifest``: a file with a
   hash already there (any name) is skipped.

A file that fails (unreadable, unaccountable, missing a required column) fails alone: the
source's other files still load, and the failure is recorded in ``raw._file_issues`` (as are
files skipped by ``pipelines.raw.files.list_landing_files``) until the next load of the
source, so that ``marts.fct_source_loads`` shows it.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import gzip
import json
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np

from pipelines.config import Settings
from pipelines.privacy.erasure import RECORD_KEYS, ErasureError, erased_rows_condition
from pipelines.raw import dialects
from pipelines.raw.files import (
    FileFormatError,
    FileInfo,
    count_with_csv_module,
    exact_reader_path,
    inspect_file,
    list_landing_files,
    open_bytes,
    open_landing_file,
    read_first_line,
    split_header,
    transcode_to_utf8,
)
from pipelines.raw.records import Count
from pipelines.raw.parse import (
    DECIMAL_COMMA_PATTERN,
    SQL_TYPES,
    has_offset_sql,
    local_to_utc_sql,
    timestamp_parts_sql,
    value_sql,
)
from pipelines.contract import INTEGER, MONEY, NUMBER, SOURCES, TEXT, TIMESTAMP, Source
from pipelines.warehouse import LOAD_TEMP_PREFIX, connect, quote_ident, quote_literal

JSON_LINE_DELIMITER = "\x1f"  # never appears unescaped in valid JSON text


class FileLoadError(ValueError):
    """A whole file cannot be loaded; the message names the file (and column)."""


@dataclass
class FileLoad:
    file: str
    file_hash: str
    status: str  # loaded | duplicate | failed | skipped (see pipelines.raw.files.list_landing_files)
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
    def skipped_files(self) -> list[FileLoad]:
        return [f for f in self.files if f.status == "skipped"]

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
    con.execute(
        """CREATE TABLE IF NOT EXISTS raw._file_issues (
             source VARCHAR NOT NULL, file_name VARCHAR NOT NULL, file_hash VARCHAR,
             status VARCHAR NOT NULL, reason VARCHAR NOT NULL, seen_at TIMESTAMP NOT NULL)"""
    )


def load_source(settings: Settings, source: str) -> SourceLoadResult:
    """Load every new file of one landing source; see the module docstring."""
    spec = SOURCES[source]
    started = time.perf_counter()
    listing = list_landing_files(settings.landing_dir, source)
    files = [FileLoad(s.relative_name, "", "skipped", error=f"{s.relative_name}: skipped: {s.reason}")
             for s in listing.skipped]
    con = connect(settings.warehouse_path)
    try:
        ensure_raw_schema(con, spec)
        known = {r[0] for r in con.execute("SELECT file_hash FROM raw._manifest").fetchall()}
        for path in listing.files:
            files.append(_load_one(con, settings, spec, path, known))
        _record_file_issues(con, source, files)
    finally:
        con.close()
    return SourceLoadResult(source, files, time.perf_counter() - started)


def _load_one(con, settings: Settings, spec: Source, path: Path, known: set[str]) -> FileLoad:
    """Load one landing file; never raises for the file's own problems (they fail it alone)."""
    t0 = time.perf_counter()
    name = path.relative_to(settings.landing_dir).as_posix()
    info = None
    try:
        with open_landing_file(path, settings.landing_dir) as fd:
            info = inspect_file(path, settings.landing_dir, fd)
            if info.content_hash in known:
                return FileLoad(info.relative_name, info.content_hash, "duplicate", size=info.size)
            result = load_file(con, settings, spec, info)
    except (FileLoadError, FileFormatError, ErasureError) as exc:
        return FileLoad(name, info.content_hash if info else "", "failed", error=str(exc),
                        size=info.size if info else 0)
    except Exception as exc:  # noqa: BLE001 -- whatever a reader raises fails this file only
        text = _first_line(exc)
        if info is not None and info.reader:
            text = text.replace(info.reader, name)
        return FileLoad(name, info.content_hash if info else "", "failed",
                        error=f"{name}: cannot be read ({type(exc).__name__}: {text})",
                        size=info.size if info else 0)
    result.seconds = time.perf_counter() - t0
    con.execute(f"UPDATE raw._manifest SET seconds = {result.seconds!r} "
                f"WHERE file_hash = {quote_literal(info.content_hash)}")
    known.add(info.content_hash)
    return result


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""


def _record_file_issues(con, source: str, files: list[FileLoad]) -> None:
    """Replace the source's failed and skipped files in raw._file_issues with this load's."""
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    rows = [
        "(" + ", ".join([quote_literal(source), quote_literal(f.file),
                         quote_literal(f.file_hash) if f.file_hash else "NULL",
                         quote_literal(f.status), quote_literal(f.error or f.status),
                         f"{quote_literal(now.isoformat(sep=' '))}::TIMESTAMP"]) + ")"
        for f in files if f.status in ("failed", "skipped")]
    con.execute("BEGIN TRANSACTION")
    con.execute(f"DELETE FROM raw._file_issues WHERE source = {quote_literal(source)}")
    if rows:
        con.execute(f"INSERT INTO raw._file_issues VALUES {', '.join(rows)}")
    con.execute("COMMIT")


def load_file(con: duckdb.DuckDBPyConnection, settings: Settings, spec: Source,
              info: FileInfo) -> FileLoad:
    """Load one file in one transaction; raise FileLoadError if it cannot be loaded."""
    loaded_at = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    with tempfile.TemporaryDirectory(dir=settings.warehouse_dir, prefix=LOAD_TEMP_PREFIX) as tmp, \
            contextlib.ExitStack() as opened:
        con.execute("BEGIN TRANSACTION")
        try:
            scan = _open_scan(con, info, Path(tmp), opened)
            dialect = dialects.detect(spec.name, scan.headers)
            if dialect is not None:
                scan = _apply_dialect(con, spec, info, scan, dialect)
            result = _load_scan(con, settings, spec, info, scan, loaded_at)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        finally:
            _drop_temp_tables(con)
    return result


_TEMP_TABLES = ("_rejects", "_rejects_scan", "_reader_rejects", "_gaps", "_multi", "_dialect_rows")
_ARROW_VIEWS = ("_blank_rows_src", "_multi_rows_src")


def _drop_temp_tables(con) -> None:
    for t in _TEMP_TABLES:
        con.execute(f"DROP TABLE IF EXISTS {t}")
    for v in _ARROW_VIEWS:
        with contextlib.suppress(Exception):
            con.unregister(v)


# --- step 1: a text scan of the file --------------------------------------------------------

@dataclass
class Scan:
    """A SELECT yielding text columns c0..cN (one per header) in file order."""

    headers: list[str]
    sql: str  # the scan itself
    sample_sql: str  # a cheap scan of the first records (for decimal-comma sniffing)
    line_column: bool  # True: the scan has a `_line` column; False: lines from the rows' order
    count: Count  # the records counted without DuckDB (rows as DuckDB numbers them)
    delimiter: str | None = None
    header_lines: int = 0  # lines before the first record (line_column False): 1 for CSV
    csv_reader: bool = False  # DuckDB's CSV reader may refuse records (see _reader_rejects)
    # line_column False, JSON lines: a `_bad` column, non-null for a line that is no record:
    # _SKIPPED (blank) or the reason it is rejected (malformed)
    bad_column: bool = False
    dialect: str | None = None  # the export dialect the scan was rewritten from (None = canonical)
    known_extras: tuple[str, ...] = ()  # kept in _extra but known to the dialect: not reported
    produced: int | None = None  # rows the reader produced (set once the reader has run)
    lines: "LineMap | None" = None  # how produced rows map to file lines (set once the reader has run)

    @property
    def expected(self) -> int:
        """Records the file holds: the counted ones but the header."""
        return self.count.records - self.header_lines


def _open_scan(con, info: FileInfo, tmp: Path, opened: contextlib.ExitStack) -> Scan:
    _drop_temp_tables(con)
    if info.format == "csv":
        return _csv_scan(info, tmp, opened)
    if info.format in ("ndjson", "json"):
        return _json_scan(con, info)
    if info.format == "parquet":
        return _parquet_scan(con, info, tmp, opened)
    raise FileLoadError(f"{info.relative_name}: unsupported format {info.format}")


def _csv_scan(info: FileInfo, tmp: Path, opened: contextlib.ExitStack) -> Scan:
    count = info.count if info.count is not None else count_with_csv_module(info)
    path, compressed = info.reader, info.compressed
    if info.encoding != "utf-8":
        target = transcode_to_utf8(info, tmp / "utf8.csv")
        path, compressed = opened.enter_context(exact_reader_path(target)), False
    header_line = read_first_line(path, compressed)
    if not header_line.strip():
        raise FileLoadError(f"{info.relative_name}: empty file or missing header line")
    delimiter = info.delimiter or ","
    headers = [h.strip().lstrip("\ufeff") for h in split_header(header_line, delimiter)]
    columns = "{" + ", ".join(f"'c{i}': 'VARCHAR'" for i in range(len(headers))) + "}"
    common = (f"{quote_literal(path)}, auto_detect = false, header = true, "
              f"delim = {quote_literal(delimiter)}, quote = '\"', escape = '\"', columns = {columns}, "
              f"compression = {quote_literal('gzip' if compressed else 'none')}, max_line_size = 10000000")
    return Scan(
        headers=headers,
        sql=(f"SELECT * FROM read_csv({common}, store_rejects = true, "
             f"rejects_table = '_rejects', rejects_scan = '_rejects_scan')"),
        sample_sql=f"SELECT * FROM read_csv({common}, ignore_errors = true) LIMIT 100000",
        line_column=False,
        count=count,
        delimiter=delimiter,
        header_lines=1,
        csv_reader=True,
    )


def _json_scan(con, info: FileInfo) -> Scan:
    compression = quote_literal("gzip" if info.compressed else "none")
    path = quote_literal(info.reader)
    if info.encoding != "utf-8":
        raise FileLoadError(f"{info.relative_name}: JSON must be UTF-8 (found {info.encoding} bytes)")
    if info.format == "ndjson":
        count = info.count
        scan = (f"SELECT j FROM read_csv({path}, auto_detect = false, header = false, "
                f"delim = {quote_literal(JSON_LINE_DELIMITER)}, quote = '', escape = '', "
                f"columns = {{'j': 'VARCHAR'}}, compression = {compression}, max_line_size = 100000000)")
    else:
        count = _count_json_array(info)
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
    # One JSON parse per record: every key at once into a struct of strings, its fields taken
    # by position (a key may be empty, or differ from another only in case, which DuckDB's
    # field names cannot tell apart). Lines that are no JSON object carry a reason in _bad
    # (blank lines: skipped) and no values.
    structure = quote_literal(json.dumps({k: "VARCHAR" for k in keys}))
    select = "".join(f"struct_extract_at(_s, {i + 1}) AS c{i}, " for i in range(len(keys)))
    bad = (f"CASE WHEN {quick_valid} THEN NULL WHEN j IS NULL OR trim(j) = '' THEN {_SKIPPED} "
           "ELSE 'malformed JSON record (not a valid JSON object)' END")
    sql = (f"SELECT {select}_bad FROM (SELECT json_transform(CASE WHEN _bad IS NULL THEN j END, {structure}) AS _s, "
           f"_bad FROM (SELECT j, {bad} AS _bad FROM ({scan})))")
    return Scan(keys, sql, sql + " LIMIT 100000", line_column=False, count=count, bad_column=True)


def _count_json_array(info: FileInfo) -> Count:
    """The elements of a JSON array file, counted by Python's json module."""
    try:
        with open_bytes(info) as fh:
            data = json.load(fh)
    except json.JSONDecodeError as exc:
        raise FileLoadError(f"{info.relative_name}: not valid JSON: {exc.msg} at line {exc.lineno}, "
                            f"column {exc.colno}") from None
    except (EOFError, OSError) as exc:
        raise FileLoadError(f"{info.relative_name}: cannot be read ({type(exc).__name__}: {_first_line(exc)})") from None
    if not isinstance(data, list):
        raise FileLoadError(f"{info.relative_name}: a JSON file must hold an array of records "
                            f"(found a JSON {type(data).__name__})")
    return Count(rows=len(data), lines=len(data))


def _parquet_scan(con, info: FileInfo, tmp: Path, opened: contextlib.ExitStack) -> Scan:
    path = info.reader
    if info.compressed:  # a gzip-wrapped Parquet file
        target = tmp / "file.parquet"
        with open_bytes(info) as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst, 8 * 1024 * 1024)
        path = opened.enter_context(exact_reader_path(target))
    try:
        names = [r[0] for r in con.execute(
            f"DESCRIBE SELECT * FROM read_parquet({quote_literal(path)})").fetchall()]
    except duckdb.Error as exc:
        raise FileLoadError(f"{info.relative_name}: not a valid Parquet file ({_first_line(exc)})") from exc
    import pyarrow.parquet as pq  # the independent count: the row count in the file's footer

    rows = pq.read_metadata(path).num_rows
    select = ", ".join(f"{quote_ident(n)}::VARCHAR AS c{i}" for i, n in enumerate(names))
    sql = (f"SELECT {select}, file_row_number + 1 AS _line "
           f"FROM read_parquet({quote_literal(path)}, file_row_number = true)")
    con.execute("CREATE TEMP TABLE _reader_rejects (line BIGINT, reason VARCHAR)")
    return Scan(names, sql, sql + " LIMIT 100000", line_column=True, count=Count(rows=rows, lines=rows))


def _apply_dialect(con, spec: Source, info: FileInfo, scan: Scan, dialect: dialects.Dialect) -> Scan:
    """The scan rewritten from an export dialect into canonical columns (see
    pipelines.raw.dialects). A CSV or JSON-lines scan is first materialised with its line
    numbers: a dialect may combine several lines into one record (Shopify line items)."""
    produced = None
    lines = None
    if not scan.line_column:
        con.execute(f"CREATE TEMP TABLE _dialect_rows AS SELECT * FROM ({scan.sql})")
        first, produced = con.execute("SELECT min(rowid), count(*) FROM _dialect_rows").fetchone()
        lines = LineMap.build(con, scan, info)
        numbered = lines.number(f"SELECT *, rowid - {first or 0} + 1 AS _k FROM _dialect_rows")
        if scan.bad_column:  # lines that are no record are rejected (or skipped) here
            con.execute("DROP TABLE IF EXISTS _reader_rejects")
            con.execute(f"""CREATE TEMP TABLE _reader_rejects AS SELECT _line AS line, _bad AS reason
                            FROM ({numbered}) WHERE _bad IS NOT NULL AND _bad <> {_SKIPPED}""")
            sql = f"SELECT * EXCLUDE (_k, _bad) FROM ({numbered}) WHERE _bad IS NULL"
        else:
            sql = f"SELECT * EXCLUDE (_k) FROM ({numbered})"
        scan = Scan(scan.headers, sql, sql + " LIMIT 100000", line_column=True, count=scan.count,
                    delimiter=scan.delimiter, header_lines=scan.header_lines)
    else:  # Parquet: rows of the file are read as they are
        produced = con.execute(f"SELECT count(*) FROM ({scan.sql})").fetchone()[0]
        lines = LineMap(scan.header_lines)
    out = dialects.rewrite(dialect, scan.headers, scan.sql, spec.column_names)
    return Scan(out.headers, out.sql, out.sql + " LIMIT 100000", line_column=True, count=scan.count,
                delimiter=scan.delimiter, header_lines=scan.header_lines, dialect=dialect.name,
                known_extras=out.known_extras, produced=produced, lines=lines)


# --- line numbers and the accounting ------------------------------------------------------

@dataclass
class LineMap:
    """Where the rows a reader produced start in the file.

    DuckDB's CSV reader numbers rows, not lines: it counts the empty rows it skips and
    counts a record spread over several lines as one. The k-th produced row (1-based) is
    therefore row k + header + (refused or empty rows before it), and starts on that row's
    number plus the extra lines of the multi-line rows before it (``Count``). Both
    corrections are ASOF joins on small tables (``_gaps``, ``_multi``) that exist only when
    the file has such rows; otherwise a row's line is k + header.
    """

    header_lines: int
    gaps: bool = False
    multi: bool = False
    reader_rejected: int = 0  # records DuckDB's CSV reader refused

    @classmethod
    def build(cls, con, scan: Scan, info: FileInfo) -> "LineMap":
        """Run once the reader has run (its refused records are in ``_rejects``): collect the
        refused records in ``_reader_rejects`` with their file lines, and the tables above."""
        count = scan.count
        lines = cls(scan.header_lines)
        if scan.csv_reader:
            lines.reader_rejected = con.execute(
                f"""CREATE TEMP TABLE _reader_rejects AS
                    SELECT line, 'malformed CSV record: ' || lower(string_agg(DISTINCT error_type, ', '))
                           || ' (expected {len(scan.headers)} fields)' AS reason
                    FROM _rejects GROUP BY line""").fetchone()[0]
        if len(count.blank_rows) or lines.reader_rejected:
            sources = ["SELECT line FROM _reader_rejects"] if lines.reader_rejected else []
            if len(count.blank_rows):
                import pyarrow as pa  # only here: its import costs a second

                con.register("_blank_rows_src", pa.table({"line": count.blank_rows + 1}))
                sources.append("SELECT line FROM _blank_rows_src")
            con.execute(
                f"""CREATE TEMP TABLE _gaps AS
                    SELECT g, max(j) AS j FROM (
                      SELECT line - row_number() OVER (ORDER BY line) - {scan.header_lines} AS g,
                             row_number() OVER (ORDER BY line) AS j
                      FROM ({' UNION ALL '.join(sources)})) GROUP BY g""")
            lines.gaps = True
        if len(count.multi_line_rows):
            import pyarrow as pa

            extra = count.extra_lines
            cum = np.cumsum(extra)
            con.register("_multi_rows_src", pa.table({
                "line": count.multi_line_rows + 1, "start": count.multi_line_rows + 1 + cum - extra,
                "extra": extra, "cum": cum}))
            con.execute("CREATE TEMP TABLE _multi AS SELECT * FROM _multi_rows_src")
            lines.multi = True
            if lines.reader_rejected:
                spread = con.execute(
                    """SELECT m.start, m.extra FROM _reader_rejects r JOIN _multi m USING (line)
                       ORDER BY m.start LIMIT 1""").fetchone()
                if spread:
                    raise FileLoadError(_spread_message(info, *spread))
                con.execute(
                    """UPDATE _reader_rejects SET line = s.file_line
                       FROM (SELECT r.line AS row_line, r.line + coalesce(m.cum, 0) AS file_line
                             FROM _reader_rejects r ASOF LEFT JOIN _multi m ON r.line > m.line) s
                       WHERE _reader_rejects.line = s.row_line""")
        return lines

    def number(self, rows_sql: str) -> str:
        """``rows_sql`` (rows with ``_k``, their 1-based order) with ``_line``: the file line each
        starts on."""
        if not (self.gaps or self.multi):
            return f"SELECT *, _k + {self.header_lines} AS _line FROM ({rows_sql})"
        sql = (f"SELECT p.*, p._k + {self.header_lines} + coalesce(g.j, 0) AS _row_line FROM ({rows_sql}) p "
               "ASOF LEFT JOIN _gaps g ON p._k > g.g") if self.gaps else (
            f"SELECT *, _k + {self.header_lines} AS _row_line FROM ({rows_sql})")
        if self.multi:
            sql = (f"SELECT q.* EXCLUDE (_row_line), q._row_line + coalesce(m.cum, 0) AS _line FROM ({sql}) q "
                   "ASOF LEFT JOIN _multi m ON q._row_line > m.line")
        else:
            sql = f"SELECT * EXCLUDE (_row_line), _row_line AS _line FROM ({sql})"
        return sql


def _spread_message(info: FileInfo, start: int, extra: int) -> str:
    return (f"{info.relative_name}: line {start} starts a malformed record that runs over {extra + 1} lines "
            f"(to line {start + extra}): a quote there is not closed where it should be; nothing of the "
            "file was loaded")


def _account(info: FileInfo, scan: Scan, produced: int, last_line: int) -> None:
    """The accounting invariant of CONTRACT section 2 (see the module docstring)."""
    read = produced + scan.lines.reader_rejected
    if read != scan.expected:
        raise FileLoadError(
            f"{info.relative_name}: the reader accounted for {read:,} of the file's {scan.expected:,} records "
            f"(reading stopped after line {last_line}); nothing of the file was loaded")


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
    erased = (erased_rows_condition(con, settings.warehouse_dir, spec.name, set(mapped))
              if spec.name in RECORD_KEYS else None)
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
            utc = local_to_utc_sql(con, local, settings.source_timezone(spec.name))
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
    if scan.lines is None:  # the reader ran inside the insert
        scan.lines = LineMap.build(con, scan, info)
    if inserted and not scan.line_column:
        sign = "CASE WHEN _row_number < 0 THEN -1 ELSE 1 END"
        if scan.lines.gaps or scan.lines.multi:
            numbered = scan.lines.number(f"SELECT rowid AS _row, rowid - {first} + 1 AS _k FROM {table} WHERE {scope}")
            con.execute(f"""UPDATE {table} SET _row_number = {sign} * s._line FROM ({numbered}) s
                            WHERE {table}.rowid = s._row""")
        else:
            con.execute(f"UPDATE {table} SET _row_number = {sign} * (rowid - {first} + 1 + {scan.header_lines}) "
                        f"WHERE {scope}")
    produced = inserted if scan.produced is None else scan.produced
    if produced + scan.lines.reader_rejected != scan.expected:
        last = con.execute(
            f"""SELECT greatest(coalesce((SELECT max(line) FROM _reader_rejects), 0),
                                coalesce((SELECT max(abs(_row_number)) FROM {table} WHERE {scope}), 0))""").fetchone()[0]
        _account(info, scan, produced, last)
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


# reasons marking rows inside a load that are dropped without being recorded as rejected
_ERASED = "'erased person (clm erase)'"  # counted as rows_erased
_SKIPPED = "'blank line'"  # a blank line of a JSON-lines file
