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
  its id too.
* Stable ids: a component whose keys are in the previous registry inherits the
  ``customer_id`` held by most of its keys (ties: the smallest id).  When several
  components claim the same id (a split), the one with most keys holding it keeps
  it (ties: the component whose smallest key sorts first); the others get fresh
  ids.  A component without registry hit gets ``'cus_' + sha256(smallest node
  key)[:16]`` (hex; keys compared as UTF-8 bytes); if that id is already taken
  (previous registry or this run) it is hashed again as ``sha256(key + '#1')``,
  ``'#2'``, ...
* Registry out = every current key -> its current id, plus the previous entries
  whose keys are absent this run, kept with their last id.  An identifier that
  disappears and later returns therefore gets its person's id back -- unless
  that id has meanwhile been kept by another component that holds more registry
  keys for it (the split rule), in which case it gets a fresh id.

Algorithm (vectorised Polars / NumPy / DuckDB; no Python loop over rows, no graph library)
-----------------------------------------------------------------------------------------
1. Dictionary encoding to integer node ids: record keys (source, source_key) and
   identifier keys (id_type, id_value) are hashed with Polars (64 bits, salted per
   source / id_type) and grouped by sorting the hashes (a value sort of
   ``hash prefix | row number``, then an exact split on the full hash).  A second,
   independent 64-bit hash must be constant inside every group, otherwise the
   exact string encoding is used instead (slow, logged), so the ids are exact
   unless two keys collide in both hashes at once (~1e-22 at 10^8 keys).
2. Each identifier held by k >= 2 records gives k - 1 record-record edges (a star
   on its first record); identifiers of a single record connect nothing.
3. Connected components by iterative min-label propagation with hooking and
   pointer jumping on the integer edge list: every round each edge hooks the
   root of its larger label under the smaller one (``np.minimum.at``), labels
   are shortcut (``label = label[label]`` until nothing changes) and edges whose
   two ends now share a root are dropped, so the edge list shrinks every round
   and chains collapse in O(log length) rounds.  ``iterations`` counts the rounds;
   more than ``max_iterations`` raise ``IdentityResolutionError``.
4. Registry matching is a sort-merge join of the 64-bit hashes of node keys and
   registry keys, each match confirmed by the second hash; previous ids are read
   as integers (the hex digits of ``cus_...``) to count the votes per component.
   Fresh ids use DuckDB's ``sha256``.

Row order: ``assignments`` (records) and ``registry`` (current records, current
identifiers, then the previous entries kept) come in hash order -- deterministic and
the same for any row order of the input, but not sorted (sorting 10^8 strings costs
more than the resolution).  The hashes are stable within one Polars version only, so
an upgrade may change the row order, never the ids.

