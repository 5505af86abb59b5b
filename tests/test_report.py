"""The lifecycle manager's report (CONTRACT section 9), opened as a person opens it: in headless
Chromium from a file URL, with name resolution off. No request may leave the page, no script
may fail, every chart must have drawn marks, and no personal data but customer ids is on it."""
from __future__ import annotations

import shutil

import pytest

from tests.pipeline import clm, query

SECTIONS = ("Lifecycle stages now", "Lifecycle stages by month", "Stage flow in", "Cohort retention",
            "KPI trends", "Customer voice", "Acquisition cost and payback by channel",
            "Customer lifetime value by acquisition channel", "Funnel: visitor to repeat purchase",
            "Checkout funnel", "Attribution: new customers by channel under each model", "Why customers leave",
            "Early warning",
            "Data quality gates")
CHARTS = ("stages_now", "stages_monthly", "stage_flow", "cohort_heatmap", "kpi_rates", "kpi_voice", "cac",
          "clv_by_channel", "funnel", "checkout_funnel", "attribution", "churn_drivers")
BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def opened(demo_warehouse):
    from playwright.sync_api import sync_playwright

    assert BROWSER, "chromium is not installed (make test installs Debian's package)"
    done = clm("report", root=demo_warehouse, vars_json='{"as_of_date": "2025-12-31"}')
    assert done.returncode == 0, done.stderr
    page_path = demo_warehouse / "warehouse" / "report" / "index.html"
    requests, errors = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=BROWSER, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--host-resolver-rules=MAP * ~NOTFOUND"])
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 900})
            page.on("request", lambda r: requests.append(r.url))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(page_path.as_uri())
            page.wait_for_function("() => document.querySelectorAll('div.chart .main-svg').length > 0")
            page.wait_for_timeout(1000)
            marks = dict(page.evaluate("""() => [...document.querySelectorAll('div.chart')].map(d => [
                d.dataset.chart,
                d.querySelectorAll('svg path, svg rect, svg .point').length])"""))
            text = page.inner_text("body")
        finally:
            browser.close()
    return {"done": done, "html": page_path.read_text(encoding="utf-8"), "requests": requests, "errors": errors,
            "marks": marks, "text": text, "root": demo_warehouse}


def test_the_page_needs_no_network_and_has_no_errors(opened):
    assert [u for u in opened["requests"] if not u.startswith("file:")] == []
    assert opened["errors"] == []
    assert "<script src=" not in opened["html"] and "<link " not in opened["html"]


def test_every_section_and_chart_is_there_and_drawn(opened):
    for title in SECTIONS:
        assert title in opened["text"], title
    for chart in CHARTS:
        assert opened["marks"].get(chart, 0) > 5, (chart, opened["marks"])


def test_numbers_for_people_and_no_personal_data(opened):
    serving = opened["root"] / "warehouse" / "serving.duckdb"
    as_of, = query(serving, "SELECT as_of_date FROM marts.warehouse_info")[0]
    assert f"Numbers as of {as_of}" in opened["text"] and " in EUR" in opened["text"]
    assert "%" in opened["text"]
    for email, first, last, phone in query(serving, "SELECT email, first_name, last_name, phone FROM marts.dim_customers "
                                                    "WHERE email IS NOT NULL LIMIT 200"):
        for value in (email, phone):
            if value:
                assert value not in opened["html"]
    ids = [c for (c,) in query(serving, "SELECT customer_id FROM marts.customer_churn_risk WHERE risk_band = 'high' "
                                        "ORDER BY value_at_risk DESC NULLS LAST, customer_id LIMIT 3")]
    assert all(c in opened["text"] for c in ids)


def test_every_serving_table_and_column_has_a_comment(demo_warehouse):
    serving = demo_warehouse / "warehouse" / "serving.duckdb"
    tables = query(serving, "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'marts' "
                            "AND coalesce(comment, '') = ''")
    columns = query(serving, "SELECT table_name || '.' || column_name FROM duckdb_columns() "
                             "WHERE schema_name = 'marts' AND coalesce(comment, '') = ''")
    assert (tables, columns) == ([], [])
    from orchestration.defs.dbt.project import mart_descriptions

    published = {t for (t,) in query(serving, "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'marts'")}
    assert published == set(mart_descriptions()) | {"warehouse_info"}


def test_report_without_a_snapshot_says_so_and_exits_1(tmp_path):
    done = clm("report", root=tmp_path, vars_json='{"as_of_date": "2025-12-31"}')
    assert done.returncode == 1 and "no published snapshot" in done.stderr and "clm run first" in done.stderr
