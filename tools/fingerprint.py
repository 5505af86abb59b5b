"""Fingerprints of the marts, to show that a change leaves every number where it was.

    .venv/bin/python -m tools.fingerprint build demo DIR      # demo exports (2,000 customers, seed 42), as of 2025-12-31
    .venv/bin/python -m tools.fingerprint build cdnow DIR     # the public CDNOW master log, as of 1998-06-30 in USD
    .venv/bin/python -m tools.fingerprint show WAREHOUSE.duckdb [--json OUT]
    .venv/bin/python -m tools.fingerprint compare A.json B.json

A mart's fingerprint is the md5 of its rows, each written as text and sorted, after three
normalisations that a refactoring may legitimately change:

* customer ids: every ``customer_id`` is replaced by its person's smallest record key
  (``source:source_key`` in ``customer_identities``), so two runs that group the same records
  into the same persons agree even if fresh ids are drawn differently;
* doubles are rounded to 9 significant digits (summation order);
* columns that hold the time or the id of the run (``fitted_at``, ``loaded_at``, ``checked_at``,
  ``published_at``, ``run_id``) and
  rows that describe the run (a model fit's ``seconds``) are left out.

Columns are taken in name order, so a column that moved within a table does not count as a
change; a column added or removed does.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import duckdb

VOLATILE = {"fitted_at", "loaded_at", "checked_at", "published_at", "run_id"}
# rows that describe the run rather than the data (how long a model fit took)
VOLATILE_ROWS = {"clv_model_params": "parameter <> 'seconds'"}


def fingerprints(warehouse: Path, schema: str = "marts") -> dict[str, dict]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute(f"""CREATE TEMP TABLE person_label AS
                        SELECT customer_id, min(source || ':' || source_key) AS label
                        FROM {schema}.customer_identities GROUP BY customer_id""")
        tables = [r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = ? ORDER BY 1", [schema]).fetchall()]
        out = {}
        for table in tables:
            cols = con.execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = ? AND table_name = ? ORDER BY column_name", [schema, table]).fetchall()
            exprs, joins = [], []
            for i, (name, dtype) in enumerate(cols):
                if name in VOLATILE:
                    continue
                q = f'"{name}"'
                if name == "customer_id":
                    joins.append(f"LEFT JOIN person_label p{i} ON p{i}.customer_id = t.{q}")
                    exprs.append(f"coalesce(p{i}.label, t.{q}::VARCHAR)")
                elif dtype in ("DOUBLE", "FLOAT", "REAL"):
                    exprs.append(f"CASE WHEN t.{q} = 0 OR t.{q} IS NULL OR isinf(t.{q}) OR isnan(t.{q}) "
                                 f"THEN t.{q}::VARCHAR ELSE printf('%.9g', t.{q}) END")
                else:
                    exprs.append(f"t.{q}::VARCHAR")
            row = "concat_ws('|', " + ", ".join(f"coalesce({e}, '∅')" for e in exprs) + ")"
            digest, rows = con.execute(
                f"SELECT md5(coalesce(string_agg(r, chr(10) ORDER BY r), '')), count(*) "
                f"FROM (SELECT {row} AS r FROM {schema}.\"{table}\" t {' '.join(joins)} "
                f"WHERE {VOLATILE_ROWS.get(table, 'true')})").fetchone()
            out[table] = {"rows": rows, "columns": [c for c, _ in cols if c not in VOLATILE], "md5": digest}
        return out
    finally:
        con.close()


def build(dataset: str, root: Path) -> Path:
    """Write the dataset's landing files under ``root/landing`` and run the pipeline into
    ``root/warehouse``; returns the warehouse file."""
    from orchestration.run import run_all
    from pipelines.config import Settings, resolve_vars

    landing = root / "landing"
    if dataset == "demo":
        from tools.demo.generate import generate

        generate(landing, 2000, 42)
        overrides = {"as_of_date": "2025-12-31"}
    elif dataset == "cdnow":
        from tools import public_data

        public_data.write_orders(public_data.transactions("CDNOW_master.txt"), landing)
        overrides = {"as_of_date": "1998-06-30", "reporting_currency": "USD"}
    else:
        raise SystemExit(f"unknown dataset {dataset!r} (demo or cdnow)")
    settings = Settings(landing.resolve(), (root / "warehouse").resolve(), resolve_vars(overrides))
    outcome = run_all(settings, progress=lambda line: None)
    if not outcome.success:
        raise SystemExit(f"the pipeline failed: {outcome.reason}")
    return settings.warehouse_path


def compare(a: dict, b: dict) -> list[str]:
    differences = []
    for table in sorted(set(a) | set(b)):
        if table not in a or table not in b:
            differences.append(f"{table}: only in {'the second' if table not in a else 'the first'}")
        elif a[table] != b[table]:
            what = ("columns" if a[table]["columns"] != b[table]["columns"] else
                    "rows" if a[table]["rows"] != b[table]["rows"] else "values")
            differences.append(f"{table}: {what} differ")
    return differences


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build")
    b.add_argument("dataset", choices=("demo", "cdnow"))
    b.add_argument("dir", type=Path)
    b.add_argument("--json", type=Path)
    s = sub.add_parser("show")
    s.add_argument("warehouse", type=Path)
    s.add_argument("--json", type=Path)
    c = sub.add_parser("compare")
    c.add_argument("a", type=Path)
    c.add_argument("b", type=Path)
    args = parser.parse_args(argv)
    if args.command == "compare":
        differences = compare(json.loads(args.a.read_text()), json.loads(args.b.read_text()))
        print("\n".join(differences) if differences else "equal")
        return 1 if differences else 0
    warehouse = build(args.dataset, args.dir) if args.command == "build" else args.warehouse
    found = fingerprints(warehouse)
    text = json.dumps(found, indent=1, sort_keys=True)
    if args.json:
        args.json.write_text(text)
    for table, fp in found.items():
        print(f"{table:<32} {fp['rows']:>10,} rows  {fp['md5']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
