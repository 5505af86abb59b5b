"""Benchmark identity resolution (pipelines.identity.graph) on a synthetic links table.

    .venv/bin/python -m tools.bench.identity --records 3400000          # ~6M edges
    .venv/bin/python -m tools.bench.identity --edges 60000000 --second-run

``--records N`` is the number of source records to generate (persons = N / 3: each
person has 1-5 records over the five sources and 1-4 identifiers; every record links
one or two of its person's identifiers as a chain, web records also their own
anonymous_id, 3% of non-web records have no identifier, and 2% of web records are
shared devices that also carry two other persons' emails).  ``--edges E`` picks N so
that the links table has about E rows (one row = one record-identifier edge).  The
table is built with vectorised numpy/polars, then resolved once (first run, no
registry: every person gets a fresh id) and, with ``--second-run``, again against
the registry of the first run (the steady state: every id is inherited).  Prints the
counts, iterations, seconds, edges/s, the per-phase seconds (log lines) and the
process's resident memory before the run (input table, previous registry) and its
peak during the run.
"""
from __future__ import annotations

import argparse
import logging
import resource
import threading
import time
from pathlib import Path

import numpy as np
import polars as pl
import psutil


from pipelines.identity.graph import resolve_identities

SOURCES = ["crm_contacts", "orders", "web_events", "surveys", "crm_deals"]
SOURCE_P = [0.15, 0.35, 0.30, 0.10, 0.10]
KEY_PREFIX = ["C", "O", "A", "R", "D"]
ID_TYPES = ["email", "phone", "user_id", "contact_id"]
EDGES_PER_RECORD = 1.75  # measured average of the generator below


def synthetic_links(n_records: int, seed: int = 0, shared_share: float = 0.02,
                    no_id_share: float = 0.03) -> pl.DataFrame:
    """A links table (source, source_key, id_type, id_value) of about n_records records."""
    rng = np.random.default_rng(seed)
    persons = max(1, n_records // 3)
    n_recs = rng.integers(1, 6, persons)
    n_ids = rng.integers(1, 5, persons)
    total = int(n_recs.sum())
    person = np.repeat(np.arange(persons, dtype=np.int64), n_recs)
    pos = np.arange(total) - np.repeat(np.cumsum(n_recs) - n_recs, n_recs)
    src = rng.choice(5, total, p=SOURCE_P)
    k = n_ids[person]
    # record i of a person links identifier slot i % k and, 60% of the time, the next one
    slot_a = pos % k
    slot_b = (pos + 1) % k
    has_b = (slot_b != slot_a) & (rng.random(total) < 0.6)
    no_id = (src != 2) & (rng.random(total) < no_id_share)
    web = np.flatnonzero(src == 2)
    shared = web[rng.random(len(web)) < shared_share]
    foreign = rng.integers(0, persons, (len(shared), 2))

    rec = np.concatenate([np.flatnonzero(~no_id), np.flatnonzero(has_b & ~no_id),
                          shared, shared, np.flatnonzero(no_id), web])
    owner = np.concatenate([person[~no_id], person[has_b & ~no_id], foreign[:, 0], foreign[:, 1],
                            np.zeros(int(no_id.sum()), np.int64), np.zeros(len(web), np.int64)])
    slot = np.concatenate([slot_a[~no_id], slot_b[has_b & ~no_id], np.zeros(2 * len(shared), np.int64),
                           np.zeros(int(no_id.sum()), np.int64), np.zeros(len(web), np.int64)])
    # kind: 0..3 identifier type (slot 0 is always an email), 4 = none, 5 = the record's anonymous_id
    kind = np.where(slot == 0, 0, (owner * 7 + slot * 3) % 4)
    kind[len(rec) - len(web) - int(no_id.sum()):len(rec) - len(web)] = 4
    kind[len(rec) - len(web):] = 5

    df = pl.DataFrame({"rec": rec, "owner": owner, "slot": slot, "kind": kind, "src": src[rec]})
    s_rec, s_owner, s_slot = (pl.col(c).cast(pl.String) for c in ("rec", "owner", "slot"))
    return df.select(
        source=pl.col("src").replace_strict(list(range(5)), SOURCES, return_dtype=pl.String),
        source_key=pl.col("src").replace_strict(list(range(5)), KEY_PREFIX, return_dtype=pl.String) + s_rec,
        id_type=pl.col("kind").replace_strict(list(range(6)), ID_TYPES + [None, "anonymous_id"],
                                              return_dtype=pl.String),
        id_value=pl.when(pl.col("kind") == 0).then("first.last" + s_owner + "." + s_slot + "@example.com")
        .when(pl.col("kind") == 1).then("+4915" + (pl.col("owner") * 10 + pl.col("slot") + 10**9).cast(pl.String))
        .when(pl.col("kind") == 2).then("shop-" + s_owner + "-" + s_slot)
        .when(pl.col("kind") == 3).then("CRM" + s_owner + "_" + s_slot)
        .when(pl.col("kind") == 5).then("A" + s_rec),
    )


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class RssSampler:
    """Peak resident memory of this process while a block runs (sampled every 50 ms)."""

    def __enter__(self) -> "RssSampler":
        self.proc = psutil.Process()
        self.before = self.peak = self.proc.memory_info().rss
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def _run(self) -> None:
        while not self.done.wait(0.05):
            self.peak = max(self.peak, self.proc.memory_info().rss)

    def __exit__(self, *exc) -> None:
        self.done.set()
        self.thread.join()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=1_000_000, help="source records to generate")
    ap.add_argument("--edges", type=int, help="target number of link rows (overrides --records)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--second-run", action="store_true", help="also resolve again against the registry")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="   %(message)s")
    n = int(args.edges / EDGES_PER_RECORD) if args.edges else args.records

    t0 = time.perf_counter()
    links = synthetic_links(n, args.seed)
    print(f"generated {links.height:,} link rows in {time.perf_counter() - t0:.1f} s "
          f"(peak RSS so far {peak_rss_mb():,.0f} MB)", flush=True)

    registry = None
    for label in ("first run", "second run") if args.second_run else ("first run",):
        with RssSampler() as mem:
            res = resolve_identities(links, registry)
        s = res.stats
        print(f"{label}: records={s['records']:,} identifiers={s['identifiers']:,} edges={s['edges']:,} "
              f"components={s['components']:,} shared_devices={s['shared_devices']:,} "
              f"iterations={s['iterations']} merged_ids={s['merged_ids']} split_ids={s['split_ids']}")
        print(f"{label}: seconds={s['seconds']:.2f} edges/s={s['edges'] / s['seconds']:,.0f} "
              f"RSS before {mem.before / 2**20:,.0f} MB, peak during {mem.peak / 2**20:,.0f} MB "
              f"(+{(mem.peak - mem.before) / 2**20:,.0f} MB)", flush=True)
        registry = res.registry
        del res
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
