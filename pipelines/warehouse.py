"""The only door to the DuckDB warehouse: connecting, quoting values into SQL, the run lock.

DuckDB allows one writing process per database file, and a second writer fails deep inside
whatever it was doing. Every command that writes the warehouse (``clm run``, ``clm erase``,
Dagster runs started from the UI, the schedule or the landing sensor) therefore first takes
the warehouse's *run lock*: an exclusive ``flock`` on ``clm.lock`` beside ``clm.duckdb``,
holding the holder's pid, command and start time. A second run does not wait: it fails at
once with :class:`WarehouseBusy`, naming the holder (``clm`` exits 3). The kernel releases
the lock when the holding process ends, however it ends, so a killed run never leaves a
stale lock; what such a run leaves behind (a half-written snapshot, a load's temporary
folder) is removed by the next run that takes the lock.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import errno
import json
import os
import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import duckdb

LOCK_NAME = "clm.lock"
WAREHOUSE_NAME = "clm.duckdb"
SERVING_NAME = "serving.duckdb"
LOAD_TEMP_PREFIX = ".load-"  # a load's temporary folder (transcoded copies), see pipelines.raw.load
SERVING_TEMP_INFIX = ".tmp-"  # serving.duckdb.tmp-<pid>, see pipelines.serving.publish


def quote_literal(value: str) -> str:
    """``value`` as a SQL string literal: the only way a value reaches SQL text."""
    return "'" + str(value).replace("'", "''") + "'"


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def connect(warehouse_path: Path, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A connection to the warehouse file with the session settings every writer uses."""
    if not read_only:
        Path(warehouse_path).parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(warehouse_path), read_only=read_only)
    con.execute("SET TimeZone = 'UTC'")
    # FSST string compression roughly halves write throughput; the raw layer is written
    # once per file and read a few times, so it trades more space for faster loads.
    con.execute("SET disabled_compression_methods = 'fsst'")
    return con


# --- the run lock ------------------------------------------------------------------------


class WarehouseBusy(RuntimeError):
    """Another run holds the warehouse; the message names it (pid, command, start time)."""


class WarehouseNotWritable(RuntimeError):
    """The warehouse folder cannot be created or written; the message names it."""


_held: dict[Path, list] = {}  # lock path -> [open file, depth]: re-entrant within a process
_held_guard = threading.Lock()