Statistics (``IdentityResult.stats``) hold counts and timings only, never personal
data: ``records``, ``identifiers``, ``edges`` (link rows with an identifier that the
graph used, i.e. after the shared-device rule; a repeated row counts again),
``components`` (= persons), ``iterations``, ``shared_devices``, ``merged_ids``
(previous ids no current component holds any more because their keys merged into a
person with another id), ``split_ids`` (components that found a previous id but took
a fresh one because a larger part kept it) and ``seconds``.  Phase timings go to the
``pipelines.identity`` logger at INFO.
"""
from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa

log = logging.getLogger(__name__)

SOURCES = ("crm_contacts", "orders", "web_events", "surveys", "crm_deals")
ID_TYPES = ("email", "phone", "contact_id", "user_id", "anonymous_id")
WEB_SOURCE = "web_events"
SHARED_DEVICE_ID_TYPES = ("email", "user_id")
RECORD_KEY_PREFIX = "record"
CUSTOMER_ID_PREFIX = "cus_"
HASH_HEX_CHARS = 16
MAX_ITERATIONS = 200
MAX_REHASH_ROUNDS = 20
CHUNK_ROWS = 1 << 22  # rows per chunk/partition where memory is bounded by chunking

LINK_COLUMNS = ("source", "source_key", "id_type", "id_value")
REGISTRY_SCHEMA = {"id_key": pl.String, "customer_id": pl.String}

# Node key prefixes in byte order: the smallest key of a component has the smallest prefix.
_PREFIX_RANK = {p: i for i, p in enumerate(sorted((*ID_TYPES, RECORD_KEY_PREFIX)))}
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
    registry: pl.DataFrame  # id_key, customer_id: pass it to the next run
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
    salts = [pl.lit(pl.Series(_SALTS[side, k])) for side in (0, 1) for k in (0, 1)]
    identified = pl.col("t") >= 0
    hashes = df.select(
        rh1=pl.col("source_key").hash(*_SEEDS[0]) ^ salts[0].gather(pl.col("s")),
        rh2=pl.col("source_key").hash(*_SEEDS[1]) ^ salts[1].gather(pl.col("s")),
        ih1=pl.when(identified)
        .then((pl.col("id_value").hash(*_SEEDS[0]) ^ salts[2].gather(pl.col("t").clip(0))) // 2)
        .otherwise(pl.lit(_ALL_ONES, pl.UInt64)),
        ih2=pl.col("id_value").hash(*_SEEDS[1]) ^ salts[3].gather(pl.col("t").clip(0)),
    )
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
    code: np.ndarray  # per row, a code that is injective on the key (the hash, or exact codes)

    def ids(self) -> np.ndarray:
        """Dense group number per position of perm."""
        g = np.cumsum(self.new, dtype=np.int64)
        g -= 1
        return g


class _Collision(Exception):
    pass


def _group(h1: np.ndarray, h2: np.ndarray, count: int) -> _Groups:
    """Group the rows by h1 (exactly); only the `count` rows with the smallest h1 are kept
    (the others carry the all-ones sentinel).  Raises _Collision when h2 differs inside a group."""
    n = len(h1)
    if count == 0:
        return _Groups(np.zeros(0, np.int64), np.zeros(0, bool), h1)
    bits = max(1, (n - 1).bit_length())
    # value sort of (hash prefix | row number): far faster than an argsort
    packed = np.right_shift(h1, np.uint64(bits))
    np.left_shift(packed, np.uint64(bits), out=packed)
    np.bitwise_or(packed, np.arange(n, dtype=np.uint64), out=packed)
    packed.sort()
    packed = packed[:count]
    perm = np.bitwise_and(packed, np.uint64((1 << bits) - 1)).view(np.int64)
    np.right_shift(packed, np.uint64(bits), out=packed)
    new = np.empty(count, bool)
    new[0] = True
    np.not_equal(packed[1:], packed[:-1], out=new[1:])
    del packed
    full = h1[perm]
    # several full hashes under one prefix (rare): order those groups by the full hash
    clash = np.not_equal(full[1:], full[:-1])
    clash &= ~new[1:]
    if clash.any():
        starts = np.flatnonzero(new)
        ends = np.append(starts[1:], count)
        g = np.unique(np.searchsorted(starts, np.flatnonzero(clash) + 1, side="right") - 1)
        lengths = ends[g] - starts[g]
        at = np.repeat(starts[g] - np.cumsum(lengths) + lengths, lengths) + np.arange(lengths.sum())
        order = np.lexsort((full[at], np.repeat(g, lengths)))
        perm[at] = perm[at][order]
        full[at] = full[at][order]
        new[at[1:]] = full[at[1:]] != full[at[1:] - 1]
    del clash, full
    second = h2[perm]
    same = ~new[1:]
    same &= second[1:] != second[:-1]
    if same.any():
        raise _Collision
    return _Groups(perm, new, h1)


def _exact_codes(df: pl.DataFrame, cols: list[pl.Expr], valid: np.ndarray | None) -> np.ndarray:
    """Injective code per row: the number of the first row with the same key (slow, exact)."""
    codes = (
        df.with_row_index("_row")
        .select(pl.col("_row").cast(pl.UInt64).min().over(cols).alias("c"))["c"]
        .to_numpy()
    )
    if valid is not None:
        codes = np.where(valid, codes, _ALL_ONES)
    return codes


def _group_rows(h1: np.ndarray, h2: np.ndarray, count: int, exact: pl.DataFrame, cols: list[pl.Expr],
                valid: np.ndarray | None = None) -> _Groups:
    try:
        return _group(h1, h2, count)
    except _Collision:
        log.warning("identity resolution: 64-bit hash collision, using the exact (slow) encoding")
        codes = _exact_codes(exact, cols, valid)
        return _group(codes, codes, count)


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
        # pointer jumping on the touched nodes (every chain of this round runs through them)
        while True:
            cur = root[touched]
            nxt = root[cur]
            if np.array_equal(nxt, cur):
                break
            root[touched] = nxt
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


def _min_keys(keys: pl.Series, comp: np.ndarray, rank: np.ndarray, wanted: np.ndarray) -> pl.DataFrame:
    """comp, min_key for every component with wanted[comp]: its byte-wise smallest node key."""
    sel = wanted[comp]
    best = np.full(len(wanted), 127, np.int8)
    np.minimum.at(best, comp[sel], rank[sel])
    cand = rank == best[comp]  # only keys with the smallest prefix can be the smallest
    cand &= sel
    del sel
    count = np.bincount(comp[cand], minlength=len(wanted))
    one = cand & (count[comp] == 1)
    cand &= ~one
    singles = pl.DataFrame({"comp": comp[one], "min_key": keys.filter(pl.Series(one))})
    multis = (
        pl.DataFrame({"comp": comp[cand], "min_key": keys.filter(pl.Series(cand)).cast(pl.Binary)})
        .group_by("comp")
        .agg(pl.col("min_key").min())
        .select("comp", pl.col("min_key").cast(pl.String))
    )
    return pl.concat([singles, multis])


def _format_ids(codes: np.ndarray) -> pl.Series:
    """'cus_' + 16 lower-case hex digits of each u64 code."""
    n = len(codes)
    raw = codes.astype(">u8").view(np.uint8).reshape(n, 8)
    text = np.empty((n, 4 + 2 * 8), np.uint8)
    text[:, :4] = np.frombuffer(CUSTOMER_ID_PREFIX.encode(), np.uint8)
    for col, nibble in ((4, raw >> 4), (5, raw & 15)):
        nibble += 48  # '0'..'9', then 'a'..'f'
        nibble += (nibble > 57) * np.uint8(39)
        text[:, col::2] = nibble
    offsets = np.arange(0, text.size + 1, text.shape[1], dtype=np.int64)
    arr = pa.Array.from_buffers(pa.large_string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(text)])
    return pl.Series("customer_id", arr)


def _sha_codes(con: duckdb.DuckDBPyConnection, keys: pl.DataFrame, suffix: str) -> np.ndarray:
    """First 64 bits of sha256(key || suffix) for each row of keys (column key), as u64."""
    con.register("pending_keys", keys)
    try:
        return con.execute(
            f"SELECT ('0x' || substr(sha256(key || ?), 1, {HASH_HEX_CHARS}))::UBIGINT AS h FROM pending_keys",
            [suffix],
        ).pl()["h"].to_numpy()
    finally:
        con.unregister("pending_keys")


def _fresh_ids(min_keys: pl.DataFrame, taken: np.ndarray | pl.Series) -> pl.DataFrame:
    """comp, min_key -> comp, customer_id: deterministic new ids, unique against taken and each other.

    customer_id = 'cus_' + the first 16 hex digits of sha256(min_key); on a clash the
    key is hashed again with '#1', '#2', ... appended (the smallest key keeps a
    candidate two components share)."""
    out = []
    pending = min_keys.select("comp", "min_key")
    con = duckdb.connect()
    try:
        con.execute("SET enable_progress_bar = false")
        for attempt in range(MAX_REHASH_ROUNDS):
            if pending.is_empty():
                break
            codes = _sha_codes(con, pending.select(key="min_key"), f"#{attempt}" if attempt else "")
            ids = _format_ids(codes)
            bad = pl.repeat(False, len(ids), eager=True)
            ordered = np.sort(codes)
            if np.any(ordered[1:] == ordered[:-1]):  # two components drew the same id
                cand = pending.with_columns(customer_id=ids)
                keep = cand.sort("min_key").unique("customer_id", keep="first")["comp"]
                bad = ~cand["comp"].is_in(keep.implode())
            if isinstance(taken, np.ndarray):  # canonical ids: compare the codes
                used = pl.Series(taken)
                clashing = used.filter(used.is_in(pl.Series(codes).implode()))
                if len(clashing):
                    bad = bad | pl.Series(codes).is_in(clashing.implode())
            elif len(taken):
                clashing = taken.filter(taken.is_in(ids.implode()))
                if len(clashing):
                    bad = bad | ids.is_in(clashing.implode())
            out.append(pending.select("comp", customer_id=ids).filter(~bad))
            accepted = codes[~bad.to_numpy()]
            taken = (np.concatenate([taken, accepted]) if isinstance(taken, np.ndarray)
                     else pl.concat([taken, out[-1]["customer_id"]]))
            pending = pending.filter(bad)
        if not pending.is_empty():
            raise IdentityResolutionError(f"could not make {pending.height} fresh customer_id(s) unique")
    finally:
        con.close()
    return pl.concat(out) if out else pl.DataFrame(schema={"comp": pl.Int64, "customer_id": pl.String})


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


def _cid_codes(cids: pl.Series) -> tuple[np.ndarray, bool]:
    """A u64 per registry row that is injective on customer_id, and whether all ids are canonical.

    Canonical ids (all of ours) map to their hex value; otherwise the code is the number of
    the first row with the same id (exact, slower)."""
    codes = np.empty(len(cids), np.uint64)
    for at in range(0, len(cids), CHUNK_ROWS):  # in chunks: bounded memory
        part = _canonical_codes(cids.slice(at, CHUNK_ROWS))
        if part is None:
            return _exact_codes(cids.to_frame("c"), [pl.col("c")], None), False
        codes[at:at + len(part)] = part
    return codes, True


def _match(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All (i, j) with a[i] == b[j] for two u64 arrays whose values are (nearly) unique on
    each side: a sort-merge join, one value sort of both arrays' (hash prefix | position)."""
    na, nb = len(a), len(b)
    if not na or not nb:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    m = na + nb
    bits = np.uint64(max(1, (m - 1).bit_length()))
    packed = np.empty(m, np.uint64)
    for part, values, first in ((packed[:na], a, 0), (packed[na:], b, na)):
        np.right_shift(values, bits, out=part)
        np.left_shift(part, bits, out=part)
        np.bitwise_or(part, np.arange(first, first + len(values), dtype=np.uint64), out=part)
    packed.sort()
    pos = np.bitwise_and(packed, np.uint64((1 << int(bits)) - 1)).view(np.int64)
    np.right_shift(packed, bits, out=packed)
    same = packed[1:] == packed[:-1]  # neighbours with equal hash prefix
    del packed
    pair = same.copy()  # neighbours that form a run of exactly two
    pair[1:] &= ~same[:-1]
    pair[:-1] &= ~same[1:]
    i = pos[:-1][pair]  # equal prefixes sort by position: an element of a comes first
    j = pos[1:][pair]
    j -= na
    ok = i < na
    ok &= j >= 0  # one from each side
    i, j = i[ok], j[ok]
    ok = a[i] == b[j]  # the full hashes
    i, j = i[ok], j[ok]
    longer = same & ~pair  # runs of three or more (prefix collisions): join them exactly
    if longer.any():
        q = np.flatnonzero(longer)
        rows = np.unique(np.concatenate([pos[q], pos[q + 1]]))
        ra, rb = rows[rows < na], rows[rows >= na] - na
        extra = pl.DataFrame({"h": a[ra], "i": ra}).join(pl.DataFrame({"h": b[rb], "j": rb}), on="h")
        i = np.concatenate([i, extra["i"].to_numpy()])
        j = np.concatenate([j, extra["j"].to_numpy()])
    return i, j


