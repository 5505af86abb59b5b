"""Benchmark connected components on the record graph identity resolution builds.

    .venv/bin/python -m tools.bench.components --edges 60000000

Generates the links of ``tools.bench.identity`` (``--edges`` link rows), numbers records and
identifiers with Polars (``hash``, ``rank("dense")``), links each identifier's records to the
smallest of them (the star identity resolution builds; the shared-device rule is left out, so
there are a few more edges than in a resolution) and times three ways to find the components:

* ``pointer jumping``: the NumPy label propagation with hooking and pointer jumping that
  ``pipelines.identity.graph`` used until commit 05b9957, copied here for the comparison;
* ``scipy``: ``scipy.sparse.csgraph.connected_components`` (undirected, and directed with weak
  connection), the COO -> CSR conversion included;
* ``polars``: min-label propagation in Polars, each round a ``group_by`` of every edge's
  neighbour label and pointer jumping (``label = label[label]``) until nothing changes.

Checks that all give the same partition and prints seconds and peak RSS growth of each.
A measurement, not a test: numbers go into docs/BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import polars as pl
import scipy.sparse
from scipy.sparse.csgraph import connected_components

from tools.bench.identity import EDGES_PER_RECORD, RssSampler, synthetic_links


def record_edges(links: pl.DataFrame) -> tuple[np.ndarray, np.ndarray, int]:
    """(hub, record) edges of the star each identifier makes of its records, and the record count."""
    numbered = links.select(
        record=pl.struct("source", "source_key").hash().rank("dense") - 1,
        ident=pl.when(pl.col("id_type").is_not_null()).then(pl.struct("id_type", "id_value").hash().rank("dense")),
    )
    n_records = int(numbered["record"].max()) + 1
    star = (numbered.drop_nulls().with_columns(hub=pl.col("record").min().over("ident"))
            .filter(pl.col("hub") != pl.col("record")))
    return star["hub"].to_numpy().astype(np.int64), star["record"].to_numpy().astype(np.int64), n_records


def pointer_jumping(u: np.ndarray, v: np.ndarray, n: int) -> tuple[np.ndarray, int]:
    """pipelines.identity.graph._components as of commit 05b9957 (without its iteration bound)."""
    root = np.arange(n, dtype=np.int64)
    rounds = 0
    while len(u):
        rounds += 1
        touched = np.concatenate([u, v])
        del u, v
        half = len(touched) // 2
        lo = np.minimum(touched[:half], touched[half:])
        hi = np.maximum(touched[:half], touched[half:])
        np.minimum.at(root, hi, lo)
        del lo, hi
        cur = root[touched]
        while True:
            nxt = root[cur]
            if np.array_equal(nxt, cur):
                break
            root[touched] = nxt
            cur = nxt
        keep = cur[:half] != cur[half:]
        u, v = cur[:half][keep], cur[half:][keep]
        del touched, cur, nxt, keep
    while True:
        nxt = root[root]
        if np.array_equal(nxt, root):
            return root, rounds
        root = nxt


def scipy_components(u: np.ndarray, v: np.ndarray, n: int, directed: bool) -> np.ndarray:
    graph = scipy.sparse.coo_array((np.ones(len(u)), (u, v)), shape=(n, n))
    return connected_components(graph, directed=directed, connection="weak")[1]


def polars_components(u: np.ndarray, v: np.ndarray, n: int) -> tuple[np.ndarray, int]:
    label = pl.Series("label", np.arange(n))
    edges = pl.DataFrame({"node": np.concatenate([u, v]), "other": np.concatenate([v, u])})
    rounds = 0
    while True:
        rounds += 1
        offered = (edges.with_columns(label=label.gather(edges["other"]))
                   .group_by("node").agg(pl.col("label").min()))
        mine = label.gather(offered["node"])
        better = offered["label"] < mine
        if not better.any():
            return label.to_numpy(), rounds
        label = label.scatter(offered["node"].filter(better), offered["label"].filter(better))
        while True:  # pointer jumping
            jumped = label.gather(label)
            if jumped.equals(label):
                break
            label = jumped


def canonical(labels: np.ndarray) -> np.ndarray:
    """Each node's label replaced by the smallest node of its component."""
    return pl.DataFrame({"label": labels}).with_row_index("node").select(
        pl.col("node").min().over("label"))["node"].to_numpy()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--edges", type=int, default=6_000_000, help="target number of link rows")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-polars", action="store_true")
    args = ap.parse_args(argv)
    links = synthetic_links(int(args.edges / EDGES_PER_RECORD), args.seed)
    u, v, n = record_edges(links)
    del links
    print(f"{n:,} records, {len(u):,} record-record edges", flush=True)
    results = {}
    runs = [("pointer jumping", lambda: pointer_jumping(u, v, n)[0]),
            ("scipy undirected", lambda: scipy_components(u, v, n, directed=False)),
            ("scipy directed, weak", lambda: scipy_components(u, v, n, directed=True))]
    if not args.skip_polars:
        runs.append(("polars label propagation", lambda: polars_components(u, v, n)[0]))
    for name, run in runs:
        with RssSampler() as mem:
            start = time.perf_counter()
            labels = run()
            seconds = time.perf_counter() - start
        print(f"{name}: {seconds:.2f} s, peak RSS +{(mem.peak - mem.before) / 2**20:,.0f} MB", flush=True)
        results[name] = canonical(labels)
    first = next(iter(results.values()))
    assert all(np.array_equal(first, r) for r in results.values()), "the partitions differ"
    print(f"same partition: {len(np.unique(first)):,} components")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
