"""Erasing a person (GDPR Art. 17; CONTRACT section 1: ``clm erase --email ADDRESS`` or
``--customer-id ID``).

1. The person is found among the resolved persons: by customer_id, or by an email
   normalised exactly as staging does (the dbt macro ``normalise_email``, which every dbt
   run also installs as the DuckDB macro ``main.clm_normalise_email``).
2. In one transaction: every raw row of the person's records is deleted (CRM contacts,
   deals, orders, web events of the person's browsers, survey responses); the person's
   email and user id are removed from other records that still carry them (a shared
   device's events, another contact's ``referred_by_email``), with those rows' ``_extra``;
   the person's entries leave the customer_id registry; and the erasure is recorded in
   ``raw._erasures`` as keyed hashes of the identifiers (HMAC-SHA256, never the values), so
   that later loads drop rows of the same person (a re-export, a rebuild from the landing
   files). The key (``erasure.key`` beside the warehouse, created on first use, readable by
   its owner only, never logged) means a guessed address cannot be confirmed from the table.
3. The pipeline runs again, so that staging, marts and the serving snapshot are rebuilt
   without the person (``clm erase`` does this under the run lock).
4. :func:`finish_erasure` rewrites the warehouse file: DuckDB keeps deleted rows' bytes in
   free blocks until they happen to be reused, so only a fresh copy holds none of them.
   ``serving.duckdb`` is always written as a new file.

Landing files are the customer's exports and are not modified: the recorded hashes keep
their rows out.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from pipelines.config import Settings
from pipelines.contract import PERSON_RECORD_KEYS
from pipelines.warehouse import connect, quote_literal, rewrite_database

EMAIL_MACRO = "main.clm_normalise_email"
ERASURES = "raw._erasures"
KEY_NAME = "erasure.key"
HMAC_MACRO = "clm_erasure_hmac"  # a TEMP macro: the key never reaches the database file
HMAC_SCHEME, LEGACY_SCHEME = "hmac_sha256", "sha256"  # rows of versions before the key: plain sha256
RECORD_KEYS = PERSON_RECORD_KEYS  # the key of each source's records, as staging reads it (trimmed)


class ErasureError(RuntimeError):
    """The erasure cannot be done; the message never contains the identifier given."""


@dataclass
class ErasureResult:
    customer_id: str
    records: dict[str, int] = field(default_factory=dict)  # raw rows deleted per source
    scrubbed: int = 0  # rows of other records from which the person's identifiers were removed
    identifiers: int = 0  # identifier hashes recorded


def ensure_erasures_table(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("CREATE SCHEMA IF NOT EXISTS raw")
    con.execute(f"""CREATE TABLE IF NOT EXISTS {ERASURES} (
        erased_at TIMESTAMP NOT NULL, customer_id VARCHAR NOT NULL, kind VARCHAR NOT NULL,
        value_hash VARCHAR NOT NULL, scheme VARCHAR NOT NULL DEFAULT '{HMAC_SCHEME}')""")
    con.execute(f"ALTER TABLE {ERASURES} ADD COLUMN IF NOT EXISTS scheme VARCHAR DEFAULT '{LEGACY_SCHEME}'")


def erasure_key(warehouse_dir: Path, create: bool = False) -> bytes | None:
    """The warehouse's erasure key (32 random bytes), created readable by its owner only when
    ``create``; None when there is none."""
    path = Path(warehouse_dir) / KEY_NAME
    if not path.exists():
        if not create:
            return None
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
    return bytes.fromhex(path.read_text().strip())


def keyed_hash(key: bytes, value: str) -> str:
    """HMAC-SHA256 of ``value``: what raw._erasures stores, and what the loader compares."""
    return hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()


def install_hmac_macro(con: duckdb.DuckDBPyConnection, key: bytes) -> None:
    """``clm_erasure_hmac(text)`` on this connection: keyed_hash in SQL (RFC 2104 over DuckDB's
    sha256), as a TEMP macro, so the key is never stored in the database."""
    block = key.ljust(64, b"\0") if len(key) <= 64 else hashlib.sha256(key).digest().ljust(64, b"\0")
    inner, outer = bytes(b ^ 0x36 for b in block).hex(), bytes(b ^ 0x5C for b in block).hex()
    con.execute(f"""CREATE OR REPLACE TEMP MACRO {HMAC_MACRO}(v) AS
                    sha256(unhex('{outer}') || unhex(sha256(unhex('{inner}') || encode(v))))""")


def _exists(con, schema: str, table: str) -> bool:
    # literals, not bound parameters: binding Python values makes duckdb import pandas (seconds)
    return bool(con.execute(
        "SELECT count(*) FROM information_schema.tables "
        f"WHERE table_schema = {quote_literal(schema)} AND table_name = {quote_literal(table)}").fetchone()[0])


def _in_list(values) -> str:
    return "(" + ", ".join(quote_literal(v) for v in values) + ")" if values else "(NULL)"


def find_person(con, email: str | None = None, customer_id: str | None = None) -> str | None:
    if customer_id is not None:
        row = con.execute("SELECT customer_id FROM marts.customer_identities WHERE customer_id = ? LIMIT 1",
                          [customer_id.strip()]).fetchone()
        return row[0] if row else None
    row = con.execute(
        f"""SELECT i.customer_id FROM intermediate.int_identity_links l
            JOIN marts.customer_identities i USING (source, source_key)
            WHERE l.id_type = 'email' AND l.id_value = {EMAIL_MACRO}(?) LIMIT 1""", [email]).fetchone()
    return row[0] if row else None


def erase_person(settings: Settings, email: str | None = None, customer_id: str | None = None) -> ErasureResult:
    """Erase one person from schema raw and the registry (see the module docstring); the
    caller rebuilds the rest (``clm erase`` runs the pipeline)."""
    if (email is None) == (customer_id is None):
        raise ErasureError("give exactly one of an email or a customer id")
    if not settings.warehouse_path.exists():
        raise ErasureError(f"no warehouse at {settings.warehouse_path}: nothing to erase")
    con = connect(settings.warehouse_path)
    try:
        if not (_exists(con, "marts", "customer_identities") and _exists(con, "intermediate", "int_identity_links")):
            raise ErasureError("the warehouse has no resolved persons yet (run clm run first)")
        try:
            cid = find_person(con, email=email, customer_id=customer_id)
        except duckdb.CatalogException as exc:
            raise ErasureError("the warehouse lacks the email macro (run clm run first)") from exc
        if cid is None:
            raise ErasureError(f"no person matches the given {'email' if email is not None else 'customer id'}")
        records = con.execute("SELECT source, source_key FROM marts.customer_identities WHERE customer_id = ?",
                              [cid]).fetchall()
        ids = con.execute(
            """SELECT DISTINCT l.id_type, l.id_value FROM intermediate.int_identity_links l
               JOIN marts.customer_identities i USING (source, source_key)
               WHERE i.customer_id = ? AND l.id_type IS NOT NULL""", [cid]).fetchall()
        keys: dict[str, list[str]] = {s: [] for s in RECORD_KEYS}
        for source, key in records:
            keys[source].append(key)
        by_type: dict[str, list[str]] = {}
        for id_type, value in ids:
            by_type.setdefault(id_type, []).append(value)
        emails, user_ids, contact_ids = (by_type.get(t, []) for t in ("email", "user_id", "contact_id"))
        result = ErasureResult(cid)
        con.execute("BEGIN TRANSACTION")
        try:
            result.records, result.scrubbed = _delete_raw(con, keys, emails, user_ids, contact_ids)
            if _exists(con, "intermediate", "customer_id_registry"):
                con.execute("DELETE FROM intermediate.customer_id_registry WHERE customer_id = ?", [cid])
            ensure_erasures_table(con)
            key = erasure_key(settings.warehouse_dir, create=True)
            hashes = [(f"key:{s}", k) for s, ks in keys.items() for k in ks if not k.startswith("md5:")]
            hashes += [(t, v) for t, vs in by_type.items() for v in vs]
            now = quote_literal(dt.datetime.now(dt.timezone.utc).replace(tzinfo=None).isoformat(sep=" "))
            rows = [f"({now}::TIMESTAMP, {quote_literal(cid)}, {quote_literal(kind)}, "
                    f"{quote_literal(keyed_hash(key, value))}, '{HMAC_SCHEME}')" for kind, value in hashes]
            if rows:
                con.execute(f"INSERT INTO {ERASURES} (erased_at, customer_id, kind, value_hash, scheme) "
                            f"VALUES {', '.join(rows)}")
            result.identifiers = len(hashes)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("CHECKPOINT")
    finally:
        con.close()
    return result


def _delete_raw(con, keys, emails, user_ids, contact_ids) -> tuple[dict[str, int], int]:
    """Delete the person's raw rows; scrub their identifiers from other rows."""
    deleted: dict[str, int] = {}
    email_in = f"{EMAIL_MACRO}(email) IN {_in_list(emails)}"
    conditions = {
        "crm_contacts": [f"trim(contact_id) IN {_in_list(keys['crm_contacts'])}"],
        "crm_deals": [f"trim(deal_id) IN {_in_list(keys['crm_deals'])}",
                      f"trim(contact_id) IN {_in_list(contact_ids)}"],
        "orders": [f"trim(order_id) IN {_in_list(keys['orders'])}"],
        "web_events": [f"trim(anonymous_id) IN {_in_list(keys['web_events'])}"],
        # responses without an id are keyed by a content hash in staging: they went with
        # the person through their email or contact id
        "surveys": [f"trim(response_id) IN {_in_list(keys['surveys'])}", email_in,
                    f"trim(contact_id) IN {_in_list(contact_ids)}"],
    }
    for source, conds in conditions.items():
        if not _exists(con, "raw", source):
            continue
        before = con.execute(f"SELECT count(*) FROM raw.{source}").fetchone()[0]
        con.execute(f"DELETE FROM raw.{source} WHERE {' OR '.join(conds)}")
        deleted[source] = before - con.execute(f"SELECT count(*) FROM raw.{source}").fetchone()[0]
    scrubbed = 0
    scrubs = []
    if _exists(con, "raw", "web_events"):
        scrubs += [
            ("web_events", "email = NULL, _extra = NULL", email_in),
            ("web_events", "user_id = NULL, _extra = NULL", f"trim(user_id) IN {_in_list(user_ids)}"),
        ]
    if _exists(con, "raw", "crm_contacts"):
        scrubs.append(("crm_contacts", "referred_by_email = NULL",
                       f"{EMAIL_MACRO}(referred_by_email) IN {_in_list(emails)}"))
    for source, assignment, where in scrubs:
        n = con.execute(f"SELECT count(*) FROM raw.{source} WHERE {where}").fetchone()[0]
        if n:
            con.execute(f"UPDATE raw.{source} SET {assignment} WHERE {where}")
            scrubbed += n
    return deleted, scrubbed