# --------------------------------------------------------------------------- main


def resolve_identities(
    links: pl.LazyFrame | pl.DataFrame,
    registry: pl.DataFrame | None = None,
    *,
    max_iterations: int = MAX_ITERATIONS,
) -> IdentityResult:
    """Resolve source records into persons; see the module docstring for the rules."""
    t = _Timer()
    prev = _prepare_registry(registry)
    L = _prepare_links(links)
    n = len(L.src)
    t.lap("prepare")

    # records: rows grouped by (source, source_key); record id = group number
    exact = pl.DataFrame({"s": L.src, "k": L.strings["source_key"]})
    rg = _group_rows(L.rh1, L.rh2, n, exact, [pl.col("s"), pl.col("k")])
    del L.rh1, L.rh2, exact
    rid = np.empty(n, np.int64)
    rid[rg.perm] = rg.ids()
    rec_rows = rg.perm[rg.new]  # one row per record, in record-id order
    n_rec = len(rec_rows)
    del rg
    t.lap("records")

    # identifiers: rows that carry one grouped by (id_type, id_value)
    has_id = L.typ >= 0
    exact = pl.DataFrame({"t": L.typ, "v": L.strings["id_value"]})
    ig = _group_rows(L.ih1, L.ih2, int(has_id.sum()), exact, [pl.col("t"), pl.col("v")], has_id)
    del L.ih1, L.ih2, exact, has_id
    t.lap("identifiers")

    # shared devices: web records with > 1 distinct email or > 1 distinct user_id
    shared = np.zeros(n_rec, bool)
    web_rows = []
    for code in _SHARED_TYPES:
        rows = np.flatnonzero((L.src == _WEB) & (L.typ == code))
        if len(rows):
            r, h = rid[rows], ig.code[rows]
            lo = np.full(n_rec, _ALL_ONES)
            hi = np.zeros(n_rec, np.uint64)
            np.minimum.at(lo, r, h)
            np.maximum.at(hi, r, h)
            shared |= hi > lo
            web_rows.append(rows)
            del r, h, lo, hi
    n_shared = int(shared.sum())
    perm, new = ig.perm, ig.new
    if n_shared:
        dropped = np.zeros(n, bool)
        for rows in web_rows:
            dropped[rows[shared[rid[rows]]]] = True
        keep = ~dropped[perm]
        gid = np.cumsum(new)[keep]
        perm = perm[keep]
        new = np.empty(len(perm), bool)
        if len(perm):
            new[0] = True
            np.not_equal(gid[1:], gid[:-1], out=new[1:])
        del dropped, keep, gid
    del ig, web_rows, shared
    n_edges = len(perm)
    ident_rows = perm[new]  # one row per identifier
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
    comp_of_root = np.cumsum(is_root, dtype=np.int64)
    comp_of_root -= 1
    n_comp = int(comp_of_root[-1] + 1) if n_rec else 0
    rec_comp = comp_of_root[root]
    ident_comp = rec_comp[first_rec]
    del root, is_root, comp_of_root, first_rec
    t.lap("components")

    # node keys: records (record-id order), then identifiers (identifier order)
    rec_src = pl.Series(L.src[rec_rows])
    rec_key = L.strings["source_key"].gather(rec_rows)
    id_typ = L.typ[ident_rows]
    keys = pl.concat([
        pl.Series(RECORD_KEY_PREFIX + ":" + s + ":" for s in SOURCES).gather(rec_src) + rec_key,
        pl.Series(t + ":" for t in ID_TYPES).gather(pl.Series(id_typ))
        + L.strings["id_value"].gather(ident_rows),
    ])
    node_rank = np.concatenate([
        np.full(n_rec, _PREFIX_RANK[RECORD_KEY_PREFIX], np.int8),
        np.array([_PREFIX_RANK[x] for x in ID_TYPES], np.int8)[id_typ],
    ])
    node_comp = np.concatenate([rec_comp, ident_comp])
    n_ident = len(ident_rows)
    del L, rec_rows, ident_rows, id_typ, ident_comp
    t.lap("keys")

    prev_codes, canonical = _cid_codes(prev["customer_id"])
    inherited, matched, merged_ids, split_ids = _inherit(keys, node_comp, node_rank, prev, prev_codes, n_comp)
    t.lap("inherit")
    need = np.ones(n_comp, bool)
    need[inherited["comp"].to_numpy()] = False
    mk = _min_keys(keys, node_comp, node_rank, need)
    del need, node_rank
    t.lap("min_keys")
    fresh = _fresh_ids(mk, prev_codes if canonical else prev["customer_id"])
    del mk
    t.lap("fresh")

    cid = pl.concat([inherited, fresh.select(pl.col("comp").cast(pl.Int64), "customer_id")]).sort("comp")
    if cid.height != n_comp:  # pragma: no cover - internal invariant
        raise IdentityResolutionError(f"{cid.height} ids for {n_comp} components")
    cid = cid["customer_id"]
    assignments = pl.DataFrame({
        "source": pl.Series(SOURCES).gather(rec_src),
        "source_key": rec_key,
        "customer_id": cid.gather(rec_comp),
    })
    new_registry = pl.DataFrame({"id_key": keys, "customer_id": cid.gather(node_comp)})
    if len(prev):
        new_registry = pl.concat([new_registry, prev.filter(~pl.Series(matched))])
    t.lap("output")
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


