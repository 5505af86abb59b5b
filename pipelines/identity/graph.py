"""Identity resolution (docs/CONTRACT.md section 4): source records -> persons with a stable ``customer_id``.

Input is one row per (source record, identifier) pair, already normalised by the caller:
``source``, ``source_key``, ``id_type``, ``id_value``; a record without identifiers appears
once with null ``id_type``/``id_value``.  Output is one ``customer_id`` per source record (the
grain of ``marts.customer_identities``, CONTRACT section 3) and the id registry that keeps ids
stable from run to run.

Rules
-----
* Two records are the same person when they share an identifier (same ``id_type`` and
  ``id_value``); links are transitive (connected components).
* Shared devices: a ``web_events`` record (an ``anonymous_id``) with more than one distinct
  ``email`` or more than one distinct ``user_id`` links nothing: its email and user_id links
  are dropped and it becomes a person of its own (it keeps its own ``anonymous_id``).
* Keys: every record and identifier is a key ``(key_type, key_value)``: ``key_type`` is the
  id type (``email``, ...) or ``record:<source>``, ``key_value`` the id value or the
  source key.  ``key_hash`` and ``key_check`` are two seeded Polars hashes of the key.
* Stable ids: a component whose keys are in the previous registry inherits the
  ``customer_id`` held by most of its keys (ties: the smallest id).  When several components
  claim the same id (a split), the one with most keys holding it keeps it (ties: the one with
  the smaller anchor); the others get fresh ids.  A component's *anchor* is its record with the
  smallest ``(key_hash, key_check)``.
* Fresh ids: a component without an inherited id gets ``'cus_'`` + 16 hex digits of a Polars
  hash of its anchor's ``(key_hash, key_check)``, seeded with the attempt number: attempt 0,
  then 1, 2, ... while the code is taken (by any id of the previous registry or one given out
  earlier in this run; two components drawing the same code: the one with the smaller anchor
  keeps it).  Fresh ids depend only on the anchor's key, not on row order, and are no hash of
  an e-mail address; they depend on Polars' hash (pinned by the lock file), so a warehouse
  rebuilt from scratch under another Polars version gives new persons other ids.  Ids already
  in a registry never change.
* Registry out = every current key with its current id, plus the previous entries whose keys
  are absent this run, kept with their last id.  An identifier that disappears and returns
  gets its person's id back -- unless a component with more registry keys for that id kept it
  meanwhile (the split rule).  Previous rows whose key type is no longer known (a removed
  source, the older one-column keys that do not parse) are kept with a null ``key_type`` and
  the whole key as ``key_value``; they match nothing.

Algorithm
---------
1. Records and identifiers are numbered in ``key_hash`` order (a Polars ``sort`` and
   ``rle_id``).  ``key_check`` must then be the same on every row of a number; if it is not
   (two keys share a 64-bit ``key_hash``: odds about 1e-4 at 10^8 keys), that side is sorted
   and numbered again on the pair of hashes (logged as a hash collision).  Two keys are only confused if both
   hashes collide (about 1e-22 at 10^8 keys).
2. Shared devices are found with a Polars ``group_by`` (distinct emails / user_ids per web
   record); their email and user_id links are dropped before identifiers are numbered.
3. Each identifier links its records to one of them; ``scipy.sparse.csgraph.
   connected_components`` gives the persons.  Components are numbered in anchor order.
4. Previous registry rows are joined to the current keys on ``key_hash`` (confirmed by
   ``key_check``); votes, merges and splits are Polars ``group_by``/``sort``/``unique`` on the
   ids' integer values (``customer_code``: the 16 hex digits as a u64, ordered as the ids are).
5. Ids are formatted by DuckDB (``printf``, ``CUSTOMER_ID_SQL``) and parsed by Polars
   (``str.to_integer(base=16)``).  A registry needs ``key_type``/``key_value`` (or the older
   one-column ``id_key``) and ``customer_code`` or ``customer_id``; stored ``customer_code``,
   ``key_hash`` and ``key_check`` are used when they agree with the ids and keys on an evenly
   spaced sample of rows, and computed again otherwise (an older registry, another Polars
   version).  A registry id that is not ``'cus_'`` + 16 lower-case hex digits is refused.

Row order: ``assignments`` come in record key-hash order, ``registry`` holds the previous
registry's rows in their order, then the keys new in this run in key-hash order (identifiers,
then records): the same for any row order of the input.

Statistics (``IdentityResult.stats``) are counts and seconds, never personal data:
``records``, ``identifiers``, ``edges`` (link rows with an identifier that the graph used,
after the shared-device rule; a repeated row counts again), ``components`` (= persons),
``iterations`` (always 1: one traversal; kept for the run metadata), ``shared_devices``,
``merged_ids`` (previous ids that no component holds any more because their keys merged into a
person with another id), ``split_ids`` (components that found a previous id but got a fresh one
because a larger part kept it) and ``seconds``.  Phase timings go to this module's logger at
INFO.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np
import polars as pl
import scipy.sparse
from scipy.sparse.csgraph import connected_components

from pipelines.contract import IDENTIFIER_TYPES, PERSON_RECORD_KEYS

log = logging.getLogger(__name__)

SOURCES = tuple(PERSON_RECORD_KEYS)  # pipelines.contract
ID_TYPES = IDENTIFIER_TYPES
WEB_SOURCE = "web_events"
SHARED_DEVICE_ID_TYPES = ("email", "user_id")
RECORD_KEY_PREFIX = "record"
CUSTOMER_ID_PREFIX = "cus_"
HASH_HEX_CHARS = 16
CUSTOMER_ID_PATTERN = f"^{CUSTOMER_ID_PREFIX}[0-9a-f]{{{HASH_HEX_CHARS}}}$"
# the one definition of the id format, as DuckDB SQL over the u64 column customer_code
CUSTOMER_ID_SQL = f"printf('{CUSTOMER_ID_PREFIX}%0{HASH_HEX_CHARS}x', customer_code)"
KEY_HASH_SEED, KEY_CHECK_SEED = 0, 1
MAX_FRESH_ATTEMPTS = 20

LINK_COLUMNS = ("source", "source_key", "id_type", "id_value")
# key types, sorted: the order of the Enum and of the DuckDB ENUM the registry is stored with
KEY_TYPES = tuple(sorted((*ID_TYPES, *(f"{RECORD_KEY_PREFIX}:{s}" for s in SOURCES)), key=lambda k: (k + ":").encode()))
KEY_TYPE = pl.Enum(KEY_TYPES)
SOURCE, ID_TYPE = pl.Enum(SOURCES), pl.Enum(ID_TYPES)
RECORD_KEY_TYPES = [f"{RECORD_KEY_PREFIX}:{s}" for s in SOURCES]
# the registry as resolve_identities returns it; registry_table adds customer_id for storage
REGISTRY_SCHEMA = {"key_type": KEY_TYPE, "key_value": pl.String, "customer_code": pl.UInt64, "key_hash": pl.UInt64,
                   "key_check": pl.UInt64}
REGISTRY_TABLE_SCHEMA = {"key_type": pl.String, "key_value": pl.String, "customer_id": pl.String,
                         **{c: t for c, t in REGISTRY_SCHEMA.items() if c not in ("key_type", "key_value")}}
LEGACY_KEY_COLUMN = "id_key"  # registries written before 2026-12-03: key_type + ':' + key_value in one column
REGISTRY_SAMPLE_ROWS = 4096  # stored codes and hashes are checked on this many rows


class IdentityResolutionError(RuntimeError):
    """Fresh ids could not be made unique."""


@dataclass(frozen=True)
class IdentityResult:
    assignments: pl.DataFrame  # source, source_key, customer_id: one row per distinct record
    registry: pl.DataFrame  # REGISTRY_SCHEMA: pass it to the next run (registry_table: with customer_id)
    stats: dict[str, Any] = field(default_factory=dict)


class _Timer:
    def __init__(self) -> None:
        self.start = self.last = time.perf_counter()
        self.phases: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.phases[name] = round(now - self.last, 2)
        self.last = now

    @property
    def total(self) -> float:
        return time.perf_counter() - self.start


# --------------------------------------------------------------------------- ids and keys


def customer_ids(codes: np.ndarray | pl.Series) -> pl.Series:
    """The customer_id of each u64 code: 'cus_' + its 16 lower-case hex digits (CUSTOMER_ID_SQL)."""
    frame = pl.DataFrame({"customer_code": pl.Series(codes, dtype=pl.UInt64)})  # noqa: F841 (read by SQL)
    with duckdb.connect() as con:
        return con.sql(f"SELECT {CUSTOMER_ID_SQL} AS customer_id FROM frame").pl()["customer_id"]


def _customer_codes(ids: pl.Series) -> pl.Series:
    """The u64 value of each customer_id; every id must have the form customer_ids gives."""
    wrong = ids.str.contains(CUSTOMER_ID_PATTERN).not_()
    if wrong.any():
        row = wrong.arg_true()[0]
        raise ValueError(f"registry row {row}: customer_id {ids[row]!r} does not have the form "
                         f"{CUSTOMER_ID_PREFIX!r} + {HASH_HEX_CHARS} lower-case hex digits")
    return ids.str.slice(len(CUSTOMER_ID_PREFIX)).str.to_integer(base=16, dtype=pl.UInt64).alias("customer_code")


def _key_hash_exprs(kind: pl.Expr, value: pl.Expr, record: bool) -> tuple[pl.Expr, pl.Expr]:
    """key_hash and key_check of a record key (kind: the source, an Enum of SOURCES; value: the
    source key) or an identifier key (kind: the id type, an Enum of ID_TYPES; value: the id
    value): two seeded Polars hashes of the pair, null where kind is.  key_hash is below 2**63
    for identifiers and at least 2**63 for records, so the nodes -- identifiers, then records,
    each in key_hash order -- are in key_hash order."""
    key = pl.struct(kind.alias("kind"), value.alias("value"))
    known = kind.is_not_null()
    return (pl.when(known).then(key.hash(KEY_HASH_SEED) // 2 + pl.lit(2**63 if record else 0, pl.UInt64)),
            pl.when(known).then(key.hash(KEY_CHECK_SEED)))


def _key_hashes(key_types: pl.Series, key_values: pl.Series) -> pl.DataFrame:
    """key_hash, key_check of registry keys (key_type, key_value): the hashes the same key gets
    from the links."""
    key_type, key_value = pl.col("key_type").cast(KEY_TYPE), pl.col("key_value")
    source = key_type.replace_strict(RECORD_KEY_TYPES, SOURCES, default=None, return_dtype=SOURCE)
    id_type = key_type.replace_strict(ID_TYPES, ID_TYPES, default=None, return_dtype=ID_TYPE)
    record_hashes, ident_hashes = _key_hash_exprs(source, key_value, True), _key_hash_exprs(id_type, key_value, False)
    return pl.DataFrame({"key_type": key_types, "key_value": key_values}).select(
        key_hash=pl.coalesce(record_hashes[0], ident_hashes[0]),
        key_check=pl.coalesce(record_hashes[1], ident_hashes[1]))


def _prepare_links(links: pl.LazyFrame | pl.DataFrame) -> pl.DataFrame:
    """The links with source and id_type as Enums (id_type null unless id_value is there too)
    and both keys' hashes: record_hash, record_check, ident_hash, ident_check (null on rows
    without an identifier)."""
    frame = links.lazy()
    missing = [c for c in LINK_COLUMNS if c not in frame.collect_schema().names()]
    if missing:
        raise ValueError(f"links is missing column(s) {', '.join(missing)}")
    try:
        rows = frame.select(
            pl.col("source").cast(pl.String).cast(SOURCE),
            pl.col("source_key").cast(pl.String),
            pl.when(pl.col("id_value").is_not_null()).then(pl.col("id_type").cast(pl.String).cast(ID_TYPE))
            .alias("id_type"),
            pl.col("id_value").cast(pl.String),
        ).collect()
    except pl.exceptions.InvalidOperationError:
        for column, allowed in (("source", SOURCES), ("id_type", ID_TYPES)):
            values = frame.select(pl.col(column).cast(pl.String).drop_nulls().unique()).collect().to_series()
            unknown = sorted(set(values.to_list()) - set(allowed))
            if unknown:
                raise ValueError(f"links has unknown {column} value(s) {unknown[:10]}; "
                                 f"expected one of {list(allowed)}") from None
        raise
    for column in ("source", "source_key"):
        if rows[column].null_count():
            raise ValueError(f"links has {rows[column].null_count()} row(s) without {column}")
    if max(rows.n_chunks("all")) > 1:
        rows = rows.rechunk()  # gathers from one chunk are several times faster
    record_hash, record_check = _key_hash_exprs(pl.col("source"), pl.col("source_key"), True)
    ident_hash, ident_check = _key_hash_exprs(pl.col("id_type"), pl.col("id_value"), False)
    return rows.with_columns(record_hash=record_hash, record_check=record_check,
                             ident_hash=ident_hash, ident_check=ident_check)


def _sorted_by_key(frame: pl.DataFrame, key_hash: str, key_check: str, number: str) -> pl.DataFrame:
    """The rows of frame sorted by their key's hashes, with ``number``: the key's dense number
    0, 1, ... in that order (a u32).  Sorted on key_hash alone unless two keys share one (then
    on both)."""
    ordered = frame.sort(key_hash)
    same_hash = pl.col(key_hash) == pl.col(key_hash).shift()
    if not ordered.select((same_hash & (pl.col(key_check) != pl.col(key_check).shift())).any()).item():
        return ordered.with_columns(pl.col(key_hash).rle_id().alias(number))
    log.warning("identity resolution: hash collision (two keys share a key_hash), sorting on both hashes")
    ordered = frame.sort(key_hash, key_check)
    return ordered.with_columns(pl.struct(key_hash, key_check).rle_id().alias(number))


def _first_of_each(frame: pl.DataFrame, number: str) -> pl.DataFrame:
    """The first row of each number of a frame sorted by it (_sorted_by_key)."""
    return frame.filter(pl.col(number).ne_missing(pl.col(number).shift()))


# --------------------------------------------------------------------------- registry in


def _split_legacy_keys(keys: pl.Series) -> pl.DataFrame:
    """key_type, key_value of keys in the one-column form 'key_type:key_value' (registries
    written before the two columns).  A key of no known type (no colon, an unknown id type or
    source) gets a null key_type and keeps the whole string as its key_value."""
    key = pl.col("key")
    head_end = key.str.find(":", literal=True)
    head, rest = key.str.slice(0, head_end), key.str.slice(head_end + 1)
    source_end = rest.str.find(":", literal=True)
    record = head == RECORD_KEY_PREFIX
    key_type = pl.when(record).then(
        pl.when(source_end.is_not_null()).then(key.str.slice(0, head_end + 1 + source_end))).otherwise(head)
    key_type = key_type.cast(KEY_TYPE, strict=False)
    value = pl.when(record).then(rest.str.slice(source_end + 1)).otherwise(rest)
    return pl.DataFrame({"key": keys}).select(
        key_type=key_type, key_value=pl.when(key_type.is_not_null()).then(value).otherwise(key))


def _known_types(registry: pl.DataFrame) -> pl.DataFrame:
    """key_type as KEY_TYPE; a stored type no longer known (e.g. of a removed source) becomes
    null with the whole key string as its value, the form _split_legacy_keys gives."""
    typed = registry["key_type"].cast(KEY_TYPE, strict=False)  # text, Categorical (a DuckDB ENUM) or another Enum
    lost = typed.is_null() & registry["key_type"].is_not_null()
    if lost.any():
        whole = pl.concat_str(registry["key_type"].cast(pl.String), pl.lit(":"), registry["key_value"])
        registry = registry.with_columns(key_value=pl.when(lost).then(whole).otherwise(pl.col("key_value")))
    return registry.with_columns(key_type=typed)


def _sample(frame: pl.DataFrame) -> pl.DataFrame:
    rows = np.unique(np.linspace(0, frame.height - 1, min(frame.height, REGISTRY_SAMPLE_ROWS)).astype(np.int64))
    return frame[rows]


def _read_registry(registry: pl.DataFrame | None) -> pl.DataFrame:
    """The previous registry in REGISTRY_SCHEMA (see the module docstring for what it may
    hold); rows without a key value or an id are left out."""
    if registry is None:
        return pl.DataFrame(schema=REGISTRY_SCHEMA)
    columns = set(registry.columns)
    two_columns = {"key_type", "key_value"} <= columns
    if not (two_columns or LEGACY_KEY_COLUMN in columns) or not columns & {"customer_code", "customer_id"}:
        raise ValueError("registry needs columns key_type and key_value (or id_key) and customer_code or customer_id")
    if not two_columns:
        log.info("identity resolution: splitting the registry's one-column keys (%s rows)", registry.height)
        registry = registry.with_columns(_split_legacy_keys(registry[LEGACY_KEY_COLUMN])).drop(LEGACY_KEY_COLUMN)
    registry = registry.select(pl.col(c) if c == "key_type" else pl.col(c).cast(t)
                               for c, t in REGISTRY_TABLE_SCHEMA.items() if c in registry.columns)
    if registry.schema["key_type"] != KEY_TYPE:
        registry = _known_types(registry)
    if registry["key_value"].null_count():
        registry = registry.filter(pl.col("key_value").is_not_null())

    codes_usable = "customer_code" in columns and not registry["customer_code"].null_count()
    if codes_usable and "customer_id" in columns:
        sample = _sample(registry)
        codes_usable = customer_ids(sample["customer_code"]).equals(sample["customer_id"], check_names=False)
    if not codes_usable and "customer_id" in columns:
        if registry.height:
            log.info("identity resolution: reading the registry's ids (%s rows)", registry.height)
        registry = registry.filter(pl.col("customer_id").is_not_null())
        registry = registry.with_columns(_customer_codes(registry["customer_id"]))
    elif registry["customer_code"].null_count():
        registry = registry.filter(pl.col("customer_code").is_not_null())

    hashes_usable = {"key_hash", "key_check"} <= columns
    if hashes_usable:
        sample = _sample(registry)
        hashes_usable = _key_hashes(sample["key_type"], sample["key_value"]).equals(
            sample.select("key_hash", "key_check"))
    if not hashes_usable:
        if registry.height:
            log.info("identity resolution: computing the registry's key hashes (%s keys)", registry.height)
        registry = registry.with_columns(_key_hashes(registry["key_type"], registry["key_value"]))
    return registry.select(pl.col(c).cast(t) for c, t in REGISTRY_SCHEMA.items())


# --------------------------------------------------------------------------- resolution


def resolve_identities(links: pl.LazyFrame | pl.DataFrame, registry: pl.DataFrame | None = None) -> IdentityResult:
    """Resolve source records into persons; see the module docstring for the rules."""
    timer = _Timer()
    previous = _read_registry(registry)
    timer.lap("registry")
    rows = _prepare_links(links).with_row_index("row")
    timer.lap("prepare")

    # records: numbered in record key order
    by_record = _sorted_by_key(rows.select("record_hash", "record_check", "row"), "record_hash", "record_check",
                               "record")
    records = _first_of_each(by_record, "record").drop("record")  # record_hash, record_check, row
    record = pl.zeros(rows.height, pl.UInt32, eager=True).scatter(by_record["row"], by_record["record"])
    del by_record
    rows = rows.drop("record_hash", "record_check").with_columns(record=record)
    del record
    timer.lap("records")

    # shared devices: web records with more than one distinct email, or user_id; their email
    # and user_id links are dropped
    device_link = (pl.col("source") == WEB_SOURCE) & pl.col("id_type").is_in(SHARED_DEVICE_ID_TYPES)
    shared = (
        rows.filter(device_link)
        .group_by("record", "id_type").agg(pl.col("ident_hash").n_unique())
        .filter(pl.col("ident_hash") > 1)["record"].unique()
    )
    kept = pl.col("id_type").is_not_null() & ~(device_link & pl.col("record").is_in(shared.implode()))
    used_links = rows.filter(kept).select("ident_hash", "ident_check", "record", "row")
    rows = rows.select("source", "source_key", "id_type", "id_value")
    timer.lap("shared")

    # identifiers: the used links in identifier key order, numbered; each identifier links its
    # records to the first of them (its hub)
    by_ident = _sorted_by_key(used_links, "ident_hash", "ident_check", "ident")
    del used_links
    first_link = pl.col("ident").ne_missing(pl.col("ident").shift())
    by_ident = by_ident.with_columns(hub=pl.when(first_link).then(pl.col("record")).forward_fill())
    idents = _first_of_each(by_ident, "ident").select("ident_hash", "ident_check", "row", "hub")
    edges = by_ident.filter(pl.col("hub") != pl.col("record")).select("hub", "record")
    n_edges = by_ident.height
    del by_ident
    timer.lap("identifiers")

    n_records = records.height
    graph = scipy.sparse.coo_array((np.ones(edges.height), (edges["hub"].to_numpy(), edges["record"].to_numpy())),
                                   shape=(n_records, n_records))
    del edges
    n_components, label = connected_components(graph, directed=False)
    del graph
    # components numbered in the order of their anchors, the first record of each (records are
    # in key-hash order).  scipy labels them in that order (it starts a traversal at each
    # unlabelled node in node order): checked with a running maximum, renumbered otherwise
    running = np.maximum.accumulate(label) if n_records else label
    first = np.ones(n_records, bool)
    np.greater(running[1:], running[:-1], out=first[1:])
    del running
    if n_records and label[0] == 0 and np.count_nonzero(first) == n_components:
        anchor = pl.Series(np.flatnonzero(first))
        component = pl.Series("component", label, dtype=pl.UInt32)
    else:
        anchor = pl.Series(label).arg_unique()
        number = pl.Series(label).gather(anchor).arg_sort()
        component = number.gather(label).alias("component")  # of each record
        del number
    del label, first
    timer.lap("components")

    # nodes: identifiers, then records
    nodes = pl.concat([idents.select(key_hash="ident_hash", key_check="ident_check",
                                     component=component.gather(idents["hub"])),
                       records.select(key_hash="record_hash", key_check="record_check").with_columns(component)])
    reg, node = _match_registry(previous, nodes)
    timer.lap("match")
    hit_code = previous["customer_code"].to_numpy()[reg]
    hit_component = nodes["component"].to_numpy()[node]
    winners, merged_ids, split_ids = _inherit(hit_code, hit_component, n_components)
    timer.lap("inherit")

    codes = np.empty(n_components, np.uint64)  # of each component: its id's value
    fresh = np.ones(n_components, bool)
    fresh[winners["component"].to_numpy()] = False
    codes[~fresh] = winners.sort("component")["customer_code"].to_numpy()
    anchors = records[anchor.filter(pl.Series(fresh))]
    codes[fresh] = _fresh_codes(anchors["record_hash"].to_numpy(), anchors["record_check"].to_numpy(),
                                previous["customer_code"])
    del fresh, anchor, anchors
    timer.lap("fresh")

    source_keys = rows["source_key"].gather(records["row"])
    record_sources = rows["source"].gather(records["row"])
    assignments = pl.DataFrame({
        "source": record_sources.cast(pl.String),
        "source_key": source_keys,
        "customer_id": customer_ids(codes).gather(component),
    })
    timer.lap("assignments")

    # registry out: the previous rows with their current ids, then the nodes new to it
    previous_codes = previous["customer_code"].to_numpy().copy()
    previous_codes[reg] = codes[hit_component]
    if len(node):
        new = np.ones(nodes.height, bool)
        new[node] = False
        ident_rows = idents["row"].filter(pl.Series(new[:idents.height]))
        new_records = pl.Series(new[idents.height:])
        record_keys, record_types = source_keys.filter(new_records), record_sources.filter(new_records)
        added = nodes.filter(pl.Series(new))
        del new, new_records
    else:  # every node is new (a first run): no masks, no copies
        ident_rows, record_keys, record_types, added = idents["row"], source_keys, record_sources, nodes
    added = pl.DataFrame({
        "key_type": pl.concat([
            rows["id_type"].gather(ident_rows).replace_strict(ID_TYPES, ID_TYPES, return_dtype=KEY_TYPE),
            record_types.replace_strict(SOURCES, RECORD_KEY_TYPES, return_dtype=KEY_TYPE)]),
        "key_value": pl.concat([rows["id_value"].gather(ident_rows), record_keys]),
        "customer_code": codes[added["component"].to_numpy()],
        "key_hash": added["key_hash"],
        "key_check": added["key_check"],
    }, schema=REGISTRY_SCHEMA)
    new_registry = pl.concat([previous.with_columns(customer_code=pl.Series(previous_codes)), added], rechunk=False)
    timer.lap("registry_out")
    stats = {
        "records": n_records,
        "identifiers": idents.height,
        "edges": n_edges,
        "components": n_components,
        "iterations": 1,
        "shared_devices": len(shared),
        "merged_ids": merged_ids,
        "split_ids": split_ids,
        "seconds": round(timer.total, 3),
    }
    log.info("identity resolution: %s; phases %s", stats, timer.phases)
    return IdentityResult(assignments=assignments, registry=new_registry, stats=stats)


def _match_registry(previous: pl.DataFrame, nodes: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(registry row, node) of every previous registry key that is a node this run: a binary
    search of its key_hash in the nodes' (sorted) ones, confirmed by key_check."""
    if not nodes.height or previous["key_hash"].null_count() == previous.height:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    node_hash, node_check = nodes["key_hash"].to_numpy(), nodes["key_check"].to_numpy()
    if not np.all(node_hash[1:] > node_hash[:-1]):  # two nodes share a key_hash: join on both hashes
        found = previous.select("key_hash", "key_check").with_row_index("reg").join(
            nodes.select("key_hash", "key_check").with_row_index("node"), on=["key_hash", "key_check"])
        return found["reg"].to_numpy().astype(np.int64), found["node"].to_numpy().astype(np.int64)
    key_hash, key_check = (previous[c].fill_null(0).to_numpy() for c in ("key_hash", "key_check"))
    at = np.searchsorted(node_hash, key_hash)
    np.minimum(at, len(node_hash) - 1, out=at)
    found = node_hash[at] == key_hash
    found &= node_check[at] == key_check
    if previous["key_hash"].null_count():
        found &= previous["key_hash"].is_not_null().to_numpy()
    if found.all():
        return np.arange(len(at)), at
    reg = np.flatnonzero(found)
    return reg, at[reg]


