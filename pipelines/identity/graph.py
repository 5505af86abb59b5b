"""Identity resolution (SPEC section 4): source records -> persons with a stable ``customer_id``.

Input is one row per (source record, identifier) pair, already normalised by the
caller: ``source``, ``source_key``, ``id_type``, ``id_value``; a record without
identifiers appears once with null ``id_type``/``id_value``.  Output is one
``customer_id`` per source record (the grain of ``marts.customer_identities``,
SPEC section 3) and the id registry that keeps ids stable from run to run.

Rules
-----
* Two records are the same person when they share an identifier (same
  ``id_type`` and ``id_value``); links are transitive (connected components of the
  bipartite graph records <-> identifiers).
* Shared devices (single definition of the rule): a ``web_events`` record (an
  ``anonymous_id``) with more than one distinct ``email`` or more than one
  distinct ``user_id`` links nothing: its email/user_id links are dropped and it
  becomes a person of its own (it keeps its own ``anonymous_id`` identifier).
* Node keys are ``id_type:id_value`` for identifiers and
  ``record:source:source_key`` for records, so a record without identifiers keeps
  its id too.  The registry stores a key as two columns, ``key_type`` (``email``,
  ``record:orders``, ...) and ``key_value``; older registries with the one-column
  ``id_key`` are read too.
* Stable ids: a component whose keys are in the previous registry inherits the
  ``customer_id`` held by most of its keys (ties: the smallest id).  When several
  components claim the same id (a split), the one with most keys holding it keeps
  it (ties: the component whose anchor has the smaller key hashes); the others get fresh
  ids.  A component's *anchor* is its record with the smallest record-key hash (first
  hash, then second).  A component without registry hit gets ``'cus_'`` + the 16 hex
  digits of ``fresh_codes(h1, h2)``, a 64-bit mix (splitmix64's finaliser) of its
  anchor's two key hashes; if that id is already taken (previous registry or this run)
  the mix is drawn again with attempt 1, 2, ... (two components drawing the same id
  this run: the one with the smaller anchor hashes keeps it).  Fresh ids therefore
  depend only on the component's records, not on row order, and reveal no hash of
  an e-mail address; they depend on Polars' hash (pinned by the lock file), so a
  warehouse rebuilt from scratch under another Polars version gives new persons
  other ids -- ids already in a registry never change.
* Ids have the form ``'cus_' + 16 lower-case hex digits``; the registry holds them as that
  hex value (``customer_code``, a u64; ``registry_table`` adds the ``customer_id`` string
  for storage), so a registry id of another form is refused (ValueError naming the row).
* Registry out = every current key -> its current id, plus the previous entries
  whose keys are absent this run, kept with their last id (rows whose key has no
  node-key form, e.g. of a source no longer known, are kept with a null ``key_type`` and the
  whole key as ``key_value``, and match nothing).  An identifier that
  disappears and later returns therefore gets its person's id back -- unless
  that id has meanwhile been kept by another component that holds more registry
  keys for it (the split rule), in which case it gets a fresh id.

Algorithm (vectorised Polars / NumPy; no Python loop over rows, no graph library)
------------------------------------------------------------------------------
1. Dictionary encoding to integer node ids: record keys (source, source_key) and
   identifier keys (id_type, id_value) are hashed with Polars (64 bits, salted per
   source / id_type) and grouped by sorting the hashes (a value sort of
   ``hash prefix | row number``, then an exact split on the full hash).  A second,
   independent 64-bit hash must be constant inside every group; otherwise (two keys
   share the first hash, ~1e-4 at 10^8 keys) the rows are grouped on the pair of
   hashes instead (slower, logged), so the ids are exact unless two keys collide in
   both hashes at once (~1e-22 at 10^8 keys).  Records are numbered in (first hash,
   second hash) order either way.
2. Each identifier held by k >= 2 records gives k - 1 record-record edges (a star
   on its first record); identifiers of a single record connect nothing.
3. Connected components by iterative min-label propagation with hooking and
   pointer jumping on the integer edge list: every round each edge hooks the
   root of its larger label under the smaller one (``np.minimum.at``), labels
   are shortcut (``label = label[label]`` until nothing changes) and edges whose
   two ends now share a root are dropped, so the edge list shrinks every round
   and chains collapse in O(log length) rounds.  ``iterations`` counts the rounds;
   more than ``max_iterations`` raise ``IdentityResolutionError``.
4. Registry matching: the registry keeps each key's two hashes (``key_hash``,
   ``key_check``: the same hashes step 1 gives the node, identifiers below 2**63,
   records above) and each id's hex value (``customer_code``).  The nodes are in
   first-hash order, so every registry row is found by a binary search and confirmed
   by the second hash; votes per component are counted on the integer codes.  Stored
   hashes and codes are checked on an evenly spaced sample of 4096 rows and computed
   again from the keys and ``customer_id`` when absent or wrong (an older registry, a
   Polars upgrade that changed the hashes; slower, logged).  No id strings are read,
   compared or gathered: ties between ids compare the codes (same order as the strings),
   and the output ids are formatted from the codes.  No key string is put together or
   compared: key values are gathered only for the registry's new rows, and fresh ids come
   from the anchors' hashes.

Row order: ``assignments`` come in record-hash order -- deterministic and the same for
any row order of the input, but not sorted (sorting 10^8 strings costs more than the
resolution).  ``registry`` holds the previous registry's rows in their order (with
their current ids), then the keys new in this run in hash order.  The hashes are
stable within one Polars version only, so an upgrade may change the row order and the
ids new persons get, never an id already in the registry.

Statistics (``IdentityResult.stats``) hold counts and timings only, never personal
data: ``records``, ``identifiers``, ``edges`` (link rows with an identifier that the
graph used, i.e. after the shared-device rule; a repeated row counts again),
``components`` (= persons), ``iterations``, ``shared_devices``, ``merged_ids``
(previous ids no current component holds any more because their keys merged into a
person with another id), ``split_ids`` (components that found a previous id but took
a fresh one because a larger part kept it) and ``seconds``.  Phase timings go to the
``pipelines.identity.graph`` logger at INFO.
"""
from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from pipelines.allocator import keep_freed_memory
from pipelines.contract import IDENTIFIER_TYPES, PERSON_RECORD_KEYS


