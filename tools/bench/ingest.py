"""Ingestion alone: every landing source loaded into a fresh warehouse, per-source seconds.

    .venv/bin/python -m tools.bench.ingest data/bench/medium/landing [--code DIR] [--repeat N]

``--code DIR`` loads with the ``pipelines`` package of another checkout (say a worktree of
an earlier commit), so that two versions can be timed one after the other on the same machine
and data: run the script alternately with and without it. Prints one line per repetition;
the numbers go into docs/BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("landing", type=Path)
    parser.add_argument("--code", type=Path, help="a checkout whose pipelines package to time (default: this one)")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--sources", help="comma-separated sources (default: all)")
    args = parser.parse_args(argv)
    code = (args.code or Path(__file__).resolve().parents[2]).resolve()
    sys.path.insert(0, str(code))
    from pipelines.config import Settings, resolve_vars  # noqa: E402 -- from the chosen checkout
    from pipelines.raw import load_source  # noqa: E402
    from pipelines.contract import SOURCES  # noqa: E402

    sources = args.sources.split(",") if args.sources else list(SOURCES)
    for _ in range(args.repeat):
        warehouse = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
        try:
            settings = Settings(args.landing.resolve(), warehouse, resolve_vars({"as_of_date": "2025-12-31"}))
            parts, total, rows = [], 0.0, 0
            for source in sources:
                started = time.perf_counter()
                result = load_source(settings, source)
                seconds = time.perf_counter() - started
                total += seconds
                rows += result.rows_loaded + result.rows_rejected
                parts.append(f"{source} {seconds:.2f}s")
            print(f"{code.name}: ingestion {total:.2f}s, {rows:,} rows ({', '.join(parts)})", flush=True)
        finally:
            shutil.rmtree(warehouse, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
