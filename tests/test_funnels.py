"""Journeys and funnels (CONTRACT section 8): the funnel steps in the contract, and the demo
warehouse's published funnel, milestones, survey responses and checkout steps checked against
the stage history and the sessions they come from. The rules themselves (skip rule, windows at
the boundary, median days, cart abandonment, the stage before a response) are dbt unit tests
beside their models."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest

from pipelines import contract
from tests.pipeline import query

FIXTURE = contract.DBT_PROJECT / "tests" / "fixtures" / "contract_values_funnel_fixture.csv"


def test_each_funnel_step_holds_the_stages_of_the_next():
    """Every stage stands for one step, and the stages reaching a step include those reaching the
    next one: that nesting is why counts never grow down the funnel."""
    assert set(contract.FUNNEL_STEP_OF_STAGE) == set(contract.LIFECYCLE_STAGES)
    assert set(contract.FUNNEL_STEP_OF_STAGE.values()) == set(contract.FUNNEL_STEPS)
    reaching = [set(contract.funnel_stages_reaching(step)) for step in contract.FUNNEL_STEPS]
    assert reaching[0] == set(contract.LIFECYCLE_STAGES)
    assert all(later < earlier for earlier, later in zip(reaching, reaching[1:]))
    assert contract.funnel_stages_reaching("opportunity") == (
        "churned", "at_risk", "reactivated", "advocate", "loyal", "repeat_buyer", "first_time_buyer", "trial",
        "opportunity")
    assert contract.funnel_stages_reaching("repeat_purchase") == ("reactivated", "loyal", "repeat_buyer")


def test_the_unit_tests_fixture_is_the_contract():
    """The dbt unit tests read the funnel lists from a fixture; it must say what the seed says."""
    with FIXTURE.open(encoding="utf-8") as f:
        fixture = [(r["list_name"], int(r["position"]), r["value"]) for r in csv.DictReader(f)]
    expected = [(name, position, value) for name, values in contract.contract_lists().items()
                if name.startswith("funnel_") for position, value in enumerate(values, start=1)]
    assert fixture == expected


def berlin_day(column: str) -> str:
    """SQL for the demo's reporting-timezone day of a UTC timestamp column."""
    return f"cast(timezone('Europe/Berlin', timezone('UTC', {column})) as date)"


@pytest.fixture(scope="module")
def snapshot(demo_warehouse) -> Path:
    return demo_warehouse / "warehouse" / "serving.duckdb"


def test_funnel_counts_never_grow_and_equal_the_stage_history(snapshot):
    by_row = query(snapshot, """
        select first_seen_month, acquisition_channel, list(persons_reached order by step_number),
               list(persons_reached_within_window order by step_number)
        from marts.funnel_monthly group by 1, 2""")
    assert by_row
    for month, channel, reached, within in by_row:
        assert len(reached) == len(contract.FUNNEL_STEPS), (month, channel)
        assert all(a >= b for a, b in zip(reached, reached[1:])), (month, channel, reached)
        assert within[0] == reached[0] and all(w <= r for w, r in zip(within, reached)), (month, channel)
    totals = dict(query(snapshot, "select step, sum(persons_reached) from marts.funnel_monthly group by step"))
    for step in contract.FUNNEL_STEPS:
        stages = ", ".join(f"'{s}'" for s in contract.funnel_stages_reaching(step))
        [(persons,)] = query(snapshot, f"""select count(distinct customer_id) from marts.customer_stage_history
                                           where lifecycle_stage in ({stages})""")
        assert totals[step] == persons, step
    # the entry step holds every person with stage spells, each counted once
    [(persons, rows)] = query(snapshot, """select count(distinct customer_id), count(*) from marts.dim_customers
                                           where lifecycle_stage is not null""")
    assert totals["visitor"] == persons == rows


