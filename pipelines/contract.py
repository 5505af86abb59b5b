"""The product contract's lists, defined once (docs/CONTRACT.md says what they mean).

* the landing sources of section 2: their canonical columns, types and allowed values;
* the person records of sections 3-4: which column keys a source's records in
  ``customer_identities`` and which identifier types link them;
* the values the rules know: order statuses (and which of them are purchases), deal stages,
  survey types and score ranges, web event names, lifecycle stages and their phases (section
  5), the statuses of a landing file in ``fct_source_loads``;
* the shape of an e-mail address the warehouse keeps (section 4 normalisation).

Everything else that lists them derives from here: the loader, the quality gates, identity
resolution, erasure, the lifecycle rules, the demo generator, and dbt, which reads the lists
from the seed ``contract_values`` and the e-mail shape from the macro ``email_pattern()``,
both written by ``python -m pipelines.contract`` (tests fail when either differs from this
module).
"""
from __future__ import annotations

import csv
import io
import sys
from dataclasses import dataclass, field
from pathlib import Path

# Logical column types understood by the loader (pipelines.raw.parse).
TEXT = "text"
TIMESTAMP = "timestamp"  # stored as UTC TIMESTAMP; naive values read in the source timezone
DATE = "date"
MONEY = "money"  # DECIMAL(18, 4)
NUMBER = "number"  # DOUBLE
INTEGER = "integer"  # BIGINT
BOOLEAN = "boolean"


@dataclass(frozen=True)
class Column:
    name: str
    type: str = TEXT
    required: bool = False


@dataclass(frozen=True)
class Source:
    name: str
    columns: tuple[Column, ...]
    key: str | None = None  # business key, if the source has one
    description: str = ""
    allowed_values: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.required)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


# --- values the rules know (CONTRACT sections 2, 5) ------------------------------------------

ORDER_STATUSES = ("completed", "pending", "cancelled", "refunded", "partially_refunded")
PURCHASE_STATUSES = ("completed", "partially_refunded")  # "only these count as purchases"
CANCELLATION_STATUSES = ("cancelled", "refunded", "partially_refunded")  # the reason recent_cancellation
NO_REVENUE_STATUSES = ("cancelled", "pending")  # net_revenue is 0 for these (CONTRACT section 3, fct_orders)
DEFAULT_ORDER_STATUS = "completed"
DEAL_STAGES = ("open", "won", "lost")
SURVEY_TYPES = ("nps", "ces", "csat")
SCORE_RANGES = {"nps": (0, 10), "ces": (1, 7), "csat": (1, 5)}  # inclusive
KNOWN_EVENTS = ("page_view", "sign_up", "newsletter_signup", "lead_form_submit", "trial_start", "add_to_cart",
                "begin_checkout", "purchase", "login")
# Lifecycle stages in the order their rules are tried (the first that holds wins), and phases.
LIFECYCLE_STAGES = ("churned", "at_risk", "reactivated", "advocate", "loyal", "repeat_buyer",
                    "first_time_buyer", "trial", "opportunity", "lead", "visitor")
LIFECYCLE_PHASES = ("recruitment", "retention", "recovery")
PHASE_OF_STAGE = {
    "visitor": "recruitment", "lead": "recruitment", "opportunity": "recruitment", "trial": "recruitment",
    "first_time_buyer": "retention", "repeat_buyer": "retention", "loyal": "retention",
    "advocate": "retention", "at_risk": "retention",
    "churned": "recovery", "reactivated": "recovery",
}
FILE_STATUSES = ("loaded", "failed", "skipped")  # fct_source_loads.status
# Early warning (section 7): why a buyer may be leaving (rules in pipelines/lifecycle/early_warning.py)
REASON_CODES = ("overdue", "lapsing", "nps_detractor", "high_effort", "recent_cancellation",
                "declining_frequency", "lost_deal", "stopped_visiting")
# what cancel reasons, lost reasons and survey comments say (mapped by the seed reason_categories)
REASON_CATEGORIES = ("price", "delivery", "product_quality", "service", "usability", "fit", "other")
RISK_BANDS = ("low", "medium", "high")
# Audiences for activation (section 7; the seed `audiences` documents each rule) and the
# trigger events an automation tool reads
AUDIENCES = ("win_back_high_value", "at_risk_high_value", "replenishment_due", "onboarding", "advocates",
             "cart_abandoners", "trial_ending", "nps_detractors_to_call")
TRIGGERS = ("first_purchase", "entered_at_risk", "churned", "reactivated", "became_advocate", "cart_abandoned",
            "trial_started", "replenishment_due")
