"""The MetricFlow semantic layer (CONTRACT sections 6 and 9): every KPI of section 6 is a metric of
the same name over marts.kpi_monthly, and `mf query ... --group-by metric_time__month`, run
through the `mf` console script as a user runs it, returns kpi_monthly's numbers."""
from __future__ import annotations

import csv
import json
import math
import os
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from orchestration.defs.dbt.project import prepare_manifest
from pipelines.config import DBT_PROJECT_DIR, PROJECT_ROOT
from tests.pipeline import query

MF = Path(sys.executable).parent / "mf"  # the console script of dbt-metricflow
MF_PROFILES_DIR = DBT_PROJECT_DIR / "metricflow"
VARS = '{"as_of_date": "2025-12-31"}'
CONTRACT = (PROJECT_ROOT / "docs" / "CONTRACT.md").read_text(encoding="utf-8")
SECTION_6_KPIS = {
    "new_customers", "active_customers", "customer_base", "churned_customers", "churn_rate",
    "reactivated_customers", "reactivation_rate", "repeat_purchase_rate", "orders", "net_revenue",
    "average_order_value", "lead_conversion_rate", "visitor_to_lead_rate", "nps",
    "customer_effort_score", "referral_rate",
}


def section_6_kpis(kpi_columns: set[str]) -> set[str]:
    """The columns of kpi_monthly that CONTRACT section 6 names in its KPI list (before the
    cohort paragraph)."""
    body = re.split(r"^## \d+\. ", CONTRACT, flags=re.M)[6]
    kpi_list = body.split("\nCohorts:", 1)[0]
    return set(re.findall(r"`([a-z_]+)`", kpi_list)) & kpi_columns


@pytest.fixture(scope="module")
def semantic_manifest() -> dict:
    prepare_manifest()  # dbt parse writes target/semantic_manifest.json beside manifest.json
    return json.loads((DBT_PROJECT_DIR / "target" / "semantic_manifest.json").read_text())


@pytest.fixture(scope="module")
def kpi_columns() -> set[str]:
    manifest = json.loads(prepare_manifest().read_text())
    node = next(n for n in manifest["nodes"].values() if n["resource_type"] == "model" and n["name"] == "kpi_monthly")
    return set(node["columns"])


def test_the_section_6_kpis_are_read_from_the_contract(kpi_columns):
    assert section_6_kpis(kpi_columns) == SECTION_6_KPIS


def test_every_kpi_of_section_6_is_a_metric_over_its_kpi_monthly_column(semantic_manifest, kpi_columns):
    metrics = {m["name"]: m for m in semantic_manifest["metrics"]}
    assert sorted(section_6_kpis(kpi_columns) - set(metrics)) == []
    measures = {measure["name"]: (model, measure) for model in semantic_manifest["semantic_models"]
                for measure in model["measures"]}
    wrong = []
    for name in sorted(section_6_kpis(kpi_columns)):
        metric = metrics[name]
        measure_name = metric["type_params"]["measure"]["name"]
        model, measure = measures[measure_name]
        column = measure.get("expr") or measure["name"]
        if (metric["type"], model["node_relation"]["alias"], column) != ("simple", "kpi_monthly", name):
            wrong.append(f"{name}: {metric['type']} over {model['node_relation']['alias']}.{column}")
    assert wrong == []


def test_the_time_spine_is_configured(semantic_manifest):
    spines = semantic_manifest["project_configuration"]["time_spines"]
    assert [(s["node_relation"]["alias"], s["primary_column"]["time_granularity"]) for s in spines] == [
        ("metricflow_time_spine", "day")]