def test_buyers_who_were_never_leads_reach_lead_on_their_purchase_day(snapshot):
    """dim_customers shows who skipped lead (no became_lead_on); the funnel counts them at lead on
    the day of their first purchase, so lead holds at least every buyer."""
    [(skipped, buyers)] = query(snapshot, """
        select count(*) filter (where first_purchase_on is not null and became_lead_on is null),
               count(*) filter (where first_purchase_on is not null)
        from marts.dim_customers""")
    assert skipped > 0
    totals = dict(query(snapshot, "select step, sum(persons_reached) from marts.funnel_monthly group by step"))
    assert totals["first_purchase"] == buyers
    assert totals["lead"] >= buyers


def test_milestones_are_the_first_days_in_their_stages(snapshot):
    columns = {"became_lead_on": "lead", "became_opportunity_on": "opportunity",
               "became_repeat_buyer_on": "repeat_buyer", "became_loyal_on": "loyal", "first_churned_on": "churned"}
    for column, stage in columns.items():
        wrong = query(snapshot, f"""
            select count(*) from marts.dim_customers c
            left join (select customer_id, min(valid_from) as first_day from marts.customer_stage_history
                       where lifecycle_stage = '{stage}' group by 1) h using (customer_id)
            where c.{column} is distinct from h.first_day""")
        assert wrong == [(0,)], column
    # the first purchase day is the first order's day in the reporting timezone
    [(wrong,)] = query(snapshot, f"""select count(*) from marts.dim_customers
                                     where first_purchase_on is distinct from {berlin_day('first_order_at')}""")
    assert wrong == 0


def test_survey_responses_publish_categories_never_the_comment(snapshot, demo_warehouse):
    columns = [c for (c,) in query(snapshot, """select column_name from information_schema.columns
                                                where table_name = 'fct_survey_responses' order by ordinal_position""")]
    assert columns == ["response_id", "customer_id", "survey_type", "score", "responded_at", "responded_on",
                       "lifecycle_stage_before", "comment_category"]
    warehouse = demo_warehouse / "warehouse" / "clm.duckdb"
    [(responses, comments)] = query(warehouse, f"""
        select count(*), count(*) filter (where nullif(trim(comment), '') is not null)
        from staging.stg_surveys__responses where {berlin_day('responded_at')} <= date '2025-12-31'""")
    [(rows, categorised)] = query(snapshot, """select count(*), count(comment_category)
                                               from marts.fct_survey_responses""")
    assert (rows, categorised) == (responses, comments)
    # the stage before is the spell holding the day before the response
    [(wrong,)] = query(snapshot, """
        select count(*) from marts.fct_survey_responses r
        left join marts.customer_stage_history h on h.customer_id = r.customer_id
            and h.valid_from <= r.responded_on - 1 and coalesce(h.valid_to, date '9999-12-31') > r.responded_on - 1
        where r.lifecycle_stage_before is distinct from h.lifecycle_stage""")
    assert wrong == 0


def test_checkout_funnel_counts_the_sessions_steps(snapshot):
    [(sessions, carts, checkouts, purchased, abandoned)] = query(snapshot, """
        select count(*), count(*) filter (where reached_add_to_cart), count(*) filter (where reached_checkout),
               count(*) filter (where purchased), count(*) filter (where cart_abandoned)
        from marts.fct_sessions""")
    [totals] = query(snapshot, """
        select sum(sessions), sum(sessions_add_to_cart), sum(sessions_checkout), sum(sessions_purchased),
               sum(sessions_cart_abandoned)
        from marts.checkout_funnel_monthly""")
    assert totals == (sessions, carts, checkouts, purchased, abandoned)
    assert sessions >= carts >= checkouts >= purchased and carts >= abandoned > 0
    assert query(snapshot, "select count(*) from marts.fct_sessions where purchased <> converted") == [(0,)]
    # one rule: every person with an abandoned session has a cart_abandoned trigger
    [(missing,)] = query(snapshot, """
        select count(distinct s.customer_id) from marts.fct_sessions s
        where s.cart_abandoned and s.customer_id not in (
            select customer_id from marts.trigger_events where trigger = 'cart_abandoned')""")
    assert missing == 0