# Journeys and funnels (section 8): the steps of marts.funnel_monthly in order, and the step each
# lifecycle stage stands for. A person has reached a step from the first day of a spell in a stage
# of that step or a later one (the skip rule: a buyer who was never a lead reaches lead and
# opportunity on the day of the purchase), so the counts never grow down the funnel. Trial is a
# later recruitment stage than opportunity; every retention and recovery stage but the three
# that need a second purchase (repeat_buyer, loyal, reactivated) means a first purchase.
FUNNEL_STEPS = ("visitor", "lead", "opportunity", "first_purchase", "repeat_purchase")
FUNNEL_STEP_OF_STAGE = {
    "visitor": "visitor", "lead": "lead", "opportunity": "opportunity", "trial": "opportunity",
    "first_time_buyer": "first_purchase", "advocate": "first_purchase", "at_risk": "first_purchase",
    "churned": "first_purchase",
    "repeat_buyer": "repeat_purchase", "loyal": "repeat_purchase", "reactivated": "repeat_purchase",
}


def funnel_stages_reaching(step: str) -> tuple[str, ...]:
    """The lifecycle stages whose spells mean a person has reached ``step`` (its stages and those of
    every later step), in the order of LIFECYCLE_STAGES."""
    index = FUNNEL_STEPS.index(step)
    return tuple(s for s in LIFECYCLE_STAGES if FUNNEL_STEPS.index(FUNNEL_STEP_OF_STAGE[s]) >= index)

# Multi-touch attribution (section 8): the models that credit a purchase's touches; each is a
# credit column of fct_attribution and a value of channel_attribution_monthly.model
ATTRIBUTION_MODELS = ("first_touch", "last_touch", "last_non_direct", "linear", "position_based", "time_decay")

# --- the shape of an e-mail address (CONTRACT section 4) --------------------------------------

# One rule for dbt and the quality gates. The staging macro ``normalise_email`` keeps
# lower(trim(value)) only when it matches EMAIL_PATTERN (and folds googlemail.com into
# gmail.com), every dbt run installs that macro as DuckDB's ``main.clm_normalise_email`` for
# erasure and the loader, and the Great Expectations gates check the staging e-mails against
# the same pattern. The shape: one ``@``; a local part without whitespace or address-list
# punctuation; a domain of dot-separated labels, none empty, without ``_``; a last label of
# at least two lower-case letters, digits or hyphens. Deliberately permissive about other
# characters (IDN, ``+tags``). RE2 syntax (DuckDB and pyarrow both use RE2), without ``\s``
# or ``\d``: pandas would evaluate those with Python's ``re``, five times slower.
_EMAIL_SPACE = r" \t\n\r\f\v"
_EMAIL_LOCAL = rf"[^@{_EMAIL_SPACE},;:<>()\[\]\\\"]+"
_EMAIL_LABEL = rf"[^@{_EMAIL_SPACE},;:<>()\[\]\\\"._]+"
EMAIL_PATTERN = rf"^{_EMAIL_LOCAL}@(?:{_EMAIL_LABEL}\.)+[a-z0-9-]{{2,}}$"

# --- person records (CONTRACT sections 3-4) --------------------------------------------------

# The sources whose records belong to persons, and the column that keys a record
# (customer_identities.source_key). Web events are keyed by the browser (anonymous_id), not
# by the event: a person's record there is a browser. The order is part of identity
# resolution's stored key types; do not reorder.
PERSON_RECORD_KEYS = {
    "crm_contacts": "contact_id",
    "orders": "order_id",
    "web_events": "anonymous_id",
    "surveys": "response_id",
    "crm_deals": "deal_id",
}
IDENTIFIER_TYPES = ("email", "phone", "contact_id", "user_id", "anonymous_id")


def _cols(spec: str) -> tuple[Column, ...]:
    """Parse 'name:type!' items separated by whitespace; '!' marks required."""
    out = []
    for item in spec.split():
        required = item.endswith("!")
        item = item.rstrip("!")
        name, _, typ = item.partition(":")
        out.append(Column(name, typ or TEXT, required))
    return tuple(out)