def _inherit(code: np.ndarray, component: np.ndarray, n_components: int) -> tuple[pl.DataFrame, int, int]:
    """The components that keep a previous id (component, customer_code), merged_ids and
    split_ids; code and component: of each registry key that is a node this run."""
    # the usual case: all keys of a component that are in the registry hold one id
    held = np.zeros(n_components, np.uint64)
    held[component] = code
    votes = np.bincount(component, minlength=n_components)
    claimed = np.flatnonzero(votes)
    claims = pl.DataFrame({"component": claimed, "customer_code": held[claimed], "votes": votes[claimed]})
    mixed = np.zeros(n_components, bool)
    mixed[component[held[component] != code]] = True
    hit_codes = claims["customer_code"]
    if mixed.any():  # a merge: the id most of the component's keys hold, then the smallest id
        of_mixed = mixed[component]
        counted = (
            pl.DataFrame({"component": component[of_mixed], "customer_code": code[of_mixed]})
            .group_by("component", "customer_code").agg(votes=pl.len().cast(pl.Int64))
        )
        hit_codes = pl.concat([hit_codes, counted["customer_code"]])
        chosen = (counted.sort("votes", "customer_code", descending=[True, False])
                  .unique("component", keep="first", maintain_order=True))
        claims = pl.concat([claims.filter(~pl.Series(mixed[claimed])), chosen.cast(claims.schema)])
    # a split: an id claimed by several components stays with the one with most keys holding
    # it, then with the smaller anchor (components are numbered in anchor order)
    winners = claims
    ordered = claims["customer_code"].sort()
    if (ordered.slice(1) == ordered.slice(0, max(len(ordered) - 1, 0))).any():  # (a sort: cheaper than is_duplicated)
        contested = claims["customer_code"].is_duplicated()
        kept = (claims.filter(contested).sort("votes", "component", descending=[True, False])
                .unique("customer_code", keep="first", maintain_order=True))
        winners = pl.concat([claims.filter(~contested), kept])
    split_ids = claims.height - winners.height
    merged_ids = hit_codes.n_unique() - winners.height if mixed.any() or split_ids else 0
    return winners.select("component", "customer_code"), merged_ids, split_ids


