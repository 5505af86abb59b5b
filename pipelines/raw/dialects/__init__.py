"""Real-world export dialects (CONTRACT section 2): detection from the header and the mapping
to canonical columns, one module per dialect.

A :class:`Dialect` describes, in SQL over the export's own columns, how to produce the
source's canonical columns. The loader reads a file as text columns (as for any file),
asks :func:`detect` whether the header is a known dialect, and if so rewrites the scan
with :func:`rewrite` into canonical columns plus the export's other columns, which are
kept in ``raw.<source>._extra``; from there on a dialect file is loaded like a canonical
one (typing, rejects with line numbers, lineage, manifest).

Adding a dialect: a module with one ``Dialect`` (its signature headers, column
expressions, the headers it knows) registered in ``DIALECTS`` below, plus its tests.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from pipelines.warehouse import quote_ident

_PLACEHOLDER = re.compile(r"@\{([^{}]+)\}")  # @{Header Name} or @{=prepared}


def normalize(name: str) -> str:
    """Headers match case-insensitively, ignoring spaces, '-' and '_' (CONTRACT section 2)."""
    return re.sub(r"[\s\-_]+", "", name.strip().lstrip("\ufeff")).lower()


@dataclass(frozen=True)
class Dialect:
    name: str
    source: str
    description: str
    # headers that identify the dialect: all must be present
    signature: tuple[str, ...]
    # canonical column -> SQL over the export's columns, written @{Header Name}; a header
    # missing from a file reads as NULL. For grouped dialects these are aggregates.
    columns: dict[str, str]
    # every header of the vendor's documented export: kept in _extra when not consumed, but
    # not reported as unknown
    known: tuple[str, ...] = ()
    # headers fully represented by canonical columns: not kept in _extra
    consumed: tuple[str, ...] = ()
    # named SQL expressions computed first, usable in ``columns`` as @{=name}
    prepare: dict[str, str] = field(default_factory=dict)
    # grouped dialects: the header whose equal values form one record (e.g. Shopify's
    # Name: one row per line item); other kept headers take the record's first row's value
    group_by: str | None = None
    # grouped dialects: canonical columns whose expression already aggregates the record's
    # rows (the others take the first non-empty value in file order)
    aggregates: frozenset[str] = frozenset()
    # grouped dialects: headers (by prefix) collected into one JSON list per record
    list_prefix: str | None = None
    list_key: str = "line_items"

    def matches(self, headers: list[str]) -> bool:
        present = {normalize(h) for h in headers}
        return all(normalize(h) in present for h in self.signature)


def _registry() -> dict[str, list[Dialect]]:
    from pipelines.raw.dialects import ga4, hubspot, shopify

    out: dict[str, list[Dialect]] = {}
    for d in (hubspot.DIALECT, shopify.DIALECT, ga4.DIALECT):
        out.setdefault(d.source, []).append(d)
    return out


DIALECTS = _registry()


def detect(source: str, headers: list[str]) -> Dialect | None:
    """The dialect of a file of ``source`` with these headers, or None for canonical files.
    Of several matching dialects the one with the longest signature wins."""
    found = [d for d in DIALECTS.get(source, []) if d.matches(headers)]
    return max(found, key=lambda d: len(d.signature)) if found else None


@dataclass(frozen=True)
class Rewritten:
    """A rewritten scan: SELECT producing text columns c0..cN named ``headers`` and ``_line``."""

    headers: list[str]
    sql: str
    known_extras: tuple[str, ...]


def rewrite(dialect: Dialect, headers: list[str], scan_sql: str, canonical: tuple[str, ...]) -> Rewritten:
    """Rewrite ``scan_sql`` (text columns c0..cN named ``headers``, plus ``_line``) into
    the dialect's canonical columns followed by the export's other columns.

    An export column whose name is itself a canonical column of the source (say a custom
    CRM property ``Referred By Email``) maps to it unless the dialect produces that
    column, in which case it is kept in _extra under the name ``<dialect>:<header>``."""
    position = {}
    for i, h in enumerate(headers):
        position.setdefault(normalize(h), i)
    prepared = {name for name in dialect.prepare}

    def expand(template: str) -> str:
        def sub(m: re.Match) -> str:
            key = m.group(1)
            if key.startswith("="):
                if key[1:] not in prepared:
                    raise KeyError(f"{dialect.name}: unknown prepared expression {key}")
                return quote_ident("_p_" + key[1:])
            i = position.get(normalize(key))
            return f"c{i}" if i is not None else "NULL::VARCHAR"
        return _PLACEHOLDER.sub(sub, template)

    consumed = {normalize(h) for h in dialect.consumed}
    known = {normalize(h) for h in dialect.known}
    produced = set(dialect.columns)
    canonical_norm = {normalize(c): c for c in canonical}
    in_list = (lambda h: normalize(h).startswith(normalize(dialect.list_prefix))) if dialect.list_prefix else (
        lambda h: False)

    first_row = (lambda e: f"arg_min({e}, _line)") if dialect.group_by else (lambda e: e)
    selects, out_headers, known_extras = [], [], []
    for name, template in dialect.columns.items():
        expr = f"({expand(template)})::VARCHAR"
        selects.append(expr if name in dialect.aggregates else first_row(expr))
        out_headers.append(name)
    list_cols = []
    for i, h in enumerate(headers):
        n = normalize(h)
        if n in consumed or position.get(n) != i:
            continue
        if in_list(h):
            list_cols.append((h, i))
            continue
        label = h
        target = canonical_norm.get(n)
        if target is not None and target in produced:
            label = f"{dialect.name}:{h}"
        elif target is not None:  # a canonical column under its own name: load it as such
            selects.append(first_row(f"c{i}"))
            out_headers.append(h)
            continue
        selects.append(first_row(f"c{i}"))
        out_headers.append(label)
        if n in known:
            known_extras.append(label)
    if list_cols:
        struct = ", ".join(f"{quote_ident(h)} := c{i}" for h, i in list_cols)
        selects.append(f"to_json(list(struct_pack({struct}) ORDER BY _line))::VARCHAR")
        out_headers.append(dialect.list_key)
        known_extras.append(dialect.list_key)

    inner = scan_sql
    if dialect.prepare:
        prep = ", ".join(f"{expand(e)} AS {quote_ident('_p_' + k)}" for k, e in dialect.prepare.items())
        inner = f"SELECT *, {prep} FROM ({scan_sql})"
    cols = ", ".join(f"{s} AS c{j}" for j, s in enumerate(selects))
    if dialect.group_by:
        key = expand("@{" + dialect.group_by + "}")
        sql = f"SELECT {cols}, min(_line) AS _line FROM ({inner}) GROUP BY nullif(trim({key}), '')"
    else:
        sql = f"SELECT {cols}, _line FROM ({inner})"
    return Rewritten(out_headers, sql, tuple(known_extras))