def mf(*args: str, warehouse_dir: Path, cwd: Path) -> subprocess.CompletedProcess:
    """`mf` as the README tells users to run it: the project and the metricflow profile by
    DBT_PROJECT_DIR and DBT_PROFILES_DIR, the warehouse by CLM_WAREHOUSE_DIR."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("CLM_", "DBT_"))}
    environ.update({
        "DBT_PROJECT_DIR": str(DBT_PROJECT_DIR),
        "DBT_PROFILES_DIR": str(MF_PROFILES_DIR),
        "CLM_WAREHOUSE_DIR": str(warehouse_dir),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    })
    return subprocess.run([str(MF), *args], env=environ, cwd=cwd, capture_output=True, text=True, timeout=300,
                          check=False)


def same(mf_text: str, value) -> bool:
    if value is None:
        return mf_text == ""
    if mf_text == "":
        return False
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(mf_text) == value
    return math.isclose(float(mf_text), float(value), rel_tol=0, abs_tol=1e-9)


def test_mf_query_by_month_equals_kpi_monthly(demo_warehouse, tmp_path):
    metrics = ["churn_rate", "net_revenue", "nps"]
    out = tmp_path / "kpis.csv"
    # mf reads the published snapshot, read-only: the working warehouse's lock is never taken
    done = mf("query", "--metrics", ",".join(metrics), "--group-by", "metric_time__month", "--csv", str(out),
              warehouse_dir=demo_warehouse / "warehouse", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    with out.open(newline="") as f:
        rows = list(csv.DictReader(f))
    got = {row["metric_time__month"][:10]: row for row in rows}
    assert len(got) == len(rows)

    expected = {str(month): values for month, *values in query(
        demo_warehouse / "warehouse" / "clm.duckdb",
        f"SELECT month, {', '.join(metrics)} FROM marts.kpi_monthly ORDER BY month")}
    assert len(expected) == 36  # 2023-01 .. 2025-12
    assert sorted(got) == sorted(expected)
    wrong = [f"{month} {name}: mf {got[month][name]!r}, kpi_monthly {value!r}"
             for month, values in expected.items() for name, value in zip(metrics, values)
             if not same(got[month][name], value)]
    assert wrong == []
    # the demo has months with and without NPS answers and a first month without a churn rate
    assert any(v[2] is None for v in expected.values()) and any(v[2] is not None for v in expected.values())
    assert expected[min(expected)][0] is None


def test_every_kpi_metric_by_month_equals_kpi_monthly(demo_warehouse, tmp_path):
    """All sixteen metrics at once (one query: one row per month, a column per metric)."""
    metrics = sorted(SECTION_6_KPIS)
    out = tmp_path / "all.csv"
    done = mf("query", "--metrics", ",".join(metrics), "--group-by", "metric_time__month", "--csv", str(out),
              warehouse_dir=demo_warehouse / "warehouse", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    with out.open(newline="") as f:
        got = {row["metric_time__month"][:10]: row for row in csv.DictReader(f)}
    expected = {str(month): values for month, *values in query(
        demo_warehouse / "warehouse" / "serving.duckdb",
        f"SELECT month, {', '.join(metrics)} FROM marts.kpi_monthly ORDER BY month")}
    assert sorted(got) == sorted(expected)
    wrong = [f"{month} {name}: mf {got[month][name]!r}, kpi_monthly {value!r}"
             for month, values in expected.items() for name, value in zip(metrics, values)
             if not same(got[month][name], value)]
    assert wrong == []


def mf_rows(demo_warehouse: Path, tmp_path: Path, metrics: list[str], group_by: list[str]) -> list[dict]:
    out = tmp_path / f"{metrics[0]}.csv"
    done = mf("query", "--metrics", ",".join(metrics), "--group-by", ",".join(group_by), "--csv", str(out),
              warehouse_dir=demo_warehouse / "warehouse", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    with out.open(newline="") as f:
        return list(csv.DictReader(f))


def test_attribution_and_funnel_metrics_equal_their_marts(demo_warehouse, tmp_path):
    """The section 8 marts as metrics: attributed revenue and new customers per month and model,
    ROAS per model and channel (NULL without spend), the checkout conversion rate per month as a
    ratio of sums, and persons reached per funnel step."""
    serving = demo_warehouse / "warehouse" / "serving.duckdb"
    rows = mf_rows(demo_warehouse, tmp_path, ["attributed_net_revenue", "attributed_first_purchases"],
                   ["metric_time__month", "attribution__model"])
    got = {(r["metric_time__month"][:10], r["attribution__model"]): r for r in rows}
    expected = {(str(m), model): (rev, first) for m, model, rev, first in query(
        serving, "SELECT month, model, sum(net_revenue), sum(attributed_first_purchases) "
                 "FROM marts.channel_attribution_monthly GROUP BY 1, 2")}
    assert sorted(got) == sorted(expected) and len(expected) > 6
    assert [k for k, (rev, first) in expected.items()
            if not math.isclose(float(got[k]["attributed_net_revenue"]), float(rev), rel_tol=1e-9, abs_tol=1e-6)
            or not math.isclose(float(got[k]["attributed_first_purchases"]), float(first), abs_tol=1e-9)] == []

    rows = mf_rows(demo_warehouse, tmp_path, ["attributed_roas"], ["attribution__model", "attribution__channel"])
    got = {(r["attribution__model"], r["attribution__channel"]): r["attributed_roas"] for r in rows}
    expected = {(model, channel): roas for model, channel, roas in query(
        serving, "SELECT model, channel, sum(net_revenue) / nullif(sum(spend), 0) "
                 "FROM marts.channel_attribution_monthly GROUP BY 1, 2")}
    assert sorted(got) == sorted(expected)
    assert any(v is None for v in expected.values()) and any(v is not None for v in expected.values())
    assert [k for k, v in expected.items() if not (got[k] == "" if v is None
                                                   else math.isclose(float(got[k]), v, rel_tol=1e-9))] == []

    rows = mf_rows(demo_warehouse, tmp_path, ["checkout_session_conversion_rate"], ["metric_time__month"])
    got = {r["metric_time__month"][:10]: r["checkout_session_conversion_rate"] for r in rows}
    expected = {str(m): rate for m, rate in query(
        serving, "SELECT month, sum(sessions_purchased) / sum(sessions) FROM marts.checkout_funnel_monthly GROUP BY 1")}
    assert sorted(got) == sorted(expected)
    assert [m for m, v in expected.items() if not math.isclose(float(got[m]), v, rel_tol=1e-9)] == []

    rows = mf_rows(demo_warehouse, tmp_path, ["funnel_persons_reached"], ["funnel_step__step"])
    got = {r["funnel_step__step"]: Decimal(r["funnel_persons_reached"]) for r in rows}
    expected = dict(query(serving, "SELECT step, sum(persons_reached) FROM marts.funnel_monthly GROUP BY 1"))
    assert got == expected and got["visitor"] >= got["lead"] >= got["first_purchase"] >= got["repeat_purchase"] > 0