def _fresh_codes(anchor_hash: np.ndarray, anchor_check: np.ndarray, taken: pl.Series) -> np.ndarray:
    """Codes of new ids for components with these anchor hashes (in anchor order): Polars'
    hash of the pair, seeded with the attempt; drawn again while taken (by a previous id or one
    given out before) or drawn by an earlier component in the same attempt."""
    codes = np.empty(len(anchor_hash), np.uint64)
    pending = pl.DataFrame({"key_hash": anchor_hash, "key_check": anchor_check}).with_row_index("at")
    for attempt in range(MAX_FRESH_ATTEMPTS):
        if not pending.height:
            break
        drawn = pending.with_columns(code=pl.struct("key_hash", "key_check").hash(attempt))
        clashing = taken.filter(taken.is_in(drawn["code"].implode()))  # (a set of the drawn codes, not of taken)
        ordered = drawn["code"].sort()
        given = ~drawn["code"].is_in(clashing.implode())
        if (ordered.slice(1) == ordered.slice(0, max(len(ordered) - 1, 0))).any():  # (a sort: cheaper than a set)
            given &= drawn["code"].is_first_distinct()
        codes[drawn.filter(given)["at"].to_numpy()] = drawn.filter(given)["code"].to_numpy()
        pending = drawn.filter(~given).drop("code")
        if pending.height:
            taken = pl.concat([taken, drawn.filter(given)["code"]], rechunk=False)
    if pending.height:
        raise IdentityResolutionError(f"could not make {pending.height} fresh customer_id(s) unique")
    return codes


