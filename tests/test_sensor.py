from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest
from dagster import RunRequest, SensorResult, build_sensor_context

import orchestration.defs.ingestion.sensors as sensors
from orchestration.defs.ingestion.sensors import landing_files_sensor, run_key_for

ORDERS = b"order_id,ordered_at,total_amount\no1,2024-01-10T12:00:00Z,50.00\n"
SPEND = b"spend_date,channel,spend\n2024-01-01,google,10.5\n"


@pytest.fixture
def landing(tmp_path, monkeypatch):
    root = tmp_path / "landing"
    for source in ("orders", "marketing_spend"):
        (root / source).mkdir(parents=True)
    monkeypatch.setenv("CLM_LANDING_DIR", str(root))
    monkeypatch.delenv("CLM_VARS", raising=False)
    return root


def _drop(path: Path, content: bytes, age_seconds: float = 300) -> str:
    """Write a settled file (older than the sensor's minimum age); return its sha256."""
    path.write_bytes(content)
    past = time.time() - age_seconds
    os.utime(path, (past, past))
    return hashlib.sha256(content).hexdigest()


def _tick(cursor: str | None) -> SensorResult:
    result = landing_files_sensor(build_sensor_context(cursor=cursor))
    assert isinstance(result, SensorResult)
    return result


def _run_keys(result: SensorResult) -> list[str]:
    return [r.run_key for r in result.run_requests or [] if isinstance(r, RunRequest)]


def test_first_tick_requests_a_run_keyed_by_the_new_hashes(landing):
    h1 = _drop(landing / "orders" / "orders_2024.csv", ORDERS)
    h2 = _drop(landing / "marketing_spend" / "spend.csv", SPEND)

    result = _tick(None)

    assert _run_keys(result) == [hashlib.sha256("\n".join(sorted([h1, h2])).encode()).hexdigest()]
    assert _run_keys(result) == [run_key_for([h2, h1])]
    assert result.cursor


def test_no_new_files_skips_and_unchanged_files_are_not_rehashed(landing, monkeypatch):
    _drop(landing / "orders" / "orders_2024.csv", ORDERS)
    first = _tick(None)

    calls: list[Path] = []
    real_hash = sensors.hash_file
    monkeypatch.setattr(sensors, "hash_file", lambda p: calls.append(p) or real_hash(p))

    second = _tick(first.cursor)

    assert _run_keys(second) == []
    assert second.skip_reason is not None
    assert calls == []  # (path, size, mtime) unchanged: hash taken from the cursor


def test_redelivered_copy_under_new_name_does_not_trigger(landing):
    _drop(landing / "orders" / "orders_2024.csv", ORDERS)
    first = _tick(None)

    _drop(landing / "orders" / "orders_2024 (copy).csv", ORDERS)
    second = _tick(first.cursor)

    assert _run_keys(second) == []
    assert second.skip_reason is not None


def test_new_file_triggers_a_new_run(landing):
    _drop(landing / "orders" / "orders_2024.csv", ORDERS)
    first = _tick(None)

    h_new = _drop(landing / "orders" / "orders_2025.csv", ORDERS + b"o2,2025-01-01T00:00:00Z,9.99\n")
    second = _tick(first.cursor)

    assert _run_keys(second) == [run_key_for([h_new])]
    assert _run_keys(second) != _run_keys(first)
    # and it is remembered
    assert _run_keys(_tick(second.cursor)) == []


def test_files_still_being_written_and_partial_downloads_wait(landing):
    _drop(landing / "orders" / "fresh.csv", ORDERS, age_seconds=0)
    _drop(landing / "orders" / "download.csv.part", SPEND)
    _drop(landing / "orders" / ".hidden.csv", SPEND)

    result = _tick(None)

    assert _run_keys(result) == []
    assert result.skip_reason is not None


def test_sensor_never_opens_the_warehouse(landing, monkeypatch):
    import duckdb

    def forbidden(*args, **kwargs):
        raise AssertionError("the sensor must not open DuckDB")

    monkeypatch.setattr(duckdb, "connect", forbidden)
    _drop(landing / "orders" / "orders_2024.csv", ORDERS)

    assert len(_run_keys(_tick(None))) == 1
