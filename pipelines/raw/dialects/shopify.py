"""Shopify orders export: one row per line item, the order's fields only on its first row
(rows of an order share ``Name``, e.g. ``#1001``). Aggregated to one order: status from
``Financial Status`` and ``Cancelled at``; ``Subtotal`` is after discounts, so the
canonical item value before discounts is Subtotal + Discount Amount; items are the sum of
``Lineitem quantity``; the line items themselves are kept as one JSON list in _extra.
``Created at`` carries an offset (``2024-03-01 10:15:00 +0100``). Shopify's ``Source``
(web, pos, an app) is a sales channel, not a marketing channel: kept in _extra."""
from pipelines.raw.dialects import Dialect

# Financial Status -> canonical status (CONTRACT section 2 dialect notes); a non-empty
# Cancelled at makes any order cancelled. Unknown values pass through lower-cased, so the
# staging quality gate names them instead of counting them as purchases.
FINANCIAL_STATUS = {
    "paid": "completed",
    "partially_refunded": "partially_refunded",
    "refunded": "refunded",
    "voided": "cancelled",
    "expired": "cancelled",
    "pending": "pending",
    "authorized": "pending",
    "partially_paid": "pending",
}
_NUM = "try_cast(nullif(trim({x}), '') AS DECIMAL(18, 4))"


def _status() -> str:
    key = "lower(trim(@{Financial Status}))"
    cases = " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in FINANCIAL_STATUS.items())
    return (f"CASE WHEN nullif(trim(@{{Cancelled at}}), '') IS NOT NULL THEN 'cancelled' "
            f"ELSE CASE {key} {cases} ELSE nullif({key}, '') END END")


def _item_value() -> str:
    # total_amount = Subtotal (after discounts) + Discount Amount; unparseable text passes
    # through so that the record is rejected naming total_amount
    sub, disc = _NUM.format(x="@{Subtotal}"), _NUM.format(x="@{Discount Amount}")
    return f"CASE WHEN {sub} IS NOT NULL THEN ({sub} + coalesce({disc}, 0))::VARCHAR ELSE @{{Subtotal}} END"


DIALECT = Dialect(
    name="shopify_orders",
    source="orders",
    description="Shopify orders export",
    signature=("Name", "Financial Status", "Lineitem quantity"),
    group_by="Name",
    columns={
        "order_id": "@{Name}",
        # '2024-03-01 10:15:00 +0100' -> '2024-03-01 10:15:00+0100' (ISO 8601 with an offset)
        "ordered_at": r"regexp_replace(trim(@{Created at}), '\s+([+-]\d\d:?\d\d)$', '\1')",
        "email": "@{Email}",
        "phone": "coalesce(nullif(trim(@{Phone}), ''), nullif(trim(@{Billing Phone}), ''), "
                 "nullif(trim(@{Shipping Phone}), ''))",
        "status": _status(),
        "currency": "@{Currency}",
        "total_amount": _item_value(),
        "discount_amount": "@{Discount Amount}",
        "refunded_amount": "@{Refunded Amount}",
        "coupon_code": "@{Discount Code}",
        "items_count": "sum(try_cast(nullif(trim(@{Lineitem quantity}), '') AS BIGINT))",
        "country": "coalesce(nullif(trim(@{Billing Country}), ''), nullif(trim(@{Shipping Country}), ''))",
    },
    aggregates=frozenset({"items_count"}),
    consumed=("Name", "Created at", "Email", "Phone", "Financial Status", "Cancelled at", "Currency", "Subtotal",
              "Discount Amount", "Refunded Amount", "Discount Code", "Billing Country"),
    list_prefix="Lineitem",
    known=("Paid at", "Fulfillment Status", "Fulfilled at", "Accepts Marketing", "Shipping", "Taxes", "Total",
           "Shipping Method", "Billing Name", "Billing Street", "Billing Address1", "Billing Address2",
           "Billing Company", "Billing City", "Billing Zip", "Billing Province", "Billing Phone", "Shipping Name",
           "Shipping Street", "Shipping Address1", "Shipping Address2", "Shipping Company", "Shipping City",
           "Shipping Zip", "Shipping Province", "Shipping Country", "Shipping Phone", "Notes", "Note Attributes",
           "Payment Method", "Payment Reference", "Vendor", "Outstanding Balance", "Employee", "Location",
           "Device ID", "Id", "Tags", "Risk Level", "Source", "Tax 1 Name", "Tax 1 Value", "Tax 2 Name",
           "Tax 2 Value", "Tax 3 Name", "Tax 3 Value", "Tax 4 Name", "Tax 4 Value", "Tax 5 Name", "Tax 5 Value",
           "Receipt Number", "Duties", "Billing Province Name", "Shipping Province Name", "Payment ID",
           "Payment Terms Name", "Next Payment Due At", "Payment References"),
)
