"""Early warning and activation end to end (CONTRACT section 7) on a hand-made landing set, as of
2024-12-31 (Europe/Berlin): trigger events on stage changes and carts at the hour boundary,
audiences' entry days, holdout determinism, and `clm export` through the console script."""
from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json

import pytest

from tests.pipeline import clm, query, run_clm

VARS = '{"as_of_date": "2024-12-31"}'
AS_OF = dt.date(2024, 12, 31)
END = dt.datetime(2024, 12, 31, 23, 0, 0)  # the end of 2024-12-31 in Berlin (CET), in UTC


def days(d: dt.date, n: int) -> dt.date:
    return d + dt.timedelta(days=n)


def iso(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def write_landing(landing):
    contacts = [("K1", "a@example.com", "true"), ("K2", "b@example.com", "false"), ("K3", "o@example.com", "true"),
                ("K4", "r@example.com", "true"), ("K5", "n@example.com", "true"), ("K6", "c2@example.com", "true")]
    orders = [
        ("A1", "2024-06-01T10:00:00Z", "a@example.com", "completed"),   # A: one purchase on 2024-06-01
        ("B1", "2023-01-10T10:00:00Z", "b@example.com", "completed"),   # B: churns, then reactivates
        ("B2", "2023-09-01T10:00:00Z", "b@example.com", "completed"),
        ("O1", "2024-12-20T10:00:00Z", "o@example.com", "completed"),   # O: first purchase 11 days ago
        ("R1", "2024-11-01T10:00:00Z", "r@example.com", "completed"),   # R: every 30 days: next due 12-31
        ("R2", "2024-12-01T10:00:00Z", "r@example.com", "completed"),
        ("C3P", (END - dt.timedelta(hours=30)).strftime("%Y-%m-%dT%H:%M:%SZ"), "c3@example.com", "completed"),
    ]
    events = [
        # C1: a cart exactly cart_abandon_hours (24) before the end of as_of_date: not abandoned yet
        ("AC1", "login", END - dt.timedelta(hours=30), "c1@example.com"),
        ("AC1", "add_to_cart", END - dt.timedelta(hours=24), None),
        # C2: one second earlier: abandoned, on as_of_date
        ("AC2", "login", END - dt.timedelta(hours=30), "c2@example.com"),
        ("AC2", "add_to_cart", END - dt.timedelta(hours=24, seconds=1), None),
        # C3: a cart followed by a purchase two hours later: not abandoned
        ("AC3", "login", END - dt.timedelta(hours=33), "c3@example.com"),
        ("AC3", "add_to_cart", END - dt.timedelta(hours=32), None),
        # T1: a trial started 2024-12-05: 30 trial days, 4 left on 12-31 -> trial_ending since 12-28
        ("AT1", "sign_up", dt.datetime(2024, 12, 5, 9), "t1@example.com"),
        ("AT1", "trial_start", dt.datetime(2024, 12, 5, 10), None),
        # T2: started 2024-12-10: 9 days left -> not yet
        ("AT2", "sign_up", dt.datetime(2024, 12, 10, 9), "t2@example.com"),
        ("AT2", "trial_start", dt.datetime(2024, 12, 10, 10), None),
    ]
    surveys = [("S1", "2024-06-01T10:00:00Z", "nps", 5, "n@example.com", "Delivery took too long.")]
    files = {
        "crm_contacts/contacts.csv": "contact_id,created_at,email,marketing_consent\n"
        + "".join(f"{k},2023-01-01T10:00:00Z,{e},{c}\n" for k, e, c in contacts),
        "orders/orders.csv": "order_id,ordered_at,total_amount,email,status\n"
        + "".join(f"{o},{t},20.00,{e},{s}\n" for o, t, e, s in orders),
        "surveys/surveys.csv": "response_id,responded_at,survey_type,score,email,comment\n"
        + "".join(f"{r},{t},{ty},{sc},{e},{c}\n" for r, t, ty, sc, e, c in surveys),
        "web_events/events.ndjson": "".join(
            json.dumps({"event_at": iso(t), "anonymous_id": a, "event_name": n, **({"email": e} if e else {})}) + "\n"
            for a, n, t, e in events),
    }
    for rel, text in files.items():
        path = landing / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    root = tmp_path_factory.mktemp("activation")
    write_landing(root / "landing")
    assert run_clm(root, VARS) == 0
    db = root / "warehouse" / "serving.duckdb"
    ids = dict(query(db, "SELECT email, customer_id FROM marts.dim_customers WHERE email IS NOT NULL"))
    return {"root": root, "db": db, "ids": ids}


def triggers(warehouse, email: str) -> set[tuple[str, dt.date]]:
    cid = warehouse["ids"][email]
    return set(query(warehouse["db"], f"SELECT trigger, fired_on FROM marts.trigger_events WHERE customer_id = '{cid}'"))


def members(warehouse, audience: str) -> dict[str, dt.date]:
    by_id = {v: k for k, v in warehouse["ids"].items()}
    rows = query(warehouse["db"], f"SELECT customer_id, entered_on FROM marts.audience_members WHERE audience = '{audience}'")
    return {by_id.get(c, c): d for c, d in rows}


def test_trigger_events_on_stage_changes(warehouse):
    first = dt.date(2024, 6, 1)
    # at risk on day 91 after the purchase, churned on day 181
    assert {("first_purchase", first), ("entered_at_risk", days(first, 91)),
            ("churned", days(first, 181))} <= triggers(warehouse, "a@example.com")
    b1, b2 = dt.date(2023, 1, 10), dt.date(2023, 9, 1)
    assert {("first_purchase", b1), ("entered_at_risk", days(b1, 91)), ("churned", days(b1, 181)),
            ("reactivated", b2), ("entered_at_risk", days(b2, 91)), ("churned", days(b2, 181))} <= triggers(
        warehouse, "b@example.com")


def test_carts_at_the_hour_boundary(warehouse):
    assert not {t for t in triggers(warehouse, "c1@example.com") if t[0] == "cart_abandoned"}
    assert ("cart_abandoned", AS_OF) in triggers(warehouse, "c2@example.com")
    assert not {t for t in triggers(warehouse, "c3@example.com") if t[0] == "cart_abandoned"}
    carts = members(warehouse, "cart_abandoners")
    assert carts.get("c2@example.com") == AS_OF and "c1@example.com" not in carts and "c3@example.com" not in carts


def test_audiences_and_their_entry_days(warehouse):
    # first purchases in the last 14 days (12-18 .. 12-31): O on 12-20 and C3 on 12-30
    assert members(warehouse, "onboarding") == {"o@example.com": dt.date(2024, 12, 20),
                                                "c3@example.com": dt.date(2024, 12, 30)}
    assert members(warehouse, "replenishment_due").get("r@example.com") == dt.date(2024, 12, 31)
    assert members(warehouse, "trial_ending") == {"t1@example.com": dt.date(2024, 12, 28)}
    assert members(warehouse, "nps_detractors_to_call") == {"n@example.com": dt.date(2024, 6, 1)}
    assert ("trial_started", dt.date(2024, 12, 5)) in triggers(warehouse, "t1@example.com")


def test_holdout_is_the_documented_hash(warehouse):
    rows = query(warehouse["db"], "SELECT audience, customer_id, is_holdout FROM marts.audience_members")
    assert rows
    for audience, cid, held in rows:
        fraction = int(hashlib.md5(f"{cid}:{audience}".encode()).hexdigest()[:8], 16) / 2**32
        assert held == (fraction < 0.10)


def test_churn_risk_lists_the_buyers_not_churned(warehouse):
    rows = dict(query(warehouse["db"], "SELECT customer_id, risk_reasons FROM marts.customer_churn_risk"))
    ids = warehouse["ids"]
    assert set(rows) == {ids[e] for e in ("o@example.com", "r@example.com", "c3@example.com")}
    assert all(json.loads(v) is not None for v in rows.values())
    assert query(warehouse["db"], "SELECT scorer FROM marts.churn_risk_validation ORDER BY 1") == [
        ("churn_risk",), ("recency",)]


def test_export_through_the_console_script_writes_consented_members_only(warehouse, tmp_path):
    root = warehouse["root"]
    out = tmp_path / "onboarding.csv"
    done = clm("export", "--audience", "onboarding", "--out", str(out), root=root, vars_json=VARS)
    assert done.returncode == 0, done.stderr
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    expected = query(warehouse["db"], """SELECT m.customer_id FROM marts.audience_members m
                                         WHERE audience = 'onboarding' AND NOT is_holdout AND marketing_consent
                                         ORDER BY 1""")
    assert [r["customer_id"] for r in rows] == [c for (c,) in expected]
    with open(out, newline="") as fh:
        assert next(csv.reader(fh)) == ["customer_id", "email", "phone", "first_name", "entered_on"]
    assert "@" not in done.stdout and f"exported {len(rows)} members of onboarding" in done.stdout
    parquet = tmp_path / "onboarding.parquet"
    assert clm("export", "--audience", "onboarding", "--out", str(parquet), root=root, vars_json=VARS).returncode == 0
    assert query(root / "warehouse" / "serving.duckdb", f"SELECT count(*) FROM '{parquet}'")[0][0] == len(rows)
    unknown = clm("export", "--audience", "everyone", "--out", str(out), root=root, vars_json=VARS)
    assert unknown.returncode == 2 and "known audiences: win_back_high_value" in unknown.stderr