def finish_erasure(settings: Settings) -> dict:
    """After the rebuild: rewrite the warehouse file so that no freed block keeps the erased
    person's bytes (see the module docstring). Call under the run lock."""
    return rewrite_database(settings.warehouse_path)


def erased_rows_condition(con, warehouse_dir: Path, source: str, columns: set[str]) -> str | None:
    """SQL condition over rows being loaded (the canonical ``columns`` present) that is true for
    rows of erased persons, or None when nothing was ever erased. Used by the loader; installs
    the keyed-hash macro on ``con``."""
    if not _exists(con, "raw", "_erasures"):
        return None
    ensure_erasures_table(con)
    schemes = {r[0] for r in con.execute(f"SELECT DISTINCT scheme FROM {ERASURES}").fetchall()}
    if not schemes:
        return None
    hash_sql = {}
    if HMAC_SCHEME in schemes:
        key = erasure_key(warehouse_dir)
        if key is None:
            raise ErasureError(f"the erasure key {Path(warehouse_dir) / KEY_NAME} is missing: rows of erased "
                               "persons cannot be recognised (restore the key from a backup of the warehouse folder)")
        install_hmac_macro(con, key)
        hash_sql[HMAC_SCHEME] = HMAC_MACRO
    if LEGACY_SCHEME in schemes:
        hash_sql[LEGACY_SCHEME] = "sha256"

    def erased(value: str, kind: str) -> str:
        return " OR ".join(
            f"{fn}({value}) IN (SELECT value_hash FROM {ERASURES} WHERE kind = {quote_literal(kind)} "
            f"AND scheme = '{scheme}')" for scheme, fn in hash_sql.items())

    conds = []
    if RECORD_KEYS[source] in columns:
        conds.append(erased(f"trim({RECORD_KEYS[source]})", "key:" + source))
    if "email" in columns:
        conds.append(erased(f"{EMAIL_MACRO}(email)", "email"))
    for column, kind in (("user_id", "user_id"), ("customer_id", "user_id"), ("contact_id", "contact_id")):
        if column in columns and column != RECORD_KEYS[source]:
            conds.append(erased(f"trim({column})", kind))
    return " OR ".join(f"coalesce({c}, false)" for c in conds) if conds else None
