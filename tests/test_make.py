"""The make targets the README tells users about, run as a user runs them (`make test` is CI
itself): `make run` on a landing folder of its own, `make dev` (the Dagster UI, whose landing
sensor must start runs with the demo's vars, not today's), `make bench` at the tiny scale."""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from pipelines.config import PROJECT_ROOT
from tests.pipeline import query


def make(*args: str, env: dict, timeout: float = 1200) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CLM_")}
    environ.update(env)
    return subprocess.run(["make", *args], cwd=PROJECT_ROOT, env=environ, capture_output=True, text=True,
                          timeout=timeout, check=False)


def holdout(audience: str, customer_id: str) -> bool:
    """The documented holdout rule: md5(customer_id:audience), first 32 bits / 2^32 < 0.10."""
    return int(hashlib.md5(f"{customer_id}:{audience}".encode()).hexdigest()[:8], 16) / 2**32 < 0.10


def test_make_run_writes_demo_data_and_runs_the_pipeline(tmp_path):
    """`make run` as a user runs it (the demo's 2,000 customers), and the demo's activation bars:
    audiences of 200 or more persons hold out 10 % of them within three standard errors (or two
    points), over everyone who ever entered and over today's members."""
    done = make("run", env={"CLM_LANDING_DIR": str(tmp_path / "landing"), "CLM_WAREHOUSE_DIR": str(tmp_path / "warehouse")})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "demo data for 2,000 customers (seed 42)" in done.stdout
    assert "as_of_date 2025-12-31" in done.stdout
    serving = tmp_path / "warehouse" / "serving.duckdb"
    assert f"BI snapshot         {serving}" in done.stdout
    assert query(serving, "SELECT count(*) FROM marts.dim_customers")[0][0] > 2000
    now = query(serving, "SELECT audience, customer_id, is_holdout FROM marts.audience_members")
    assert all(flag == holdout(a, c) for a, c, flag in now)
    ever = query(tmp_path / "warehouse" / "clm.duckdb",
                 "SELECT DISTINCT audience, customer_id FROM intermediate.int_audience_entries_listed")
    groups: dict[str, list[bool]] = {}
    for audience, cid in ever:
        groups.setdefault(audience, []).append(holdout(audience, cid))
    for audience, _cid, flag in now:
        groups.setdefault("now: " + audience, []).append(flag)
    large = {a: flags for a, flags in groups.items() if len(flags) >= 200}
    assert len(large) >= 3, {a: len(f) for a, f in groups.items()}
    for audience, flags in large.items():
        n = len(flags)
        assert abs(sum(flags) / n - 0.10) <= max(3 * (0.1 * 0.9 / n) ** 0.5, 0.02), (audience, n, sum(flags))


def test_make_bench_at_the_tiny_scale(tmp_path):
    done = make("bench", "SCALE=tiny", f"BENCH_ARGS=--dir {tmp_path}", env={})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "bench scale=tiny customers=200" in done.stdout
    assert "ingestion total" in done.stdout and "pipeline wall time" in done.stdout


def _graphql(query_text: str, variables: dict) -> dict:
    request = urllib.request.Request(
        "http://127.0.0.1:3000/graphql", data=json.dumps({"query": query_text, "variables": variables}).encode(),
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


RUNS = """
query { runsOrError { ... on Runs { results { runId status tags { key value } } } } }"""


def test_make_dev_starts_the_ui_whose_sensor_runs_with_the_demo_vars(tmp_path):
    """The landing sensor is on by default: its first tick must start a run with the demo's
    as_of_date (the vars of `make run`), never today's."""
    landing = tmp_path / "landing" / "orders"
    landing.mkdir(parents=True)
    (landing / "o.csv").write_text("order_id,ordered_at,total_amount\nO1,2025-06-01,10\n")
    past = time.time() - 600
    os.utime(landing / "o.csv", (past, past))  # settled: the sensor waits for files to stop changing
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CLM_")}
    environ.update({"CLM_LANDING_DIR": str(tmp_path / "landing"), "CLM_WAREHOUSE_DIR": str(tmp_path / "warehouse"),
                    "DAGSTER_HOME": str(tmp_path / "dagster_home")})
    proc = subprocess.Popen(["make", "dev"], cwd=PROJECT_ROOT, env=environ, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 300
        runs: list = []
        while time.time() < deadline and not runs:
            assert proc.poll() is None, "make dev exited"
            time.sleep(3)
            try:
                result = _graphql(RUNS, {})
            except OSError:
                continue  # the UI is not up yet
            runs = [r for r in result["data"]["runsOrError"]["results"]
                    if {"key": "clm/trigger", "value": "landing_files"} in r["tags"]]
        assert runs, "the landing sensor started no run"
        tags = {t["key"]: t["value"] for t in runs[0]["tags"]}
        assert tags["clm/as_of_date"] == "2025-12-31"
        assert json.loads(tags["clm/vars"])["as_of_date"] == "2025-12-31"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


pytestmark = pytest.mark.skipif(not Path("/usr/bin/make").exists() and not Path("/bin/make").exists(),
                                reason="make is not installed")
