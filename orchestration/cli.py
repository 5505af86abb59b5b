"""``clm``: the command line of the customer lifecycle warehouse (CONTRACT section 1).

    clm demo-data --out DIR --customers N --seed S [--dialect canonical|vendor|vendor-equivalent]
    clm run [--verbose]
    clm erase --email ADDRESS | --customer-id ID
    clm export --audience NAME --out FILE.csv|FILE.parquet
    clm report

Exit codes (CONTRACT section 1): 0 success; 1 the work failed (one-line reason on stderr);
2 bad usage or configuration (an unknown or ill-typed var, a folder that cannot be read or
written), detected before anything is written; 3 another run holds the warehouse (the
second run says so at once, naming the holder, and writes nothing).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from pipelines.config import ConfigError, Settings
from pipelines.contract import SOURCES
from pipelines.warehouse import WarehouseBusy, WarehouseNotWritable, ensure_writable, run_lock

EXIT_FAILED, EXIT_CONFIG, EXIT_BUSY = 1, 2, 3


def _positive_int(text: str) -> int:
    value = int(text.replace("_", ""))
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="clm", description="Customer lifecycle warehouse")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo-data", help="write deterministic, realistically messy demo exports")
    demo.add_argument("--out", type=Path, required=True, help="landing folder to write (one sub-folder per source)")
    demo.add_argument("--customers", type=_positive_int, default=2000, help="about N contacts, 10N orders, 50N web events")
    demo.add_argument("--seed", type=int, default=42)
    demo.add_argument("--dialect", choices=("canonical", "vendor", "vendor-equivalent"), default="canonical",
                      help="canonical exports (default); vendor: CRM contacts, orders and web events as HubSpot, "
                           "Shopify and GA4 BigQuery exports; vendor-equivalent: canonical files with exactly the "
                           "facts of the vendor files")

    run = sub.add_parser("run", help="load new landing files, build the warehouse, publish serving.duckdb")
    run.add_argument("--verbose", action="store_true", help="also show dbt's console output")

    erase = sub.add_parser("erase", help="erase a person (GDPR Art. 17) and rebuild the marts without them")
    who = erase.add_mutually_exclusive_group(required=True)
    who.add_argument("--email", help="any email address of the person (normalised as in staging)")
    who.add_argument("--customer-id", help="the person's customer_id")
    sub.add_parser("report", help="write the lifecycle manager's report from the published snapshot")
    export = sub.add_parser("export", help="write an audience's consented, not held-out members for a marketing tool")
    export.add_argument("--audience", required=True, help="the audience (see docs/CONTRACT.md section 7)")
    export.add_argument("--out", type=Path, required=True, help="the file to write: .csv or .parquet")
    return parser


def cmd_demo_data(args) -> int:
    from tools.demo.generate import generate

    try:
        ensure_writable(args.out, "the output folder")
    except WarehouseNotWritable as exc:
        print(f"clm demo-data: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    started = time.perf_counter()
    summary = generate(args.out, args.customers, args.seed, dialect=args.dialect)
    dialect = "" if args.dialect == "canonical" else f", {args.dialect} dialect"
    print(f"demo data for {args.customers:,} customers (seed {args.seed}{dialect}) written to {args.out.resolve()}"
          f" in {time.perf_counter() - started:.1f}s")
    for source in SOURCES:
        print(f"  {source:<16} {summary.get(source, 0):>12,} rows")
    return 0


def _settings(command: str) -> Settings | None:
    """The settings from the environment, validated, with a writable warehouse folder; or
    None after a one-line error on stderr."""
    try:
        settings = Settings.from_env()
        ensure_writable(settings.warehouse_dir)
    except (ConfigError, WarehouseNotWritable) as exc:
        print(f"clm {command}: {exc}", file=sys.stderr)
        return None
    return settings


def cmd_run(args) -> int:
    settings = _settings("run")
    if settings is None:
        return EXIT_CONFIG
    if not settings.landing_dir.is_dir():
        print(f"clm run: landing folder {settings.landing_dir} does not exist "
              "(set CLM_LANDING_DIR or create it; `clm demo-data --out DIR` writes demo exports)",
              file=sys.stderr)
        return EXIT_CONFIG
    try:
        with run_lock(settings.warehouse_dir, "clm run"):
            from orchestration.run import run_all

            outcome = run_all(settings, progress=print, verbose=args.verbose)
    except WarehouseBusy as exc:
        print(f"clm run: {exc}", file=sys.stderr)
        return EXIT_BUSY
    if not outcome.success:
        print(f"clm run failed: {outcome.reason}", file=sys.stderr)
        return EXIT_FAILED
    print()
    print("Results:")
    print(f"  working warehouse   {settings.warehouse_path}  (schemas raw, staging, intermediate, marts)")
    print(f"  BI snapshot         {settings.serving_path}  (schema marts; open read-only)")
    print(f"  report              {settings.warehouse_dir / 'report' / 'index.html'}  (open in a browser; works offline)")
    print(f"  Parquet copies      {settings.warehouse_dir / 'serving' / 'parquet'}")
    print(f"  try:  .venv/bin/python -c \"import duckdb; print(duckdb.connect('{settings.serving_path}', "
          "read_only=True).sql('show all tables'))\"")
    return 0


def cmd_erase(args) -> int:
    from pipelines.privacy.erasure import ErasureError, erase_person

    settings = _settings("erase")
    if settings is None:
        return EXIT_CONFIG
    try:
        with run_lock(settings.warehouse_dir, "clm erase"):
            try:
                result = erase_person(settings, email=args.email, customer_id=args.customer_id)
            except ErasureError as exc:  # the message never repeats the identifier given
                print(f"clm erase: {exc}", file=sys.stderr)
                return EXIT_FAILED
            rows = ", ".join(f"{s} {n}" for s, n in result.records.items() if n) or "none"
            print(f"erased {result.customer_id}: raw rows deleted: {rows}; identifiers removed from "
                  f"{result.scrubbed} other row(s); {result.identifiers} keyed identifier hash(es) recorded so "
                  "that later loads drop this person")
            from orchestration.run import run_all
            from pipelines.privacy.erasure import finish_erasure

            outcome = run_all(settings, progress=print)
            if not outcome.success:
                print(f"clm erase: the person is erased from raw, but rebuilding the marts failed: {outcome.reason}; "
                      "marts and serving.duckdb hold the person until a clm run succeeds", file=sys.stderr)
                return EXIT_FAILED
            sizes = finish_erasure(settings)
    except WarehouseBusy as exc:
        print(f"clm erase: {exc}", file=sys.stderr)
        return EXIT_BUSY
    print(f"marts and {settings.serving_path} rebuilt without {result.customer_id}; {settings.warehouse_path.name} "
          f"rewritten so that no freed block keeps their data ({sizes['bytes_before']:,} -> "
          f"{sizes['bytes_after']:,} bytes)")
    return 0


def cmd_export(args) -> int:
    from pipelines.serving.export import ExportError, check_request, export_audience

    settings = _settings("export")
    if settings is None:
        return EXIT_CONFIG
    try:
        check_request(args.audience, args.out)
    except ExportError as exc:
        print(f"clm export: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        result = export_audience(settings.serving_path, args.audience, args.out)
    except (ExportError, OSError) as exc:
        print(f"clm export: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"exported {result.exported:,} members of {result.audience} to {result.path} "
          f"({result.held_out:,} held out, {result.without_consent:,} without marketing consent, not exported)")
    return 0


def cmd_report(args) -> int:
    from pipelines.serving.report import build_report, report_dir

    settings = _settings("report")
    if settings is None:
        return EXIT_CONFIG
    if not settings.serving_path.exists():
        print(f"clm report: no published snapshot at {settings.serving_path} (run clm run first)", file=sys.stderr)
        return EXIT_FAILED
    path = build_report(settings.serving_path, report_dir(settings))
    print(f"report written to {path} ({path.stat().st_size / 1e6:.1f} MB; open it in a browser, it needs no network)")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    handlers = {"demo-data": cmd_demo_data, "run": cmd_run, "erase": cmd_erase, "export": cmd_export, "report": cmd_report}
    return handlers[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
