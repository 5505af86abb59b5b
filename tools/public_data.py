"""The public CDNOW transaction logs (Fader, Hardie & Lee 2005), as bundled with the
archived ``lifetimes`` package (a dev dependency, never imported: only its data files
are read).

* ``CDNOW_master.txt``: 23,570 customers who first bought in Q1 1997, all their
  purchases until June 1998 (69,659 lines: customer id, date, CDs, dollars).
* ``CDNOW_sample.txt``: a 1/10 sample of them (2,357 customers), the data set of the
  BG/NBD paper (its first column is the master id, the second the sample id).
"""
from __future__ import annotations

import csv
import datetime as dt
import importlib.metadata
from decimal import Decimal
from pathlib import Path


def path(name: str) -> Path:
    for f in importlib.metadata.files("lifetimes") or []:
        if f.name == name:
            return Path(f.locate())
    raise FileNotFoundError(f"{name} not found in the lifetimes package (run make setup)")


def transactions(name: str = "CDNOW_master.txt") -> list[tuple[str, dt.date, Decimal]]:
    """(customer, day, dollars) per line, in file order."""
    rows = []
    with open(path(name), encoding="ascii") as fh:
        for line in fh:
            parts = line.split()
            if not parts or not parts[0].isdigit():
                continue
            if name == "CDNOW_sample.txt":
                parts = parts[1:]  # drop the master id: the sample id is the customer
            customer, day, _cds, dollars = parts
            rows.append((customer, dt.datetime.strptime(day, "%Y%m%d").date(), Decimal(dollars)))
    return rows


def write_orders(rows: list[tuple[str, dt.date, Decimal]], landing: Path) -> Path:
    """The transactions as a canonical orders export (one order per line; the shop
    account id is the CDNOW customer id; amounts in the reporting currency)."""
    folder = landing / "orders"
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / "cdnow_orders.csv"
    with open(out, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["order_id", "customer_id", "ordered_at", "total_amount", "status"])
        for i, (customer, day, dollars) in enumerate(rows, start=1):
            w.writerow([f"T{i:06d}", f"cdnow-{customer}", day.isoformat(), str(dollars), "completed"])
    return out
