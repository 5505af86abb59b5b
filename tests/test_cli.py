"""The `clm` console script as a user runs it (a subprocess): exit codes of CONTRACT section 1,
vars validated before anything is written, the warehouse's run lock, and what killed runs
leave behind."""
from __future__ import annotations

import os
import time

import duckdb
import pytest

from orchestration.defs.dbt.project import dbt_error_reason
from pipelines.warehouse import lock_holder, run_lock
from tests.pipeline import clm, query

VARS = '{"as_of_date": "2025-12-31"}'


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """`clm demo-data` then `clm run` on 120 demo customers, both through the console script."""
    root = tmp_path_factory.mktemp("cli")
    made = clm("demo-data", "--out", str(root / "landing"), "--customers", "120", "--seed", "7")
    assert made.returncode == 0, made.stderr
    assert "demo data for 120 customers (seed 7)" in made.stdout
    run = clm("run", root=root, vars_json=VARS)
    return {"root": root, "made": made, "run": run, "db": root / "warehouse" / "clm.duckdb"}


def test_demo_data_and_run_through_the_console_script(demo):
    assert demo["run"].returncode == 0, demo["run"].stderr
    assert "OK:" in demo["run"].stdout and "BI snapshot" in demo["run"].stdout
    assert "as_of_date 2025-12-31" in demo["run"].stdout
    # every row the generator reports is in raw or rejected, once (the re-delivered copy is not counted)
    written = {line.split()[0]: int(line.split()[1].replace(",", "")) for line in demo["made"].stdout.splitlines()[1:]}
    for source, rows in written.items():
        loaded = query(demo["db"], f"SELECT count(*) FROM raw.{source}")[0][0]
        rejected = query(demo["db"], f"SELECT count(*) FROM raw.rejected_rows WHERE source = '{source}'")[0][0]
        assert loaded + rejected == rows, source


@pytest.mark.parametrize("vars_json, reason", [
    ('{"reporting_currency": "EUR\' or true or \'"}',
     "CLM_VARS: reporting_currency: must be a three-letter ISO 4217 code such as EUR (got \"EUR' or true or '\")"),
    ('{"churn_after_days": "abc"}', "CLM_VARS: churn_after_days: input should be a valid integer (got 'abc')"),
    ('{"churn_after_days": -5}', "CLM_VARS: churn_after_days: input should be greater than or equal to 1 (got -5)"),
    ('{"as_of_date": "31.12.2025"}', "CLM_VARS: as_of_date: must be a date written YYYY-MM-DD (got '31.12.2025')"),
    ('{"churn_days": 5}', "CLM_VARS has an unknown var 'churn_days'"),
    ("{not json", "CLM_VARS is not valid JSON"),
])
def test_bad_vars_exit_2_before_anything_is_written(tmp_path, vars_json, reason):
    (tmp_path / "landing" / "orders").mkdir(parents=True)
    started = time.perf_counter()
    done = clm("run", root=tmp_path, vars_json=vars_json)
    assert done.returncode == 2
    assert done.stderr.startswith(f"clm run: {reason}") and done.stderr.count("\n") == 1
    assert not (tmp_path / "warehouse" / "clm.duckdb").exists()
    assert time.perf_counter() - started < 30  # refused at once, not deep inside dbt


def test_a_warehouse_folder_that_cannot_be_written_is_exit_2(tmp_path):
    (tmp_path / "landing").mkdir()
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    done = clm("run", env={"CLM_LANDING_DIR": str(tmp_path / "landing"), "CLM_WAREHOUSE_DIR": str(blocker / "wh")})
    assert done.returncode == 2
    assert done.stderr == f"clm run: the warehouse folder {blocker / 'wh'} cannot be written (Not a directory)\n"
    missing = clm("run", env={"CLM_LANDING_DIR": str(tmp_path / "nowhere"), "CLM_WAREHOUSE_DIR": str(tmp_path / "wh")})
    assert missing.returncode == 2 and "landing folder" in missing.stderr and "does not exist" in missing.stderr
    out = clm("demo-data", "--out", str(blocker / "landing"), "--customers", "5")
    assert out.returncode == 2 and out.stderr.startswith("clm demo-data: the output folder")