def _prepare_registry(registry: pl.DataFrame | None) -> pl.DataFrame:
    if registry is None:
        return pl.DataFrame(schema=REGISTRY_SCHEMA)
    missing = [c for c in REGISTRY_SCHEMA if c not in registry.columns]
    if missing:
        raise ValueError(f"registry is missing column(s) {', '.join(missing)}")
    return registry.select(pl.col(c).cast(t) for c, t in REGISTRY_SCHEMA.items()).drop_nulls()


def _inherit(keys: pl.Series, node_comp: np.ndarray, node_rank: np.ndarray, prev: pl.DataFrame,
             prev_codes: np.ndarray, n_comp: int) -> tuple[pl.DataFrame, np.ndarray, int, int]:
    """Components that keep a previous id: (comp, customer_id), matched registry rows, merged, split."""
    empty = pl.DataFrame(schema={"comp": pl.Int64, "customer_id": pl.String})
    matched = np.zeros(prev.height, bool)
    if prev.is_empty() or keys.is_empty():
        return empty, matched, 0, 0
    prev_keys, prev_ids = prev["id_key"], prev["customer_id"]
    # registry rows whose key is a current node key: join on a 64-bit hash, confirmed by a second one
    node, reg = _match(keys.hash(*_SEEDS[0]).to_numpy(), prev_keys.hash(*_SEEDS[0]).to_numpy())
    same = keys.hash(*_SEEDS[1]).to_numpy()[node] == prev_keys.hash(*_SEEDS[1]).to_numpy()[reg]
    node, reg = node[same], reg[same]
    del same
    if not len(node):
        return empty, matched, 0, 0
    matched[reg] = True
    code = prev_codes[reg]  # previous id of each hit, as an integer
    comp = node_comp[node]
    del node
    # votes: most components' hits all hold one id (the smallest is then the only one)
    lo = np.full(n_comp, _ALL_ONES)
    np.minimum.at(lo, comp, code)
    many = np.zeros(n_comp, bool)
    many[comp[lo[comp] != code]] = True
    votes = np.bincount(comp, minlength=n_comp)
    any_row = np.zeros(n_comp, np.int64)
    any_row[comp] = reg
    one = (votes > 0) & ~many
    cand = pl.DataFrame({"comp": np.flatnonzero(one), "code": lo[one], "n": votes[one], "reg": any_row[one]})
    hit_codes = [cand["code"]]
    del lo, votes, any_row, one
    if many.any():
        # components merging several previous persons: the id held by most keys, then the smallest id
        sel = many[comp]
        counted = (
            pl.DataFrame({"comp": comp[sel], "code": code[sel], "reg": reg[sel]})
            .group_by("comp", "code")
            .agg(n=pl.len(), reg=pl.col("reg").min())
        )
        hit_codes.append(counted["code"])
        best = (
            counted.with_columns(cid=prev_ids.gather(counted["reg"]))
            .filter(pl.col("n") == pl.col("n").max().over("comp"))
            .filter(pl.col("cid") == pl.col("cid").min().over("comp"))
            .select(cand.columns)
        )
        cand = pl.concat([cand, best.cast(cand.schema)])
    del comp, code, reg, many
    # an id claimed by several components (a split) stays with the one with most keys holding
    # it, then with the one whose smallest key sorts first; the others get fresh ids
    claimed = cand["code"].is_duplicated()
    winners = cand.filter(~claimed)
    if claimed.any():
        top = cand.filter(claimed).filter(pl.col("n") == pl.col("n").max().over("code"))
        wanted = np.zeros(n_comp, bool)
        wanted[top["comp"].to_numpy()] = True
        top = (
            top.join(_min_keys(keys, node_comp, node_rank, wanted), on="comp")
            .with_columns(b=pl.col("min_key").cast(pl.Binary))
            .filter(pl.col("b") == pl.col("b").min().over("code"))
        )
        winners = pl.concat([winners, top.select(cand.columns)])
    split_ids = cand.height - winners.height
    merged_ids = pl.concat(hit_codes).n_unique() - winners.height
    out = pl.DataFrame({"comp": winners["comp"].cast(pl.Int64),
                        "customer_id": prev_ids.gather(winners["reg"])})
    return out, matched, merged_ids, split_ids


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