def row_counts(warehouse_path: Path, relations: list[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """Rows of each (schema, table or view) that exists in the warehouse, read-only; an empty
    dict when the database file is absent."""
    if not relations or not Path(warehouse_path).exists():
        return {}
    with connect(warehouse_path, read_only=True) as con:
        present = set(con.execute("SELECT schema_name, table_name FROM duckdb_tables() UNION ALL "
                                  "SELECT schema_name, view_name FROM duckdb_views() WHERE NOT internal").fetchall())
        wanted = [r for r in dict.fromkeys(relations) if r in present]
        return {r: con.execute(f"SELECT count(*) FROM {quote_ident(r[0])}.{quote_ident(r[1])}").fetchone()[0]
                for r in wanted}


def lock_path(warehouse_dir: Path) -> Path:
    return Path(warehouse_dir) / LOCK_NAME


def lock_holder(warehouse_dir: Path) -> dict | None:
    """What the lock file says about its holder, or None when nobody holds the lock."""
    path = lock_path(warehouse_dir)
    if not path.exists() or not _is_locked(path):
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return {}


def _is_locked(path: Path) -> bool:
    import fcntl

    if path.resolve() in _held:
        return True
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def describe_holder(holder: dict | None) -> str:
    if not holder:
        return "another process"
    parts = [f"pid {holder.get('pid', '?')}"]
    if holder.get("command"):
        parts.append(f"({holder['command']})")
    if holder.get("started_at"):
        parts.append(f"since {holder['started_at']}")
    if holder.get("host") and holder.get("host") != socket.gethostname():
        parts.append(f"on {holder['host']}")
    return " ".join(parts)


def ensure_writable(folder: Path, what: str = "the warehouse folder") -> None:
    """Create ``folder`` and prove a file can be written there, or raise WarehouseNotWritable
    with a one-line reason."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise WarehouseNotWritable(f"{what} {folder} cannot be written ({reason})") from None


@contextlib.contextmanager
def run_lock(warehouse_dir: Path, command: str) -> Iterator[None]:
    """Hold the warehouse's run lock for the block (see the module docstring).

    Raises WarehouseBusy at once when another process holds it. Re-entrant within one
    process (``clm run`` holds it around the Dagster run, whose resources take it too).
    The first holder removes what killed runs left behind.
    """
    import fcntl

    ensure_writable(warehouse_dir)
    path = lock_path(warehouse_dir).resolve()
    with _held_guard:
        entry = _held.get(path)
        if entry is not None:
            entry[1] += 1
    if entry is not None:
        try:
            yield
        finally:
            with _held_guard:
                entry[1] -= 1
        return
    fh = open(path, "a+", encoding="utf-8")
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        fh.close()
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            holder = lock_holder(warehouse_dir)
            raise WarehouseBusy(
                f"another run holds the warehouse {Path(warehouse_dir)}: {describe_holder(holder)}") from None
        raise
    try:
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps({
            "pid": os.getpid(),
            "command": command,
            "started_at": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
            "host": socket.gethostname(),
        }))
        fh.flush()
        with _held_guard:
            _held[path] = [fh, 1]
        remove_leftovers(warehouse_dir)
        yield
    finally:
        with _held_guard:
            _held.pop(path, None)
        try:
            fh.seek(0)
            fh.truncate()
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
            fh.close()


def holds_run_lock(warehouse_dir: Path) -> bool:
    return lock_path(warehouse_dir).resolve() in _held


def remove_leftovers(warehouse_dir: Path) -> list[str]:
    """Remove what a killed run left in the warehouse folder: half-written serving snapshots
    (``serving.duckdb.tmp-*``) and loads' temporary folders (``.load-*``). Only called while
    holding the run lock, so no live run owns them. Returns the names removed."""
    removed = []
    folder = Path(warehouse_dir)
    if not folder.is_dir():
        return removed
    for entry in folder.iterdir():
        name = entry.name
        if name.startswith(SERVING_NAME + SERVING_TEMP_INFIX):
            entry.unlink(missing_ok=True)
        elif name.startswith(LOAD_TEMP_PREFIX) and entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            continue
        removed.append(name)
    return removed


# --- rewriting the file ----------------------------------------------------------------


def rewrite_database(warehouse_path: Path) -> dict:
    """Copy every schema, table, view, macro and type of the warehouse into a new file and
    swap it in, so that no freed block of the old file survives (DuckDB reuses freed blocks
    but never overwrites them: deleted rows stay readable in the file's bytes until then).
    Must run under the run lock. Returns the sizes before and after."""
    warehouse_path = Path(warehouse_path).resolve()
    new_path = warehouse_path.with_name(warehouse_path.name + ".rewrite")
    for p in (new_path, Path(str(new_path) + ".wal")):
        p.unlink(missing_ok=True)
    before = warehouse_path.stat().st_size
    con = connect(warehouse_path)
    try:
        con.execute("CHECKPOINT")
        con.execute(f"ATTACH {quote_literal(str(new_path))} AS clm_rewrite")
        con.execute(f"COPY FROM DATABASE {quote_ident(con.execute('SELECT current_database()').fetchone()[0])} "
                    "TO clm_rewrite")
        con.execute("CHECKPOINT clm_rewrite")
        con.execute("DETACH clm_rewrite")
    except BaseException:
        con.close()
        new_path.unlink(missing_ok=True)
        raise
    con.close()
    Path(str(warehouse_path) + ".wal").unlink(missing_ok=True)
    os.replace(new_path, warehouse_path)
    return {"bytes_before": before, "bytes_after": warehouse_path.stat().st_size}
