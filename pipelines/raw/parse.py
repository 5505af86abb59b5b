"""Typed parsing of landing values, as DuckDB SQL expressions over text.

This is the single definition of how input *formats* are read (CONTRACT section 2):
timestamps (ISO 8601 with or without offset, German ``DD.MM.YYYY[ HH:MM[:SS]]``,
or a per-source strptime format), dates, numbers with a decimal point or comma,
booleans. Naive timestamps are read in the source's timezone (the shift to UTC
is done by the loader through a per-hour offset table); every timestamp is
stored as a UTC ``TIMESTAMP``. Content standardisation (emails, phones,
countries, currencies) happens later, in dbt staging.
"""
from __future__ import annotations

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
