"""The lifecycle manager's report (CONTRACT section 9): one self-contained HTML page built from
the published snapshot only.

Charts are Plotly figures rendered in the browser by plotly.js, which is inlined once into the
page (no CDN, no network: the page works from a file on a laptop without a connection and
prints). Plotly was chosen over Vega-Lite because the stage flow needs a Sankey diagram, which
Plotly draws and Vega-Lite does not, and over server-side SVG because its charts stay
interactive (hover values) while printing just as well.

A section whose mart is not in the snapshot is left out. No personal data but ``customer_id``
reaches the page.
"""
from __future__ import annotations

import datetime as dt
import html
import json
import os
from dataclasses import dataclass
from pathlib import Path

import duckdb

from pipelines.contract import ATTRIBUTION_MODELS, FUNNEL_STEPS, LIFECYCLE_STAGES, PHASE_OF_STAGE

STAGE_ORDER = tuple(reversed(LIFECYCLE_STAGES))  # visitor ... churned: the way people move
PHASE_COLOURS = {"recruitment": "#4C78A8", "retention": "#54A24B", "recovery": "#E45756"}
EARLY_WARNING_ROWS = 50


@dataclass
class Section:
    title: str
    body: str  # HTML


def fmt_int(value) -> str:
    return "–" if value is None else f"{int(round(value)):,}"


def fmt_pct(value, digits: int = 1) -> str:
    return "–" if value is None else f"{100 * value:.{digits}f} %"


def fmt_share(part, whole) -> str:
    """part / whole as a percentage; a dash where whole is 0 or missing."""
    return fmt_pct(part / whole if whole else None)


def fmt_money(value, currency: str) -> str:
    return "–" if value is None else f"{value:,.2f} {currency}"


class _Snapshot:
    def __init__(self, path: Path):
        self.con = duckdb.connect(str(path), read_only=True)
        self.tables = {r[0] for r in self.con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'marts'").fetchall()}

    def has(self, *tables: str) -> bool:
        return all(t in self.tables for t in tables)

    def rows(self, sql: str) -> list[tuple]:
        return self.con.execute(sql).fetchall()

    def columns(self, table: str) -> set[str]:
        return {r[0] for r in self.con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'marts' AND table_name = ?",
            [table]).fetchall()}


def _figure(fig, name: str) -> str:
    fig.update_layout(margin={"l": 50, "r": 20, "t": 30, "b": 40}, height=360, template="plotly_white",
                      font={"family": "system-ui, sans-serif", "size": 12})
    return (f'<div class="chart" data-chart="{html.escape(name)}">'
            + fig.to_html(full_html=False, include_plotlyjs=False, config={"displaylogo": False,
                                                                           "responsive": True})
            + "</div>")


