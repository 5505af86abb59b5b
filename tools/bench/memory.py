"""What fresh memory costs on this machine, and what pipelines.allocator saves.

    .venv/bin/python -m tools.bench.memory [--gb 1] [--rounds 20]

1. Writes one array of --gb GB that is new to the process, then writes it again (reused
   memory): GB/s of each.
2. Makes and drops --rounds arrays of --gb GB one after the other (the pattern of a step that
   churns through temporaries), as glibc does by default and inside
   ``pipelines.allocator.keep_freed_memory()``: wall, user and system seconds of each.
A measurement, not a test: numbers go into docs/BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import numpy as np


from pipelines.allocator import keep_freed_memory


def _times() -> tuple[float, float, float]:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return time.perf_counter(), r.ru_utime, r.ru_stime


def churn(n: int, rounds: int) -> tuple[float, float, float]:
    start = _times()
    for _ in range(rounds):
        a = np.ones(n, np.int64)
        b = a + 1
        del a, b
    end = _times()
    return tuple(e - s for e, s in zip(end, start))  # type: ignore[return-value]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gb", type=float, default=1.0, help="size of each array in GB")
    ap.add_argument("--rounds", type=int, default=20)
    args = ap.parse_args(argv)
    n = int(args.gb * 1e9) // 8

    t = time.perf_counter()
    a = np.empty(n, np.int64)
    a.fill(1)
    fresh = time.perf_counter() - t
    t = time.perf_counter()
    a.fill(2)
    reused = time.perf_counter() - t
    del a
    print(f"write {args.gb:g} GB new to the process: {fresh:.2f} s ({args.gb / fresh:.2f} GB/s); "
          f"again: {reused:.2f} s ({args.gb / reused:.2f} GB/s)")

    wall, user, system = churn(n, args.rounds)
    print(f"{args.rounds} x (make {args.gb:g} GB, make another from it, drop both), glibc defaults: "
          f"wall {wall:.2f} s, user {user:.2f} s, system {system:.2f} s")
    with keep_freed_memory() as active:
        wall, user, system = churn(n, args.rounds)
    print(f"the same inside keep_freed_memory() (active: {active}): "
          f"wall {wall:.2f} s, user {user:.2f} s, system {system:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
