"""Typed parsing of landing values, as DuckDB SQL expressions over text.

This is the single definition of how input *formats* are read (CONTRACT section 2):
timestamps (ISO 8601 with or without offset, German ``DD.MM.YYYY[ HH:MM[:SS]]``,
or a per-source strptime format), dates, numbers with a decimal point or comma,
booleans. Naive timestamps are read in the source's timezone (``local_to_utc_sql``:
the offset of the value's hour, found by a binary search over the zone's offset
changes); every timestamp is stored as a UTC ``TIMESTAMP``. Content standardisation (emails, phones,
countries, currencies) happens later, in dbt staging.
"""
from __future__ import annotations

import datetime as dt

from pipelines.contract import BOOLEAN, DATE, INTEGER, MONEY, NUMBER, TEXT, TIMESTAMP  # noqa: F401
from pipelines.warehouse import quote_literal

SQL_TYPES = {
    TEXT: "VARCHAR",
    TIMESTAMP: "TIMESTAMP",
    DATE: "DATE",
    MONEY: "DECIMAL(18, 4)",
    NUMBER: "DOUBLE",
    INTEGER: "BIGINT",
    BOOLEAN: "BOOLEAN",
}

GERMAN_TIMESTAMP_FORMATS = ("%d.%m.%Y %H:%M:%S", "%d.%m.%Y %H:%M", "%d.%m.%Y")
TRUE_WORDS = ("true", "t", "yes", "y", "1", "ja", "j", "x", "opted_in", "subscribed")
FALSE_WORDS = ("false", "f", "no", "n", "0", "nein", "opted_out", "unsubscribed")
# A decimal comma: "12,5", "1.234,56", "-0,99".
DECIMAL_COMMA_PATTERN = r"^\s*[+-]?(\d{1,3}(\.\d{3})+|\d+),\d+\s*$"


def _formats_list(formats: tuple[str, ...]) -> str:
    return "[" + ", ".join(quote_literal(f) for f in formats) + "]"



def has_offset_sql(v: str) -> str:
    """True when cleaned text ``v`` ends in ``Z`` or a UTC offset (``+02:00``, ``+0200``, ``+02``)."""
    return f"(length({v}) > 10 AND regexp_matches({v}, '(Z|z|[+-]\\d\\d(:?\\d\\d)?)$'))"


def timestamp_parts_sql(v: str, has_offset: str, source_format: str | None = None) -> tuple[str, str]:
    """Two expressions over cleaned text ``v`` (NULL when blank) and its
    ``has_offset_sql`` flag: the UTC instant of values with an offset, and the
    naive wall-clock time of values without one (read in the source's timezone
    by the loader). Both NULL when unparseable.

    Naive forms: the per-source format when set, ISO 8601, German
    ``DD.MM.YYYY[ HH:MM[:SS]]``. Ambiguous forms such as 03/04/2025 are never
    guessed. (``try_strptime`` is slow on values it rejects, so German formats
    are only tried on values shaped like them.)
    """
    utc = f"CASE WHEN {has_offset} THEN try_cast({v} AS TIMESTAMPTZ)::TIMESTAMP END"
    local = f"CASE WHEN NOT {has_offset} THEN {_naive_sql(v, 'TIMESTAMP', source_format)} END"
    return utc, local


def date_sql(v: str, source_format: str | None = None) -> str:
    return _naive_sql(v, "DATE", source_format)


def _naive_sql(v: str, sql_type: str, source_format: str | None) -> str:
    """The first of: the source's own format, ISO 8601, German DD.MM.YYYY[ HH:MM[:SS]]."""
    candidates = []
    if source_format:
        candidates.append(f"try_strptime({v}, {quote_literal(source_format)})::{sql_type}")
    candidates += [
        f"try_cast({v} AS {sql_type})",
        f"CASE WHEN substr({v}, 3, 1) = '.' THEN "
        f"try_strptime({v}, {_formats_list(GERMAN_TIMESTAMP_FORMATS)})::{sql_type} END",
    ]
    return "coalesce(" + ", ".join(candidates) + ")"


def value_sql(v: str, logical_type: str, *, source_format: str | None, decimal_comma: bool) -> str:
    """SQL turning cleaned text ``v`` (trimmed, NULL when blank) into the column's
    logical type; NULL if unparseable. Timestamps: see ``timestamp_parts_sql``.
    """
    if logical_type == DATE:
        return date_sql(v, source_format)
    if logical_type in (MONEY, NUMBER, INTEGER):
        text = f"replace(replace({v}, '.', ''), ',', '.')" if decimal_comma else v
        if logical_type == INTEGER:
            # "3" and "3.0" are both 3; "3.5" is not an integer.
            return (
                f"CASE WHEN try_cast({text} AS DOUBLE) = round(try_cast({text} AS DOUBLE)) "
                f"THEN try_cast(try_cast({text} AS DOUBLE) AS BIGINT) END"
            )
        return f"try_cast({text} AS {SQL_TYPES[logical_type]})"
    if logical_type == BOOLEAN:
        low = f"lower({v})"
        trues = ", ".join(quote_literal(w) for w in TRUE_WORDS)
        falses = ", ".join(quote_literal(w) for w in FALSE_WORDS)
        return f"CASE WHEN {low} IN ({trues}) THEN true WHEN {low} IN ({falses}) THEN false END"
    raise ValueError(f"no value_sql for logical type {logical_type!r}")


# --- naive wall-clock times in a source's timezone -------------------------------------

_TZ_RANGE = (dt.datetime(2000, 1, 1), dt.datetime(2040, 1, 1))  # local times outside: converted row by row
_TZ_RANGE_SQL = tuple(f"TIMESTAMP {quote_literal(t.isoformat(sep=' '))}" for t in _TZ_RANGE)
_tz_breaks: dict[str, list[tuple[dt.datetime, int]]] = {}


def offset_sql(local_hour: str, timezone: str) -> str:
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
                    SELECT h, epoch({offset_sql('h', timezone)})::BIGINT AS off
                    FROM range({lo}, {hi}, INTERVAL 1 HOUR) r(h)))
                WHERE before IS NULL OR off <> before ORDER BY h""").fetchall()
        _tz_breaks[timezone] = rows
    return _tz_breaks[timezone]


def local_to_utc_sql(con, local: str, timezone: str) -> str:
    """SQL for the UTC instant of naive wall-clock timestamp ``local`` read in ``timezone``: the
    offset of its hour (``offset_sql``), found by a binary search over the offset changes
    written out as nested CASEs (a few comparisons per row, no ICU call, no join: the rows keep
    their order); outside _TZ_RANGE the offset is computed for each row. ICU on every row is
    the simpler expression but seven times slower on the large orders file
    (``python -m tools.bench.timezones``, docs/BENCHMARKS.md)."""
    changes = _offset_changes(con, timezone)

    def search(lo: int, hi: int) -> str:
        if lo == hi:
            return f"INTERVAL '{changes[lo][1]} seconds'"
        mid = (lo + hi + 1) // 2
        at = quote_literal(changes[mid][0].isoformat(sep=" "))
        return f"CASE WHEN {local} < TIMESTAMP {at} THEN {search(lo, mid - 1)} ELSE {search(mid, hi)} END"

    lo, hi = _TZ_RANGE_SQL
    fallback = offset_sql(f"date_trunc('hour', {local})", timezone)
    return (f"{local} - CASE WHEN {local} >= {lo} AND {local} < {hi} "
            f"THEN {search(0, len(changes) - 1)} ELSE {fallback} END")