def _table(headers: list[str], rows: list[list[str]], numeric_from: int = 1, numeric_to: int | None = None) -> str:
    """An HTML table; columns numeric_from .. numeric_to - 1 are numbers (right-aligned)."""
    numeric = range(numeric_from, len(headers) if numeric_to is None else numeric_to)
    head = "".join(f'<th class="{"num" if i in numeric else ""}">{html.escape(h)}</th>' for i, h in enumerate(headers))
    body = "".join(
        "<tr>" + "".join(f'<td class="{"num" if i in numeric else ""}">{html.escape(str(v))}</td>'
                         for i, v in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


# --- sections ---------------------------------------------------------------------------------

def _stages(db: _Snapshot) -> list[Section]:
    import plotly.graph_objects as go

    out = []
    if db.has("dim_customers"):
        counts = dict(db.rows("SELECT lifecycle_stage, count(*) FROM marts.dim_customers GROUP BY 1"))
        stages = [s for s in STAGE_ORDER if counts.get(s)]
        fig = go.Figure(go.Bar(x=stages, y=[counts[s] for s in stages],
                               marker_color=[PHASE_COLOURS[PHASE_OF_STAGE[s]] for s in stages],
                               hovertemplate="%{x}: %{y:,} persons<extra></extra>"))
        fig.update_yaxes(title="persons", tickformat=",")
        total = sum(counts.values())
        rows = [[s, fmt_int(counts[s]), fmt_pct(counts[s] / total)] for s in stages]
        out.append(Section("Lifecycle stages now", _figure(fig, "stages_now")
                           + _table(["stage", "persons", "share"], rows)))
    if db.has("customer_stages_monthly"):
        data = db.rows("SELECT month, lifecycle_stage, count(*) FROM marts.customer_stages_monthly GROUP BY 1, 2 "
                       "ORDER BY 1")
        months = sorted({m for m, _, _ in data})
        by = {(m, s): n for m, s, n in data}
        fig = go.Figure([go.Scatter(x=months, y=[by.get((m, s), 0) for m in months], name=s, stackgroup="one",
                                    mode="lines", line={"width": 0.5},
                                    hovertemplate=f"{s}: %{{y:,}}<extra></extra>")
                         for s in STAGE_ORDER if any((m, s) in by for m in months)])
        fig.update_yaxes(title="persons at month-end", tickformat=",")
        out.append(Section("Lifecycle stages by month", _figure(fig, "stages_monthly")))
    if db.has("stage_transitions_monthly"):
        last = db.rows("SELECT max(month) FROM marts.stage_transitions_monthly")[0][0]
        flows = db.rows(f"SELECT coalesce(from_stage, 'new'), to_stage, sum(customers) FROM marts.stage_transitions_monthly "
                        f"WHERE month = DATE '{last}' AND coalesce(from_stage, 'new') <> to_stage GROUP BY 1, 2")
        if flows:
            sources = ["new", *STAGE_ORDER]
            nodes = [f"{s} (start)" for s in sources] + [f"{s} (end)" for s in STAGE_ORDER]
            index = {name: i for i, name in enumerate(nodes)}
            fig = go.Figure(go.Sankey(
                node={"label": nodes, "pad": 12, "thickness": 14},
                link={"source": [index[f"{a} (start)"] for a, _, _ in flows],
                      "target": [index[f"{b} (end)"] for _, b, _ in flows],
                      "value": [n for _, _, n in flows]}))
            out.append(Section(f"Stage flow in {last:%B %Y} (persons who changed stage)", _figure(fig, "stage_flow")))
    return out


def _cohorts(db: _Snapshot) -> list[Section]:
    import plotly.graph_objects as go

    if not db.has("cohort_retention"):
        return []
    data = db.rows("SELECT cohort_month, months_since_first_order, retention_rate FROM marts.cohort_retention "
                   "ORDER BY 1, 2")
    cohorts = sorted({c for c, _, _ in data})
    offsets = sorted({k for _, k, _ in data})
    by = {(c, k): r for c, k, r in data}
    fig = go.Figure(go.Heatmap(
        z=[[by.get((c, k)) for k in offsets] for c in cohorts], x=offsets, y=[f"{c:%Y-%m}" for c in cohorts],
        colorscale="Blues", zmin=0, zmax=1, hovertemplate="cohort %{y}, month %{x}: %{z:.1%}<extra></extra>"))
    fig.update_xaxes(title="months since first purchase")
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(height=max(360, 16 * len(cohorts)))
    return [Section("Cohort retention (share of each first-purchase cohort buying in a later month)",
                    _figure(fig, "cohort_heatmap"))]


def _kpis(db: _Snapshot, currency: str) -> list[Section]:
    import plotly.graph_objects as go

    if not db.has("kpi_monthly"):
        return []
    rows = db.rows("SELECT month, churn_rate, reactivation_rate, repeat_purchase_rate, nps, customer_effort_score, "
                   "new_customers, active_customers, net_revenue FROM marts.kpi_monthly ORDER BY month")
    months = [r[0] for r in rows]
    rates = go.Figure([go.Scatter(x=months, y=[r[i] for r in rows], name=name, mode="lines+markers",
                                  hovertemplate=f"{name}: %{{y:.1%}}<extra></extra>")
                       for i, name in ((1, "churn rate"), (2, "reactivation rate"), (3, "repeat purchase rate"))])
    rates.update_yaxes(tickformat=".0%")
    voice = go.Figure([go.Scatter(x=months, y=[r[4] for r in rows], name="NPS", mode="lines+markers"),
                       go.Scatter(x=months, y=[r[5] for r in rows], name="customer effort (1-7)", yaxis="y2",
                                  mode="lines+markers")])
    voice.update_layout(yaxis={"title": "NPS"}, yaxis2={"title": "CES", "overlaying": "y", "side": "right"})
    recent = rows[-12:]
    table = _table(["month", "new", "active", "net revenue", "churn rate", "repeat purchase", "NPS"],
                   [[f"{r[0]:%Y-%m}", fmt_int(r[6]), fmt_int(r[7]), fmt_money(r[8], currency), fmt_pct(r[1]),
                     fmt_pct(r[3]), "–" if r[4] is None else f"{r[4]:.0f}"] for r in recent])
    return [Section("KPI trends: churn, reactivation, repeat purchase", _figure(rates, "kpi_rates") + table),
            Section("Customer voice: NPS and effort", _figure(voice, "kpi_voice"))]


def _channels(db: _Snapshot, currency: str) -> list[Section]:
    import plotly.graph_objects as go

    out = []
    if db.has("kpi_channels"):
        rows = db.rows("""SELECT acquisition_channel, sum(spend), sum(new_customers),
                                 nullif(sum(spend), 0) / nullif(sum(new_customers), 0), median(payback_months)
                          FROM marts.kpi_channels GROUP BY 1 ORDER BY 2 DESC NULLS LAST""")
        fig = go.Figure(go.Bar(x=[r[0] for r in rows], y=[r[3] for r in rows],
                               hovertemplate="%{x}: %{y:,.2f} " + currency + "<extra></extra>"))
        fig.update_yaxes(title=f"CAC ({currency})")
        table = _table(["channel", "spend", "new customers", "CAC", "median payback (months)"],
                       [[r[0], fmt_money(r[1], currency), fmt_int(r[2]), fmt_money(r[3], currency),
                         "–" if r[4] is None else f"{r[4]:.0f}"] for r in rows])
        out.append(Section("Acquisition cost and payback by channel", _figure(fig, "cac") + table))
    if db.has("dim_customers") and "predicted_clv_365d" in db.columns("dim_customers"):
        rows = db.rows("""SELECT coalesce(acquisition_channel, '(none)'), count(*), avg(predicted_clv_365d)
                          FROM marts.dim_customers WHERE predicted_clv_365d IS NOT NULL GROUP BY 1 ORDER BY 3 DESC""")
        fig = go.Figure(go.Bar(x=[r[0] for r in rows], y=[r[2] for r in rows],
                               hovertemplate="%{x}: %{y:,.2f} " + currency + "<extra></extra>"))
        fig.update_yaxes(title=f"mean predicted CLV, next 365 days ({currency})")
        out.append(Section("Customer lifetime value by acquisition channel", _figure(fig, "clv_by_channel")))
    return out


def _funnels(db: _Snapshot) -> list[Section]:
    """The person funnel (all first-seen months and channels together) and the checkout funnel."""
    import plotly.graph_objects as go

    out = []
    if db.has("funnel_monthly"):
        rows = {r[0]: r[1:] for r in db.rows(
            """SELECT step, sum(persons_reached)::BIGINT, sum(persons_reached_within_window)::BIGINT,
                      (sum(median_days_from_previous * persons_reached) / nullif(sum(persons_reached), 0))::DOUBLE
               FROM marts.funnel_monthly GROUP BY 1""")}
        steps = [s for s in FUNNEL_STEPS if s in rows]
        reached = [rows[s][0] or 0 for s in steps]
        fig = go.Figure(go.Funnel(y=steps, x=reached, texttemplate="%{value:,}<br>%{percentInitial:.0%}",
                                  hovertemplate="%{y}: %{x:,} persons<extra></extra>"))
        table = _table(
            ["step", "persons reached", "from the step before", "within the window", "mean of monthly median days"],
            [[s, fmt_int(reached[i]), "–" if i == 0 else fmt_share(reached[i], reached[i - 1]),
              "–" if i == 0 else fmt_share(rows[s][1], reached[i - 1]),
              "–" if i == 0 or rows[s][2] is None else f"{rows[s][2]:.1f}"] for i, s in enumerate(steps)])
        out.append(Section("Funnel: visitor to repeat purchase (every person seen, skipped steps counted as reached)",
                           _figure(fig, "funnel") + table))
    if db.has("checkout_funnel_monthly"):
        row = db.rows("""SELECT sum(sessions)::BIGINT, sum(sessions_add_to_cart)::BIGINT,
                                sum(sessions_checkout)::BIGINT, sum(sessions_purchased)::BIGINT,
                                sum(sessions_cart_abandoned)::BIGINT
                         FROM marts.checkout_funnel_monthly""")[0]
        labels = ["sessions", "added to cart", "began checkout", "purchased"]
        values = [v or 0 for v in row[:4]]
        fig = go.Figure(go.Funnel(y=labels, x=values, texttemplate="%{value:,}<br>%{percentPrevious:.0%}",
                                  hovertemplate="%{y}: %{x:,} sessions<extra></extra>"))
        table = _table(["step", "sessions", "from the step before"],
                       [[labels[i], fmt_int(values[i]),
                         "–" if i == 0 else fmt_share(values[i], values[i - 1])]
                        for i in range(4)]
                       + [["cart abandoned (of added to cart)", fmt_int(row[4]), fmt_share(row[4], values[1])]])
        out.append(Section("Checkout funnel: where web sessions break off", _figure(fig, "checkout_funnel") + table))
    return out


def _attribution(db: _Snapshot, currency: str) -> list[Section]:
    """New customers and revenue credited to each channel under each model, ROAS and CAC."""
    import plotly.graph_objects as go

    if not db.has("channel_attribution_monthly"):
        return []
    rows = db.rows("""SELECT channel, model, sum(attributed_first_purchases)::DOUBLE, sum(net_revenue)::DOUBLE,
                             sum(spend)::DOUBLE, sum(new_customers_predicted_clv_365d)::DOUBLE
                      FROM marts.channel_attribution_monthly GROUP BY 1, 2""")
    channels = sorted({r[0] for r in rows}, key=lambda c: -sum(r[3] or 0 for r in rows if r[0] == c))
    by = {(r[0], r[1]): r[2:] for r in rows}
    fig = go.Figure([go.Bar(name=m, x=channels, y=[(by.get((c, m)) or (0,))[0] for c in channels],
                            hovertemplate=m + ", %{x}: %{y:,.1f} new customers<extra></extra>")
                     for m in ATTRIBUTION_MODELS])
    fig.update_layout(barmode="group")
    fig.update_yaxes(title="new customers credited", tickformat=",")
    model = "position_based"
    table_rows = []
    for c in channels:
        first, revenue, spend, clv = by.get((c, model)) or (None, None, None, None)
        table_rows.append([c, "–" if first is None else f"{first:,.1f}", fmt_money(revenue, currency), fmt_money(clv, currency),
                           fmt_money(spend, currency) if spend else "–",
                           f"{revenue / spend:,.2f}" if spend and revenue is not None else "–",
                           fmt_money(spend / first, currency) if spend and first else "–"])
    table = _table(["channel", "new customers", "net revenue", "new customers' predicted CLV (365 d)", "spend",
                    "ROAS", "CAC"], table_rows)
    return [Section("Attribution: new customers by channel under each model; the table under position based "
                    "(CAC and ROAS blank without spend)", _figure(fig, "attribution") + table)]


def _early_warning(db: _Snapshot, currency: str) -> list[Section]:
    import plotly.graph_objects as go

    out = []
    if db.has("churn_drivers"):
        rows = db.rows("SELECT reason, customers, lift FROM marts.churn_drivers WHERE lift IS NOT NULL ORDER BY lift")
        fig = go.Figure(go.Bar(x=[r[2] for r in rows], y=[r[0] for r in rows], orientation="h",
                               hovertemplate="%{y}: %{x:.2f}x<extra></extra>"))
        fig.update_xaxes(title="lift: share without a purchase with the reason / without it")
        out.append(Section("Why customers leave: churn drivers", _figure(fig, "churn_drivers")))
    if db.has("customer_churn_risk"):
        rows = db.rows(f"""SELECT customer_id, lifecycle_stage, churn_risk, value_at_risk, risk_reasons
                           FROM marts.customer_churn_risk WHERE risk_band = 'high'
                           ORDER BY value_at_risk DESC NULLS LAST, customer_id LIMIT {EARLY_WARNING_ROWS}""")
        table = _table(["customer_id", "stage", "churn risk", "value at risk", "reasons"],
                       [[r[0], r[1], fmt_pct(r[2]), fmt_money(r[3], currency),
                         ", ".join(json.loads(r[4]) if isinstance(r[4], str) else (r[4] or [])) or "–"]
                        for r in rows],
                       numeric_from=2, numeric_to=4)
        out.append(Section(f"Early warning: the {EARLY_WARNING_ROWS} high-risk buyers with the most value at risk",
                           table))
    return out


def _quality(db: _Snapshot) -> list[Section]:
    if not db.has("fct_quality_checks"):
        return []
    rows = db.rows("""SELECT gate, expectation, rows_checked, failures, passed FROM marts.fct_quality_checks
                      ORDER BY passed, gate, expectation""")
    table = _table(["gate", "expectation", "rows checked", "failures", "result"],
                   [[r[0], r[1], fmt_int(r[2]), fmt_int(r[3]), "passed" if r[4] else "FAILED"] for r in rows],
                   numeric_from=2, numeric_to=4)
    return [Section("Data quality gates", table)]


# --- the page -----------------------------------------------------------------------------------

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1f2933;background:#fff}
header{padding:24px 32px;background:#f3f5f7;border-bottom:1px solid #dde3e8}
header h1{margin:0 0 4px 0;font-size:22px} header p{margin:2px 0;color:#52606d}
main{padding:8px 32px 32px 32px;max-width:1200px}
section{margin:28px 0;page-break-inside:avoid} h2{font-size:17px;border-bottom:1px solid #dde3e8;padding-bottom:4px}
table{border-collapse:collapse;font-size:13px;margin-top:8px} th,td{padding:4px 10px;border-bottom:1px solid #e4e7eb;text-align:left}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums} th{background:#f8f9fa}
nav a{margin-right:14px;color:#2d6cdf;text-decoration:none;font-size:13px}
@media print{nav{display:none} header{background:none} .chart{page-break-inside:avoid}}
"""


def _meta(db: _Snapshot) -> tuple[str, str]:
    """(as_of_date, reporting currency) of the snapshot."""
    if db.has("warehouse_info"):
        as_of, vars_json = db.rows("SELECT as_of_date, vars FROM marts.warehouse_info")[0]
        return str(as_of), json.loads(vars_json).get("reporting_currency", "")
    if db.has("clv_model_params"):
        row = db.rows("SELECT max(as_of_date) FROM marts.clv_model_params")[0]
        return str(row[0]), ""
    return "unknown", ""


def report_dir(settings) -> Path:
    """Where the report is written: ``$CLM_WAREHOUSE_DIR/report``."""
    return Path(settings.warehouse_dir) / "report"


def build_report(serving_path: Path, out_dir: Path) -> Path:
    """Write ``out_dir/index.html`` from the snapshot at ``serving_path``; returns its path.
    Written to a temporary file and renamed, so a browser never shows half a page."""
    from plotly.offline import get_plotlyjs

    db = _Snapshot(Path(serving_path))
    try:
        as_of, currency = _meta(db)
        sections = [*_stages(db), *_cohorts(db), *_kpis(db, currency), *_channels(db, currency),
                    *_funnels(db), *_attribution(db, currency),
                    *_early_warning(db, currency), *_quality(db)]
    finally:
        db.con.close()
    nav = "".join(f'<a href="#s{i}">{html.escape(s.title.split(":")[0])}</a>' for i, s in enumerate(sections))
    body = "".join(f'<section id="s{i}"><h2>{html.escape(s.title)}</h2>{s.body}</section>'
                   for i, s in enumerate(sections))
    page = (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>Customer lifecycle report, as of {html.escape(as_of)}</title><style>{CSS}</style>"
            f"<script>{get_plotlyjs()}</script></head><body>"
            f"<header><h1>Customer lifecycle report</h1><p>Numbers as of <strong>{html.escape(as_of)}</strong>"
            f"{' in ' + html.escape(currency) if currency else ''}; built "
            f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC from the published snapshot.</p>"
            f"<nav>{nav}</nav></header><main>{body}</main></body></html>")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / "index.html"
    tmp = out_dir / f".index.html.tmp-{os.getpid()}"
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, target)
    return target
