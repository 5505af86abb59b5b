"""Audiences handed to marketing tools (CONTRACT section 7: ``clm export --audience NAME --out FILE``).

The export reads the published snapshot (``serving.duckdb``, never the working warehouse) and
writes the members of one audience who are not held out and have marketing consent, with the
contact fields an activation tool needs: ``customer_id``, ``email``, ``phone``, ``first_name``,
``entered_on``. It is the only way personal data leaves the warehouse, so it returns counts
only (what was written, held out, without consent), and writes atomically: a temporary file
beside the target, renamed over it, so a tool picking the file up never reads half of it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import duckdb

from pipelines.contract import AUDIENCES
from pipelines.warehouse import quote_literal

FORMATS = {".csv": "(FORMAT csv, HEADER true)", ".parquet": "(FORMAT parquet)"}
COLUMNS = ("customer_id", "email", "phone", "first_name", "entered_on")


class ExportError(ValueError):
    """The export cannot be made as asked; the message says why (never a member's data)."""


@dataclass(frozen=True)
class ExportResult:
    audience: str
    path: Path
    exported: int
    held_out: int
    without_consent: int


def check_request(audience: str, out: Path) -> str:
    """The output format for a valid request; ExportError naming what is wrong otherwise."""
    if audience not in AUDIENCES:
        raise ExportError(f"unknown audience {audience!r}; known audiences: {', '.join(AUDIENCES)}")
    suffix = Path(out).suffix.lower()
    if suffix not in FORMATS:
        raise ExportError(f"the output file must end in .csv or .parquet (got {Path(out).name!r})")
    return suffix


def export_audience(serving_path: Path, audience: str, out: Path) -> ExportResult:
    """Write ``audience``'s consented, not held-out members to ``out`` (.csv or .parquet)."""
    suffix = check_request(audience, out)
    if not Path(serving_path).exists():
        raise ExportError(f"no published snapshot at {serving_path} (run clm run first)")
    out = Path(out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    con = duckdb.connect(str(serving_path), read_only=True)
    try:
        members = f"""(SELECT m.customer_id, m.is_holdout, coalesce(m.marketing_consent, false) AS consent,
                              c.email, c.phone, c.first_name, m.entered_on
                       FROM marts.audience_members m JOIN marts.dim_customers c USING (customer_id)
                       WHERE m.audience = {quote_literal(audience)})"""
        held_out, without_consent = con.execute(
            f"SELECT count(*) FILTER (is_holdout), count(*) FILTER (NOT is_holdout AND NOT consent) "
            f"FROM {members}").fetchone()
        exported = con.execute(
            f"""COPY (SELECT {', '.join(COLUMNS)} FROM {members} WHERE NOT is_holdout AND consent
                      ORDER BY customer_id)
                TO {quote_literal(str(tmp))} {FORMATS[suffix]}""").fetchone()[0]
        os.replace(tmp, out)
    finally:
        con.close()
        tmp.unlink(missing_ok=True)
    return ExportResult(audience, out, int(exported), int(held_out), int(without_consent))