def test_a_second_run_exits_3_at_once_naming_the_holder(demo):
    root = demo["root"]
    with run_lock(root / "warehouse", "test holder"):
        holder = lock_holder(root / "warehouse")
        assert holder["pid"] == os.getpid() and holder["command"] == "test holder"
        for args in (["run"], ["erase", "--email", "someone@example.com"]):
            started = time.perf_counter()
            done = clm(*args, root=root, vars_json=VARS)
            assert done.returncode == 3, done.stderr
            assert done.stderr == (f"clm {args[0]}: another run holds the warehouse {root / 'warehouse'}: "
                                   f"pid {os.getpid()} (test holder) since {holder['started_at']}\n")
            assert time.perf_counter() - started < 30
    assert lock_holder(root / "warehouse") is None  # released with the block


def test_leftovers_of_a_killed_run_are_removed_by_the_next(demo):
    warehouse = demo["root"] / "warehouse"
    (warehouse / "serving.duckdb.tmp-999999").write_bytes(b"half a snapshot")
    (warehouse / ".load-abc123").mkdir()
    (warehouse / ".load-abc123" / "utf8.csv").write_text("order_id\n")
    done = clm("run", root=demo["root"], vars_json=VARS)
    assert done.returncode == 0, done.stderr
    assert not (warehouse / "serving.duckdb.tmp-999999").exists() and not (warehouse / ".load-abc123").exists()
    # each run keeps its own dbt log
    logs = sorted((warehouse / "dbt" / "logs").iterdir())
    assert len(logs) >= 2 and all((p / "dbt.log").exists() for p in logs)


def test_a_database_held_by_another_program_fails_with_its_reason(demo):
    """A client holding clm.duckdb read-write (what a BI tool pointed at the working file
    does): the run fails with DuckDB's own reason on one line, not an empty one."""
    con = duckdb.connect(str(demo["db"]))
    try:
        done = clm("run", root=demo["root"], vars_json=VARS)
    finally:
        con.close()
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1
    assert "Conflicting lock is held" in done.stderr and f"(PID {os.getpid()})" in done.stderr


def test_dbt_errors_give_their_first_real_line():
    text = ("The dbt CLI process with command\n\n`dbt build`\n\nfailed with exit code `2`. Check the stdout ...\n\n"
            "Errors parsed from dbt logs:\n\nEncountered an error:\nIO Error: Could not set lock on file "
            '"/w/clm.duckdb": Conflicting lock is held in /usr/bin/python3 (PID 42). See also '
            "https://duckdb.org/docs/stable/connect/concurrency\n")
    assert dbt_error_reason(text) == ('IO Error: Could not set lock on file "/w/clm.duckdb": Conflicting lock is '
                                      "held in /usr/bin/python3 (PID 42).")
    assert dbt_error_reason("") == ""


def test_skipped_and_failed_files_are_reported_by_the_run_and_in_fct_source_loads(demo, tmp_path):
    root = demo["root"]
    (root / "landing" / "crm_deals" / "passwd.csv").symlink_to("/etc/passwd")
    broken = root / "landing" / "orders" / "zz_open_quote.csv"
    broken.write_text('order_id,ordered_at,total_amount\nO1,2024-01-01,"5\nO2,2024-01-01,6\n')
    try:
        done = clm("run", root=root, vars_json=VARS)
        assert done.returncode == 1
        assert "crm_deals/passwd.csv: skipped: a symlink leading outside the landing folder" in done.stdout
        assert done.stderr.startswith("clm run failed: raw/orders failed: orders: 1 file failed to load: "
                                      "orders/zz_open_quote.csv: line 2 opens a quoted field that is never closed")
        broken.unlink()
        done = clm("run", root=root, vars_json=VARS)
        assert done.returncode == 0, done.stderr
        assert query(demo["db"], "SELECT file_name, status, reason FROM marts.fct_source_loads "
                                 "WHERE status <> 'loaded'") == [
            ("crm_deals/passwd.csv", "skipped", "crm_deals/passwd.csv: skipped: a symlink leading outside the "
                                                "landing folder")]
        serving = root / "warehouse" / "serving.duckdb"
        assert query(serving, "SELECT count(*) FROM marts.fct_source_loads WHERE status = 'skipped'") == [(1,)]
    finally:
        (root / "landing" / "crm_deals" / "passwd.csv").unlink(missing_ok=True)
        broken.unlink(missing_ok=True)
