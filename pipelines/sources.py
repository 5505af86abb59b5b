"""The landing sources of SPEC section 2: their canonical columns and types.

This module is the one place that says which columns a source has, which are
required, and how each value is typed when it is loaded into schema ``raw``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

# Logical column types understood by the loader (pipelines.ingest.parse).
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
                "currency closed_at:timestamp"
            ),
            key="deal_id",
            description="CRM deals export",
            allowed_values={"deal_stage": ("open", "won", "lost")},
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
                "coupon_code items_count:integer country"
            ),
            key="order_id",
            description="Shop orders",
            allowed_values={
                "status": ("completed", "pending", "cancelled", "refunded", "partially_refunded")
            },
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
            allowed_values={"survey_type": ("nps", "ces", "csat")},
        ),
        Source(
            "fx_rates",
            _cols("rate_date:date! currency! rate_to_reporting:number!"),
            description="FX rates: 1 unit of currency = rate_to_reporting units of reporting currency",
        ),
    ]
}

LINEAGE_COLUMNS = ("_source_file", "_file_hash", "_row_number", "_loaded_at", "_extra")