SOURCES: dict[str, Source] = {
    s.name: s
    for s in [
        Source(
            "crm_contacts",
            _cols(
                "contact_id! created_at:timestamp! email phone first_name last_name company "
                "country city crm_lifecycle_stage lead_source lead_score:number "
                "marketing_consent:boolean updated_at:timestamp referred_by_email"
            ),
            key="contact_id",
            description="CRM contacts export",
        ),
        Source(
            "crm_deals",
            _cols(
                "deal_id! contact_id! created_at:timestamp! deal_stage! amount:money "
                "currency closed_at:timestamp lost_reason"
            ),
            key="deal_id",
            description="CRM deals export",
            allowed_values={"deal_stage": DEAL_STAGES},
        ),
        Source(
            "web_events",
            _cols(
                "event_at:timestamp! anonymous_id! event_name! event_id user_id email "
                "page_url referrer utm_source utm_medium utm_campaign device country session_id"
            ),
            key="event_id",
            description="Web-analytics events",
        ),
        Source(
            "orders",
            _cols(
                "order_id! ordered_at:timestamp! total_amount:money! customer_id email phone "
                "status currency discount_amount:money refunded_amount:money channel "
                "coupon_code items_count:integer country cancel_reason"
            ),
            key="order_id",
            description="Shop orders",
            allowed_values={"status": ORDER_STATUSES},
        ),
        Source(
            "marketing_spend",
            _cols("spend_date:date! channel! spend:money! campaign currency"),
            description="Marketing spend per day and channel",
        ),
        Source(
            "surveys",
            _cols(
                "responded_at:timestamp! survey_type! score:integer! response_id email "
                "contact_id comment"
            ),
            key="response_id",
            description="NPS, CES and CSAT survey responses",
            allowed_values={"survey_type": SURVEY_TYPES},
        ),
        Source(
            "fx_rates",
            _cols("rate_date:date! currency! rate_to_reporting:number!"),
            description="FX rates: 1 unit of currency = rate_to_reporting units of reporting currency",
        ),
    ]
}

LINEAGE_COLUMNS = ("_source_file", "_file_hash", "_row_number", "_loaded_at", "_extra")

# --- the dbt seed ------------------------------------------------------------------------

DBT_PROJECT = Path(__file__).resolve().parent.parent / "dbt_project"
SEED_PATH = DBT_PROJECT / "seeds" / "contract_values.csv"
MACRO_PATH = DBT_PROJECT / "macros" / "contract_patterns.sql"


def contract_lists() -> dict[str, tuple[str, ...]]:
    """Every list dbt checks values against, by name (the seed ``contract_values``)."""
    return {
        "sources": tuple(SOURCES),
        "person_record_sources": tuple(PERSON_RECORD_KEYS),
        "identifier_types": IDENTIFIER_TYPES,
        "order_statuses": ORDER_STATUSES,
        "purchase_statuses": PURCHASE_STATUSES,
        "cancellation_statuses": CANCELLATION_STATUSES,
        "no_revenue_statuses": NO_REVENUE_STATUSES,
        "deal_stages": DEAL_STAGES,
        "survey_types": SURVEY_TYPES,
        "known_events": KNOWN_EVENTS,
        "lifecycle_stages": LIFECYCLE_STAGES,
        "lifecycle_phases": LIFECYCLE_PHASES,
        "file_statuses": FILE_STATUSES,
        "reason_codes": REASON_CODES,
        "reason_categories": REASON_CATEGORIES,
        "risk_bands": RISK_BANDS,
        "audiences": AUDIENCES,
        "triggers": TRIGGERS,
        "funnel_steps": FUNNEL_STEPS,
        # every spell means a visitor; from lead on, the stages reaching each step
        **{f"funnel_stages_{step}": funnel_stages_reaching(step) for step in FUNNEL_STEPS[1:]},
        "attribution_models": ATTRIBUTION_MODELS,
    }


def seed_csv() -> str:
    """The seed's text: one row per list and value, with its position in the list."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["list_name", "position", "value"])
    for name, values in contract_lists().items():
        for position, value in enumerate(values, start=1):
            writer.writerow([name, position, value])
    return out.getvalue()


def macro_sql() -> str:
    """The dbt macros that hand the contract's patterns to SQL, as quoted string literals."""
    literal = "'" + EMAIL_PATTERN.replace("'", "''") + "'"
    return (
        "{#- Generated from pipelines/contract.py by `python -m pipelines.contract`: do not edit.\n"
        "    tests/test_dbt_project.py fails when this file differs from the contract. -#}\n"
        "\n"
        "{#- EMAIL_PATTERN: the shape of a normalised e-mail address (RE2), a SQL string literal. -#}\n"
        "{% macro email_pattern() -%}\n"
        "    {% raw %}" + literal + "{% endraw %}\n"
        "{%- endmacro %}\n"
    )


if __name__ == "__main__":  # python -m pipelines.contract: write the seed and the macro
    SEED_PATH.write_text(seed_csv(), encoding="utf-8")
    MACRO_PATH.write_text(macro_sql(), encoding="utf-8")
    sys.stdout.write(f"wrote {SEED_PATH}\nwrote {MACRO_PATH}\n")