log = logging.getLogger(__name__)

SOURCES = tuple(PERSON_RECORD_KEYS)  # pipelines.contract; the order is part of the stored key types
ID_TYPES = IDENTIFIER_TYPES
WEB_SOURCE = "web_events"
SHARED_DEVICE_ID_TYPES = ("email", "user_id")
RECORD_KEY_PREFIX = "record"
CUSTOMER_ID_PREFIX = "cus_"
HASH_HEX_CHARS = 16
CUSTOMER_ID_PATTERN = f"^{CUSTOMER_ID_PREFIX}[0-9a-f]{{{HASH_HEX_CHARS}}}$"
MAX_ITERATIONS = 200
MAX_REHASH_ROUNDS = 20
CHUNK_ROWS = 1 << 22  # rows per chunk/partition where memory is bounded by chunking

LINK_COLUMNS = ("source", "source_key", "id_type", "id_value")
# The registry as resolve_identities returns it: customer_code is the id's hex value
# (customer_id = 'cus_' + 16 hex digits, see customer_ids); registry_table adds customer_id.
# A node key is key_type + ':' + key_value (the registry stores the two parts); the key types
# are sorted (the order of the Enum and of the DuckDB ENUM; nothing depends on it).
KEY_TYPES = tuple(sorted((*ID_TYPES, *(f"{RECORD_KEY_PREFIX}:{s}" for s in SOURCES)), key=lambda k: (k + ":").encode()))
KEY_TYPE = pl.Enum(KEY_TYPES)
REGISTRY_SCHEMA = {"key_type": KEY_TYPE, "key_value": pl.String, "customer_code": pl.UInt64, "key_hash": pl.UInt64,
                   "key_check": pl.UInt64}
REGISTRY_TABLE_SCHEMA = {"key_type": pl.String, "key_value": pl.String, "customer_id": pl.String,
                         **{c: t for c, t in REGISTRY_SCHEMA.items() if c not in ("key_type", "key_value")}}
LEGACY_KEY_COLUMN = "id_key"  # registries written before 2026-12-03: key_type + ':' + key_value in one column
REGISTRY_SAMPLE_ROWS = 4096  # stored hashes and codes are checked on this many rows

# key type (its position in KEY_TYPES, the Enum's physical u8) of each id_type / source code
_ID_KIND = np.array([KEY_TYPES.index(t) for t in ID_TYPES], np.uint8)
_RECORD_KIND = np.array([KEY_TYPES.index(f"{RECORD_KEY_PREFIX}:{s}") for s in SOURCES], np.uint8)
_WEB = SOURCES.index(WEB_SOURCE)
_SHARED_TYPES = [ID_TYPES.index(t) for t in SHARED_DEVICE_ID_TYPES]

# Fixed hash seeds, and a salt per source / id_type code mixed into the key hashes (any
# constants do; fixed so that runs are reproducible).  _SALTS[side, hash, code].
_SEEDS = ((0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A), (0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19))
_SALTS = np.array(
    [[[int.from_bytes(hashlib.sha256(f"{side}/{k}/{code}".encode()).digest()[:8], "big") for code in range(8)]
      for k in range(2)] for side in range(2)], dtype=np.uint64)


class IdentityResolutionError(RuntimeError):
    """Label propagation did not converge, or fresh ids could not be made unique."""


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


# --------------------------------------------------------------------------- input

_ALL_ONES = np.uint64(2**64 - 1)


@dataclass
class _Links:
    strings: pl.DataFrame  # source_key, id_value (String), row-aligned with the arrays below
    src: np.ndarray  # int8 source code (index into SOURCES)
    typ: np.ndarray  # int8 id_type code (index into ID_TYPES), -1 = no identifier on this row
    rh1: np.ndarray  # record key hash (u64), two independent ones
    rh2: np.ndarray
    ih1: np.ndarray  # identifier key hash (u64, < 2**63), all ones on rows without identifier
    ih2: np.ndarray


_TOP_BIT = 1 << 63