# --------------------------------------------------------------------------- registry out


def registry_table(registry: pl.DataFrame) -> pl.DataFrame:
    """The registry as it is stored (REGISTRY_TABLE_SCHEMA): with each row's customer_id."""
    return registry.with_columns(customer_ids(registry["customer_code"])).select(list(REGISTRY_TABLE_SCHEMA))


# --------------------------------------------------------------------------- evaluation


def pairwise_f1(predicted: pl.DataFrame, truth: pl.DataFrame) -> dict[str, float]:
    """Pairwise precision, recall and F1 of predicted clusters against the truth.

    predicted: source, source_key, customer_id; truth: source, source_key, person_id
    (null person_id: the record is a person of its own).  A pair of records is
    predicted-positive when they share a customer_id and truly positive when they
    share a non-null person_id.  Records missing from one side count as singletons
    there.  Computed from cluster sizes (sum of C(n, 2) over the clusters and over
    the (customer_id, person_id) intersections), never by listing pairs.  With no
    predicted (true) pairs precision (recall) is 1.0.
    """
    key = ["source", "source_key"]
    both = (
        predicted.select(*key, pl.col("customer_id").cast(pl.String))
        .join(truth.select(*key, pl.col("person_id").cast(pl.String)), on=key, how="full", coalesce=True)
    )

    def pairs(cols: list[str]) -> int:
        sizes = both.drop_nulls(cols).group_by(cols).agg(n=pl.len())["n"].cast(pl.Int64)
        return int((sizes * (sizes - 1) // 2).sum())

    predicted_pairs = pairs(["customer_id"])
    true_pairs = pairs(["person_id"])
    tp = pairs(["customer_id", "person_id"])
    precision = tp / predicted_pairs if predicted_pairs else 1.0
    recall = tp / true_pairs if true_pairs else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1,
            "true_positive_pairs": tp, "predicted_pairs": predicted_pairs, "true_pairs": true_pairs}