def _node_hash_exprs(value: pl.Expr, code: pl.Expr, record: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """The two 64-bit hashes of a node key, from its value (source_key / id_value), its code
    (source / id_type index) and whether it is a record: the one definition used for the links
    and for the registry.  The first hash is below 2**63 for identifiers and at least 2**63 for
    records, so the two kinds never meet and identifiers sort before records."""
    side = pl.when(record).then(pl.lit(0, pl.Int64)).otherwise(pl.lit(8, pl.Int64)) + code.cast(pl.Int64)
    salt = [pl.lit(pl.Series(np.concatenate([_SALTS[0, k], _SALTS[1, k]]))).gather(side) for k in (0, 1)]
    h1 = (value.hash(*_SEEDS[0]) ^ salt[0]) // 2 + record.cast(pl.UInt64) * pl.lit(_TOP_BIT, pl.UInt64)
    h2 = value.hash(*_SEEDS[1]) ^ salt[1]
    return h1, h2


def _prepare_links(links: pl.LazyFrame | pl.DataFrame) -> _Links:
    lf = links.lazy() if isinstance(links, pl.DataFrame) else links
    missing = [c for c in LINK_COLUMNS if c not in lf.collect_schema().names()]
    if missing:
        raise ValueError(f"links is missing column(s) {', '.join(missing)}")
    has_id = pl.col("id_type").is_not_null() & pl.col("id_value").is_not_null()
    try:
        df = lf.select(
            pl.col("source_key").cast(pl.String),
            pl.col("id_value").cast(pl.String),
            s=pl.col("source").cast(pl.String).cast(pl.Enum(SOURCES)).to_physical().cast(pl.Int8),
            t=pl.when(has_id).then(pl.col("id_type").cast(pl.String).cast(pl.Enum(ID_TYPES))
                                   .to_physical().cast(pl.Int8)).fill_null(-1),
        ).collect()
    except pl.exceptions.InvalidOperationError:
        for c, allowed in (("source", SOURCES), ("id_type", ID_TYPES)):
            values = lf.select(pl.col(c).cast(pl.String).drop_nulls().unique()).collect().to_series()
            unknown = sorted(set(values.to_list()) - set(allowed))
            if unknown:
                raise ValueError(
                    f"links has unknown {c} value(s) {unknown[:10]}; expected one of {list(allowed)}") from None
        raise
    for c in ("source_key", "s"):
        if df[c].null_count():
            raise ValueError(f"links has {df[c].null_count()} row(s) without {'source' if c == 's' else c}")
    identified = pl.col("t") >= 0
    rh1, rh2 = _node_hash_exprs(pl.col("source_key"), pl.col("s"), pl.lit(True))
    ih1, ih2 = _node_hash_exprs(pl.col("id_value"), pl.col("t").clip(0), pl.lit(False))
    hashes = df.select(rh1=rh1, rh2=rh2, ih1=pl.when(identified).then(ih1).otherwise(pl.lit(_ALL_ONES, pl.UInt64)),
                       ih2=ih2)
    strings = df.select("source_key", "id_value")
    if strings.n_chunks() > 1:
        strings = strings.rechunk()  # gathers on one chunk are several times faster
    return _Links(strings, df["s"].to_numpy(), df["t"].to_numpy(),
                  *(hashes[c].to_numpy() for c in ("rh1", "rh2", "ih1", "ih2")))


# --------------------------------------------------------------------------- encoding


@dataclass
class _Groups:
    perm: np.ndarray  # row numbers, grouped: the rows of one key are contiguous
    new: np.ndarray  # bool per position of perm: first row of its group
    code: np.ndarray  # per row, a code that is injective on the key (h1, or the rank of (h1, h2))
    h1: np.ndarray  # per group, in group order: the key's two hashes
    h2: np.ndarray

    def ids(self) -> np.ndarray:
        """Dense group number per position of perm."""
        g = np.cumsum(self.new, dtype=np.int64)
        g -= 1
        return g


class _Collision(Exception):
    pass


def _group(h1: np.ndarray, h2: np.ndarray, count: int) -> _Groups:
    """Group the rows by h1 (exactly), groups in h1 order; only the `count` rows with the smallest
    h1 are kept (the others carry the all-ones sentinel).  Raises _Collision when h2 differs
    inside a group."""
    n = len(h1)
    if count == 0:
        none = np.zeros(0, np.uint64)
        return _Groups(np.zeros(0, np.int64), np.zeros(0, bool), h1, none, none)
    bits = max(1, (n - 1).bit_length())
    # value sort of (hash prefix | row number): far faster than an argsort; Polars' sort of
    # u64 values, single-threaded, takes a third of NumPy's time here (60M values: 1.5 s, 4.9 s;
    # 1.9 s with its threads on 2 cores)
    packed = np.right_shift(h1, np.uint64(bits))
    np.left_shift(packed, np.uint64(bits), out=packed)
    np.bitwise_or(packed, np.arange(n, dtype=np.uint64), out=packed)
    ordered = pl.Series(packed).sort(multithreaded=False).to_numpy()[:count]
    del packed
    perm = np.bitwise_and(ordered, np.uint64((1 << bits) - 1)).view(np.int64)
    prefix = np.right_shift(ordered, np.uint64(bits))  # (the sorted array is read-only)
    del ordered
    new = np.empty(count, bool)
    new[0] = True
    np.not_equal(prefix[1:], prefix[:-1], out=new[1:])
    full = h1[perm]
    # several full hashes under one prefix (a few thousand prefixes at 10^8 keys): order the rows
    # of those prefixes (contiguous, found by binary search) by the full hash
    clash = np.not_equal(full[1:], full[:-1])
    clash &= ~new[1:]
    if clash.any():
        shared = np.unique(prefix[np.flatnonzero(clash) + 1])
        starts = np.searchsorted(prefix, shared, side="left")
        lengths = np.searchsorted(prefix, shared, side="right") - starts
        at = np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(lengths.sum())
        order = np.lexsort((full[at], np.repeat(np.arange(len(shared)), lengths)))
        perm[at] = perm[at][order]
        full[at] = full[at][order]
        new[at[1:]] = full[at[1:]] != full[at[1:] - 1]
    del clash, prefix
    second = h2[perm]
    same = ~new[1:]
    same &= second[1:] != second[:-1]
    if same.any():
        raise _Collision
    return _Groups(perm, new, h1, full[new], second[new])


def _pair_codes(h1: np.ndarray, h2: np.ndarray, valid: np.ndarray | None) -> np.ndarray:
    """A code per row that is injective on the pair (h1, h2) and orders as the pairs do: their
    dense rank (slower than grouping on h1 alone; all ones where not valid)."""
    codes = pl.DataFrame({"a": h1, "b": h2}).select(pl.struct("a", "b").rank("dense").cast(pl.UInt64))["a"].to_numpy()
    if valid is not None:
        codes = np.where(valid, codes, _ALL_ONES)
    return codes


def _group_rows(h1: np.ndarray, h2: np.ndarray, count: int, valid: np.ndarray | None = None) -> _Groups:
    try:
        return _group(h1, h2, count)
    except _Collision:
        log.warning("identity resolution: 64-bit hash collision, grouping on both hashes (slower)")
        codes = _pair_codes(h1, h2, valid)
        g = _group(codes, codes, count)
        first = g.perm[g.new]
        return _Groups(g.perm, g.new, codes, h1[first], h2[first])


# --------------------------------------------------------------------------- components


def _components(u: np.ndarray, v: np.ndarray, n: int, max_iterations: int) -> tuple[np.ndarray, int]:
    """Root (smallest node of its component) of each node 0..n-1 of the undirected edges (u, v)."""
    root = np.arange(n, dtype=np.int64)
    rounds = 0
    while len(u):
        rounds += 1
        if rounds > max_iterations:
            raise IdentityResolutionError(
                f"label propagation did not converge within {max_iterations} iterations")
        # hook: each root takes the smallest label it is linked to (u, v are roots here)
        touched = np.concatenate([u, v])
        del u, v
        half = len(touched) // 2
        lo = np.minimum(touched[:half], touched[half:])
        hi = np.maximum(touched[:half], touched[half:])
        np.minimum.at(root, hi, lo)
        del lo, hi
        # pointer jumping on the touched nodes (every chain of this round runs through them);
        # after root[touched] = nxt, root[touched] is nxt: no need to gather it again
        cur = root[touched]
        while True:
            nxt = root[cur]
            if np.array_equal(nxt, cur):
                break
            root[touched] = nxt
            cur = nxt
        # contract: edges between the roots of their ends, settled ones dropped
        keep = cur[:half] != cur[half:]
        u, v = cur[:half][keep], cur[half:][keep]
        del touched, cur, nxt, keep
    # final shortcut for the nodes hooked in earlier rounds
    while True:
        nxt = root[root]
        if np.array_equal(nxt, root):
            return root, rounds
        root = nxt


# --------------------------------------------------------------------------- ids


def _key_types(kinds: np.ndarray) -> pl.Series:
    """The key_type Enum series of u8 kinds (positions in KEY_TYPES)."""
    return pl.Series("key_type", kinds, dtype=pl.UInt8).cat.to(KEY_TYPE)


def customer_ids(codes: np.ndarray) -> pl.Series:
    """The customer_id of each u64 code: 'cus_' + its 16 lower-case hex digits (the one
    definition of the id format).  Written in chunks through a byte -> two hex digits table,
    so that the only large allocation is the text itself."""
    n = len(codes)
    width = len(CUSTOMER_ID_PREFIX) + HASH_HEX_CHARS  # 20 bytes = 10 two-byte cells per id
    text = np.empty((n, width // 2), np.uint16)
    text[:, :2] = np.frombuffer(CUSTOMER_ID_PREFIX.encode(), np.uint16)
    for at in range(0, n, CHUNK_ROWS):
        part = codes[at:at + CHUNK_ROWS].astype(">u8").view(np.uint8).reshape(-1, 8)
        np.take(_HEX_PAIRS, part, out=text[at:at + len(part), 2:], mode="clip")
    offsets = np.arange(0, n * width + 1, width, dtype=np.int64)
    arr = pa.Array.from_buffers(pa.large_string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(text)])
    return pl.Series("customer_id", arr)


# the two ASCII hex digits of each byte value, as the u16 that holds them in memory order
_HEX_PAIRS = np.frombuffer("".join(f"{b:02x}" for b in range(256)).encode(), np.uint16).copy()

# splitmix64's constants: a fresh id's code is a 64-bit mix of its anchor's two key hashes
_MIX = tuple(np.uint64(c) for c in (0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB,
                                    0xD1B54A32D192ED03))


def fresh_codes(h1: np.ndarray, h2: np.ndarray, attempt: int = 0) -> np.ndarray:
    """The candidate code of a new id (see customer_ids) for each anchor key with hashes h1, h2
    (_node_hash_exprs), on the given attempt (0, then 1, 2, ... after clashes): splitmix64's
    finaliser of ``h1 ^ (h2 * K0) + attempt * K3`` (mod 2**64)."""
    with np.errstate(over="ignore"):
        x = h2 * _MIX[0]
        x ^= h1
        if attempt:
            x += np.uint64(attempt) * _MIX[3]
        x ^= x >> np.uint64(30)
        x *= _MIX[1]
        x ^= x >> np.uint64(27)
        x *= _MIX[2]
        x ^= x >> np.uint64(31)
    return x


def _fresh_ids(h1: np.ndarray, h2: np.ndarray, taken: np.ndarray) -> np.ndarray:
    """Codes of new ids for components with anchor hashes (h1, h2): fresh_codes on attempt 0,
    and on the next attempt for those whose code is taken (by a previous id or a code given out
    earlier) or drawn by two components this round (the one with the smaller anchor keeps it)."""
    n = len(h1)
    out = np.empty(n, np.uint64)
    pending = np.arange(n)
    for attempt in range(MAX_REHASH_ROUNDS):
        if not len(pending):
            return out
        codes = fresh_codes(h1[pending], h2[pending], attempt)
        bad = np.zeros(len(pending), bool)
        ordered = pl.Series(codes).sort(multithreaded=False).to_numpy()  # (see _group)
        if np.any(ordered[1:] == ordered[:-1]):  # two components drew the same code
            cand = pl.DataFrame({"i": np.arange(len(pending)), "code": codes, "h1": h1[pending], "h2": h2[pending]})
            keep = cand.sort("code", "h1", "h2", "i").unique("code", keep="first", maintain_order=True)["i"].to_numpy()
            bad[:] = True
            bad[keep] = False
        if len(taken):
            used = pl.Series(taken)
            clashing = used.filter(used.is_in(pl.Series(codes).implode()))  # a set of the new codes, not of taken
            if len(clashing):
                bad |= np.isin(codes, clashing.to_numpy())
        if not bad.any():  # (the usual last round: nothing to draw again, nothing to add to taken)
            out[pending] = codes
            return out
        good = ~bad
        out[pending[good]] = codes[good]
        taken = np.concatenate([taken, codes[good]])
        pending = pending[bad]
    if len(pending):
        raise IdentityResolutionError(f"could not make {len(pending)} fresh customer_id(s) unique")
    return out


def _canonical_codes(cids: pl.Series) -> np.ndarray | None:
    """The hex values of ids that all have the canonical form 'cus_' + 16 lower-case hex
    digits (read from the Arrow buffer), or None if one of them does not."""
    n = len(cids)
    width = len(CUSTOMER_ID_PREFIX) + HASH_HEX_CHARS
    arr = cids.to_arrow(compat_level=pl.CompatLevel.oldest())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if arr.null_count or not pa.types.is_large_string(arr.type):
        return None
    offsets = np.frombuffer(arr.buffers()[1], np.int64)[arr.offset:arr.offset + n + 1]
    if offsets[-1] - offsets[0] != n * width or np.any(np.diff(offsets) != width):
        return None
    text = np.frombuffer(arr.buffers()[2], np.uint8)[offsets[0]:offsets[-1]].reshape(n, width)
    head = np.frombuffer(CUSTOMER_ID_PREFIX.encode(), np.uint8)
    if not np.array_equal(text[:, :len(head)], np.broadcast_to(head, (n, len(head)))):
        return None
    nib = text[:, len(head):] - np.uint8(48)  # '0'..'9' -> 0..9, 'a'..'f' -> 49..54
    letter = nib >= 49
    bad = nib > 54
    bad |= (nib > 9) & ~letter
    if bad.any():
        return None
    nib -= letter * np.uint8(39)
    packed = nib[:, 0::2] << 4
    packed |= nib[:, 1::2]
    return packed.view(">u8").ravel().astype(np.uint64)


def _cid_codes(cids: pl.Series) -> np.ndarray:
    """The hex value of each customer_id; every id must have the form customer_ids gives."""
    codes = np.empty(len(cids), np.uint64)
    for at in range(0, len(cids), CHUNK_ROWS):  # in chunks: bounded memory
        part = _canonical_codes(cids.slice(at, CHUNK_ROWS))
        if part is None:
            bad = cids.slice(at, CHUNK_ROWS).str.contains(CUSTOMER_ID_PATTERN).not_().arg_true()[0] + at
            raise ValueError(f"registry row {bad}: customer_id {cids[bad]!r} does not have the form "
                             f"{CUSTOMER_ID_PREFIX!r} + {HASH_HEX_CHARS} lower-case hex digits")
        codes[at:at + len(part)] = part
    return codes


def _match_registry(nodes: "_Nodes", prev: "_Registry") -> tuple[np.ndarray, np.ndarray]:
    """(node, registry row) of every registry row whose key is a current node key: the registry
    hashes are searched in the nodes' sorted first hashes and confirmed by the second."""
    n = len(nodes.hash)
    if not n or not prev.valid.any():
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    if n > 1 and not np.all(nodes.hash[1:] > nodes.hash[:-1]):
        # two node keys share a first hash (grouped on both hashes): join on both
        joined = pl.DataFrame({"h": nodes.hash, "c": nodes.check, "node": np.arange(n)}).join(
            pl.DataFrame({"h": prev.hash, "c": prev.check, "reg": np.arange(prev.n)}).filter(pl.Series(prev.valid)),
            on=["h", "c"])
        return joined["node"].to_numpy(), joined["reg"].to_numpy()
    at = np.searchsorted(nodes.hash, prev.hash)
    np.minimum(at, n - 1, out=at)
    ok = nodes.hash[at] == prev.hash
    ok &= nodes.check[at] == prev.check
    ok &= prev.valid
    if ok.all():  # every registry key is a node (a run over the same or more data)
        return at, np.arange(prev.n)
    reg = np.flatnonzero(ok)
    return at[reg], reg


# --------------------------------------------------------------------------- main


@dataclass
class _Nodes:
    """The graph's nodes: identifiers (in first-hash order), then records (in first-hash order),
    so that ``hash`` is strictly increasing unless two keys share a first hash."""
    strings: pl.DataFrame  # source_key, id_value of the link rows
    ident_rows: np.ndarray  # a link row of each identifier node
    rec_rows: np.ndarray  # a link row of each record node
    comp: np.ndarray  # component per node
    kind: np.ndarray  # key type per node (u8: position in KEY_TYPES)
    hash: np.ndarray  # the two node-key hashes (_node_hash_exprs)
    check: np.ndarray

    @cached_property
    def source_keys(self) -> pl.Series:
        """source_key of every record node (gathered once: the records' values and the
        assignments both use it)."""
        return self.strings["source_key"].gather(self.rec_rows)

    def values(self, mask: np.ndarray) -> pl.Series:
        """The key values (id_value of identifiers, source_key of records) of the nodes where
        mask is true, in node order."""
        n_ident = len(self.ident_rows)
        ir, rec = self.ident_rows[mask[:n_ident]], mask[n_ident:]
        records = self.source_keys if rec.all() else self.strings["source_key"].gather(self.rec_rows[rec])
        return pl.concat([self.strings["id_value"].gather(ir), records], rechunk=False).alias("key_value")


def resolve_identities(
    links: pl.LazyFrame | pl.DataFrame,
    registry: pl.DataFrame | None = None,
    *,
    max_iterations: int = MAX_ITERATIONS,
) -> IdentityResult:
    """Resolve source records into persons; see the module docstring for the rules.  The C
    allocator keeps freed memory while it runs (pipelines.allocator): the resolution makes and
    drops arrays of 10^8 bytes by the dozen."""
    with keep_freed_memory():
        return _resolve(links, registry, max_iterations)


def _resolve(links: pl.LazyFrame | pl.DataFrame, registry: pl.DataFrame | None, max_iterations: int) -> IdentityResult:
    t = _Timer()
    prev = _prepare_registry(registry)
    t.lap("registry")
    L = _prepare_links(links)
    n = len(L.src)
    t.lap("prepare")

    # records: rows grouped by (source, source_key); record id = group number
    rg = _group_rows(L.rh1, L.rh2, n)
    rid = np.empty(n, np.int64)
    rid[rg.perm] = rg.ids()
    rec_rows = rg.perm[rg.new]  # one row per record, in record-id order
    n_rec = len(rec_rows)
    rec_hash, rec_check = rg.h1, rg.h2
    del rg, L.rh1, L.rh2
    t.lap("records")

    # identifiers: rows that carry one grouped by (id_type, id_value)
    has_id = L.typ >= 0
    ig = _group_rows(L.ih1, L.ih2, int(has_id.sum()), has_id)
    del has_id
    t.lap("identifiers")

    # shared devices: web records with > 1 distinct email or > 1 distinct user_id
    shared = np.zeros(n_rec, bool)
    web_rows = []
    web = L.src == _WEB
    lo, hi = np.empty(n_rec, np.uint64), np.empty(n_rec, np.uint64)
    for code in _SHARED_TYPES:
        rows = np.flatnonzero(web & (L.typ == code))
        if len(rows):
            r, h = rid[rows], ig.code[rows]
            lo.fill(_ALL_ONES)
            hi.fill(0)
            np.minimum.at(lo, r, h)
            np.maximum.at(hi, r, h)
            shared |= hi > lo
            web_rows.append(rows)
            del r, h
    del web, lo, hi
    n_shared = int(shared.sum())
    perm, new = ig.perm, ig.new
    kept = None  # the identifiers (groups) that keep a row, when some lost all of theirs
    if n_shared:
        dropped = np.zeros(n, bool)
        for rows in web_rows:
            dropped[rows[shared[rid[rows]]]] = True
        keep = ~dropped[perm]
        gid = np.cumsum(new, dtype=np.int32 if n < 2**31 else np.int64)[keep]  # group number + 1
        perm = perm[keep]
        new = np.empty(len(perm), bool)
        if len(perm):
            new[0] = True
            np.not_equal(gid[1:], gid[:-1], out=new[1:])
        kept = gid[new]
        kept -= 1
        del dropped, keep, gid
    del web_rows, shared
    n_edges = len(perm)
    ident_rows = perm[new]  # one row per identifier
    n_ident = len(ident_rows)
    # the nodes: identifiers, then records (each in first-hash order), written in place
    node_hash, node_check = np.empty(n_ident + n_rec, np.uint64), np.empty(n_ident + n_rec, np.uint64)
    for out, per_group, per_record in ((node_hash, ig.h1, rec_hash), (node_check, ig.h2, rec_check)):
        if kept is None:
            out[:n_ident] = per_group
        else:
            np.take(per_group, kept, out=out[:n_ident], mode="clip")
        out[n_ident:] = per_record
    rec_hash, rec_check = node_hash[n_ident:], node_check[n_ident:]
    del ig, kept, L.ih1, L.ih2
    t.lap("shared")

    # record-record edges: every identifier links its records to its first record
    rec_of = rid[perm]
    del perm, rid
    first_rec = rec_of[new]
    u = np.repeat(first_rec, np.diff(np.append(np.flatnonzero(new), len(new))))
    del new
    linked = u != rec_of
    u, v = u[linked], rec_of[linked]
    del linked, rec_of
    t.lap("edges")

    root, iterations = _components(u, v, n_rec, max_iterations)
    del u, v
    is_root = root == np.arange(n_rec)
    # a component's anchor: its root, the record with the smallest record number, i.e. the
    # smallest record-key hash (the records are numbered in hash order)
    anchor = np.flatnonzero(is_root)
    comp_of_root = np.cumsum(is_root, dtype=np.int64)
    comp_of_root -= 1
    n_comp = len(anchor)
    node_comp = np.empty(n_ident + n_rec, np.int64)
    rec_comp = node_comp[n_ident:]
    np.take(comp_of_root, root, out=rec_comp, mode="clip")
    np.take(rec_comp, first_rec, out=node_comp[:n_ident], mode="clip")
    del root, is_root, comp_of_root, first_rec
    anchor_hash, anchor_check = rec_hash[anchor], rec_check[anchor]
    del anchor
    t.lap("components")

    node_kind = np.empty(n_ident + n_rec, np.uint8)
    np.take(_ID_KIND, L.typ[ident_rows], out=node_kind[:n_ident], mode="clip")
    np.take(_RECORD_KIND, L.src[rec_rows], out=node_kind[n_ident:], mode="clip")
    nodes = _Nodes(L.strings, ident_rows, rec_rows, comp=node_comp, kind=node_kind, hash=node_hash, check=node_check)
    del node_comp, node_kind, node_hash, node_check, rec_hash, rec_check
    node, reg = _match_registry(nodes, prev)
    hit_comp = nodes.comp[node]
    t.lap("match")
    inherited, merged_ids, split_ids = _inherit(prev, reg, hit_comp, n_comp, anchor_hash, anchor_check)
    t.lap("inherit")

    # one id (its hex value) per component: inherited, or fresh from the anchor's hashes
    need = np.ones(n_comp, bool)
    need[inherited["comp"].to_numpy()] = False
    fresh = np.flatnonzero(need)
    del need
    comp_code = np.empty(n_comp, np.uint64)
    comp_code[fresh] = _fresh_ids(anchor_hash[fresh], anchor_check[fresh], prev.code)
    comp_code[inherited["comp"].to_numpy()] = prev.code[inherited["reg"].to_numpy()]
    del inherited, fresh, anchor_hash, anchor_check
    t.lap("fresh")
    assignments = pl.DataFrame({
        "source": pl.Series(SOURCES).gather(pl.Series(L.src[rec_rows])),
        "source_key": nodes.source_keys,
        "customer_id": customer_ids(comp_code[rec_comp]),
    })
    t.lap("assignments")
    new_registry = _registry_out(nodes, prev, node, reg, hit_comp, comp_code)
    del hit_comp
    t.lap("registry_out")
    stats = {
        "records": n_rec,
        "identifiers": n_ident,
        "edges": n_edges,
        "components": n_comp,
        "iterations": iterations,
        "shared_devices": n_shared,
        "merged_ids": merged_ids,
        "split_ids": split_ids,
        "seconds": round(t.total, 3),
    }
    log.info("identity resolution: %s; phases %s", stats, t.phases)
    return IdentityResult(assignments=assignments, registry=new_registry, stats=stats)


# --------------------------------------------------------------------------- registry


@dataclass
class _Registry:
    types: pl.Series  # key_type (KEY_TYPE; null for a key of no known type, see _split_legacy_keys)
    values: pl.Series  # key_value
    hash: np.ndarray  # the key's two hashes (_node_hash_exprs), 0 where not valid
    check: np.ndarray
    valid: np.ndarray  # the key has the form of a node key (so it can match one)
    code: np.ndarray  # the id's hex value (customer_ids)

    @property
    def n(self) -> int:
        return len(self.values)


_KIND_IS_RECORD = pl.Series([k.startswith(f"{RECORD_KEY_PREFIX}:") for k in KEY_TYPES])
_KIND_CODE = pl.Series([SOURCES.index(k.split(":", 1)[1]) if k.startswith(f"{RECORD_KEY_PREFIX}:")
                        else ID_TYPES.index(k) for k in KEY_TYPES], dtype=pl.Int64)


def _key_hashes(types: pl.Series, values: pl.Series) -> pl.DataFrame:
    """key_hash, key_check of registry keys (key_type, key_value): the hashes _prepare_links
    gives the same node (null where key_type is null: a key of no known type matches nothing)."""
    kind = pl.col("t").to_physical().cast(pl.Int64)
    ok = pl.col("t").is_not_null()
    record, code = (pl.lit(table).gather(kind.fill_null(0)) for table in (_KIND_IS_RECORD, _KIND_CODE))
    h1, h2 = _node_hash_exprs(pl.col("v"), code, record)
    return pl.DataFrame({"t": types.cast(KEY_TYPE), "v": values}).select(
        key_hash=pl.when(ok).then(h1), key_check=pl.when(ok).then(h2))


def _split_legacy_keys(keys: pl.Series) -> pl.DataFrame:
    """key_type, key_value of keys in the one-column form 'key_type:key_value' (registries
    written before the two columns).  A key of no known type (no colon, an unknown id type or
    source) gets a null key_type and keeps the whole string as its key_value."""
    k = pl.col("k")
    head_end = k.str.find(":", literal=True)
    head, rest = k.str.slice(0, head_end), k.str.slice(head_end + 1)
    src_end = rest.str.find(":", literal=True)
    record = head == RECORD_KEY_PREFIX
    typ = pl.when(record).then(pl.when(src_end.is_not_null()).then(k.str.slice(0, head_end + 1 + src_end))) \
        .otherwise(head)
    key_type = typ.cast(KEY_TYPE, strict=False)
    value = pl.when(record).then(rest.str.slice(src_end + 1)).otherwise(rest)
    return pl.DataFrame({"k": keys}).select(
        key_type=key_type, key_value=pl.when(key_type.is_not_null()).then(value).otherwise(k))


def _known_types(reg: pl.DataFrame) -> pl.DataFrame:
    """key_type as KEY_TYPE; a stored type no longer known (e.g. of a removed source) becomes
    null with the whole key string as its value, the form _split_legacy_keys gives."""
    typed = reg["key_type"].cast(KEY_TYPE, strict=False)  # text, Categorical (a DuckDB ENUM) or another Enum
    lost = typed.is_null() & reg["key_type"].is_not_null()
    if lost.any():
        whole = pl.concat_str(reg["key_type"].cast(pl.String), pl.lit(":"), reg["key_value"])
        reg = reg.with_columns(key_value=pl.when(lost).then(whole).otherwise(pl.col("key_value")))
    return reg.with_columns(key_type=typed)


def _sample(n: int) -> pl.Series:
    return pl.Series(np.unique(np.linspace(0, n - 1, min(n, REGISTRY_SAMPLE_ROWS)).astype(np.int64)))


def _prepare_registry(registry: pl.DataFrame | None) -> _Registry:
    """The previous registry with its key hashes and id codes.  It needs ``key_type`` and
    ``key_value`` (or the older one-column ``id_key``) and ``customer_code`` or ``customer_id``
    (REGISTRY_TABLE_SCHEMA); rows without a key value or an id are ignored.  The stored
    ``key_hash``, ``key_check`` and ``customer_code`` columns are used when present and right on
    an evenly spaced sample of rows (the codes are checked against ``customer_id`` when it is
    there too); otherwise (an older registry, or hashes from another Polars version) they are
    computed from the keys and ``customer_id`` (slower, logged)."""
    if registry is None:
        registry = pl.DataFrame(schema=REGISTRY_SCHEMA)
    cols = set(registry.columns)
    two = {"key_type", "key_value"} <= cols
    if not (two or LEGACY_KEY_COLUMN in cols) or not cols & {"customer_code", "customer_id"}:
        raise ValueError("registry needs columns key_type and key_value (or id_key) and customer_code or customer_id")
    if not two:
        log.info("identity resolution: splitting the registry's one-column keys (%s rows)", registry.height)
        registry = registry.with_columns(_split_legacy_keys(registry[LEGACY_KEY_COLUMN])).drop(LEGACY_KEY_COLUMN)
        cols = set(registry.columns)
    table = {**REGISTRY_TABLE_SCHEMA, "key_type": registry.schema["key_type"]}
    reg = registry.select(pl.col(c).cast(t) for c, t in table.items() if c in cols)
    if reg["key_value"].null_count():  # (filtering copies every key: only when there is something to drop)
        reg = reg.filter(pl.col("key_value").is_not_null())
    if reg.schema["key_type"] != KEY_TYPE:
        reg = _known_types(reg)
    code = reg["customer_code"] if "customer_code" in cols else None
    if code is not None and "customer_id" in cols:
        sample = _sample(reg.height)
        if code.null_count() or not _same_codes(reg["customer_id"].gather(sample), code.gather(sample)):
            code = None  # a code is missing or wrong: all are read from customer_id again
    if code is None:
        reg = reg.filter(pl.col("customer_id").is_not_null())
        codes = _cid_codes(reg["customer_id"])
    else:
        if code.null_count():
            reg = reg.filter(pl.col("customer_code").is_not_null())
        codes = reg["customer_code"].to_numpy()
    sample = _sample(reg.height)
    hashes = reg.select("key_hash", "key_check") if {"key_hash", "key_check"} <= cols else None
    if hashes is not None and not _key_hashes(reg["key_type"].gather(sample), reg["key_value"].gather(sample)) \
            .equals(hashes[sample]):
        hashes = None
    if hashes is None:
        if reg.height:
            log.info("identity resolution: computing the registry's key hashes (%s keys)", reg.height)
        hashes = _key_hashes(reg["key_type"], reg["key_value"])
    return _Registry(
        types=reg["key_type"], values=reg["key_value"], code=codes,
        hash=hashes["key_hash"].fill_null(0).to_numpy(), check=hashes["key_check"].fill_null(0).to_numpy(),
        valid=hashes["key_hash"].is_not_null().to_numpy())


def _same_codes(ids: pl.Series, codes: pl.Series) -> bool:
    if ids.is_empty():
        return True
    parsed = _canonical_codes(ids)
    return parsed is not None and np.array_equal(parsed, codes.to_numpy())


def registry_table(registry: pl.DataFrame) -> pl.DataFrame:
    """The registry as it is stored (REGISTRY_TABLE_SCHEMA): with each row's customer_id (the
    key type stays an Enum here; the warehouse stores it as a DuckDB ENUM of KEY_TYPES, which
    reads back in two thirds of the time text takes)."""
    ids = customer_ids(registry["customer_code"].to_numpy())
    return registry.with_columns(ids).select(list(REGISTRY_TABLE_SCHEMA))


def _registry_out(nodes: _Nodes, prev: _Registry, node: np.ndarray, reg: np.ndarray, hit_comp: np.ndarray,
                  comp_code: np.ndarray) -> pl.DataFrame:
    """The previous registry rows, each matched one (reg: at node, of component hit_comp) with its
    component's current id, then the current nodes the registry did not hold (key values are
    gathered for these only)."""
    fresh_node = None  # every node is new to the registry (a first run): no mask, no copies
    if len(node):
        fresh_node = np.ones(len(nodes.comp), bool)
        fresh_node[node] = False

    def fresh(nodes_column: np.ndarray) -> np.ndarray:
        return nodes_column if fresh_node is None else nodes_column[fresh_node]

    def appended(head: np.ndarray, nodes_column: np.ndarray) -> np.ndarray:
        tail = fresh(nodes_column)
        if not len(head):
            return tail
        return np.concatenate([head, tail]) if len(tail) else head

    code = comp_code[fresh(nodes.comp)]
    if prev.n:
        code = np.concatenate([prev.code, code])
    if len(node):
        code[reg] = comp_code[hit_comp]
    new_types = _key_types(fresh(nodes.kind))
    new_values = nodes.values(np.ones(len(nodes.comp), bool) if fresh_node is None else fresh_node)
    out = pl.DataFrame({
        "key_type": pl.concat([prev.types.alias("key_type"), new_types], rechunk=False) if prev.n else new_types,
        "key_value": pl.concat([prev.values.alias("key_value"), new_values], rechunk=False) if prev.n else new_values,
        "customer_code": code,
        "key_hash": appended(prev.hash, nodes.hash),
        "key_check": appended(prev.check, nodes.check),
    })
    if not prev.valid.all():
        ok = pl.Series(np.concatenate([prev.valid, np.ones(out.height - prev.n, bool)]))
        out = out.with_columns(pl.when(ok).then(pl.col(c)) for c in ("key_hash", "key_check"))
    return out.select(pl.col(c).cast(t) for c, t in REGISTRY_SCHEMA.items())


def _inherit(prev: _Registry, reg: np.ndarray, comp: np.ndarray, n_comp: int,
             anchor_hash: np.ndarray, anchor_check: np.ndarray) -> tuple[pl.DataFrame, int, int]:
    """Components that keep a previous id: (comp, reg: a registry row holding it), merged, split.
    reg: the registry rows whose key is a node this run, comp: that node's component."""
    empty = pl.DataFrame(schema={"comp": pl.Int64, "reg": pl.Int64})
    if not len(reg):
        return empty, 0, 0
    code = prev.code[reg]  # previous id of each hit, as an integer
    # votes: most components' hits all hold one id; find those that hold several
    any_row = np.full(n_comp, -1, np.int64)
    any_row[comp] = reg
    hit = any_row >= 0
    first = np.zeros(n_comp, np.uint64)
    first[hit] = prev.code[any_row[hit]]
    many = np.zeros(n_comp, bool)
    many[comp[first[comp] != code]] = True
    one = hit & ~many
    cand = pl.DataFrame({"comp": np.flatnonzero(one), "code": first[one], "reg": any_row[one]},
                        schema={"comp": pl.Int64, "code": pl.UInt64, "reg": pl.Int64})
    cand = cand.with_columns(n=pl.lit(None, pl.Int64))  # votes, counted below where needed
    hit_codes = [cand["code"]]
    del any_row, hit, first, one
    if many.any():
        # components merging several previous persons: the id held by most keys, then the smallest id
        sel = many[comp]
        counted = (
            pl.DataFrame({"comp": comp[sel], "code": code[sel], "reg": reg[sel]})
            .group_by("comp", "code")
            .agg(n=pl.len().cast(pl.Int64), reg=pl.col("reg").min())
        )
        hit_codes.append(counted["code"])
        best = (  # codes order as the ids do (same width, lower-case hex)
            counted
            .filter(pl.col("n") == pl.col("n").max().over("comp"))
            .filter(pl.col("code") == pl.col("code").min().over("comp"))
            .select(cand.columns)
        )
        cand = pl.concat([cand, best.cast(cand.schema)])
    # an id claimed by several components (a split) stays with the one with most keys holding
    # it, then with the one whose anchor has the smallest key hashes; the others get fresh ids
    winners = cand
    ordered = cand["code"].sort(multithreaded=False).to_numpy()  # (a sort: far cheaper than is_duplicated)
    if np.any(ordered[1:] == ordered[:-1]):
        claimed = cand["code"].is_duplicated()
        winners = cand.filter(~claimed)
        top = cand.filter(claimed)
        counting = np.zeros(n_comp, bool)
        counting[top.filter(pl.col("n").is_null())["comp"].to_numpy()] = True
        votes = np.bincount(comp[counting[comp]], minlength=n_comp)
        top = top.with_columns(n=pl.coalesce("n", pl.Series(votes[top["comp"].to_numpy()], dtype=pl.Int64)))
        top = top.filter(pl.col("n") == pl.col("n").max().over("code"))
        tops = top["comp"].to_numpy()
        top = (
            top.with_columns(h1=pl.Series(anchor_hash[tops]), h2=pl.Series(anchor_check[tops]))
            .filter(pl.col("h1") == pl.col("h1").min().over("code"))
            .filter(pl.col("h2") == pl.col("h2").min().over("code"))
        )
        winners = pl.concat([winners, top.select(cand.columns)])
    del ordered
    split_ids = cand.height - winners.height
    merged_ids = pl.concat(hit_codes).n_unique() - winners.height if len(hit_codes) > 1 or split_ids else 0
    return winners.select("comp", "reg"), merged_ids, split_ids


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
