"""Canonical facts written as real-world exports: HubSpot contacts, Shopify orders, GA4
BigQuery events (the dialects of ``pipelines.raw.dialects``, in the other direction).

Used by ``clm demo-data --dialect vendor`` and by the tests that load the same facts once
canonically and once in a dialect. Each function takes a canonical frame (the demo
generator's text columns) and the instants of its timestamps as epoch seconds, and
returns the vendor's file content. What a vendor's export cannot say is dropped, and
``canonical_equivalent`` gives the canonical frame of exactly the facts a vendor file
carries, so that both load to the same warehouse:

* HubSpot: ``Original Source`` has no affiliate or display value (both are "Other
  campaigns", loaded as ``other_campaigns``); consent and referrer are custom properties
  named like the canonical columns; dates are the portal's wall-clock time (Berlin) to
  the second.
* Shopify: no customer account id and no marketing channel per order (its ``Source`` is
  the sales channel); one row per line item; ``Subtotal`` after discounts.
* GA4: no event id; the session id is an integer ``ga_session_id``; timestamps are
  microseconds.
"""
from __future__ import annotations

import json
import re

import numpy as np
import polars as pl

PORTAL_TZ = "Europe/Berlin"

HUBSPOT_SOURCE = {  # canonical channel -> HubSpot Original Source label
    "paid_search": "Paid Search",
    "paid_social": "Paid Social",
    "email": "Email Marketing",
    "organic_search": "Organic Search",
    "organic_social": "Organic Social",
    "referral": "Referrals",
    "direct": "Direct Traffic",
    "affiliate": "Other Campaigns",
    "display": "Other Campaigns",
    "other_campaigns": "Other Campaigns",
    "offline": "Offline Sources",
}
HUBSPOT_STAGE = {
    "subscriber": "Subscriber", "lead": "Lead", "marketingqualifiedlead": "Marketing Qualified Lead",
    "salesqualifiedlead": "Sales Qualified Lead", "opportunity": "Opportunity", "customer": "Customer",
    "evangelist": "Evangelist", "other": "Other",
}
SHOPIFY_STATUS = {  # canonical status -> Financial Status (cancelled orders also get Cancelled at)
    "completed": "paid", "pending": "pending", "cancelled": "voided", "refunded": "refunded",
    "partially_refunded": "partially_refunded",
}


def _local(seconds: np.ndarray, fmt: str) -> pl.Series:
    return (pl.from_epoch(pl.Series(seconds), time_unit="s").dt.replace_time_zone("UTC")
            .dt.convert_time_zone(PORTAL_TZ).dt.strftime(fmt))


def _iso_utc(seconds: np.ndarray) -> pl.Series:
    return pl.from_epoch(pl.Series(seconds), time_unit="s").dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def ga_session_id(session_id: str | None) -> str | None:
    """'s003-17' (demo session ids) -> '3000000017': GA4's ga_session_id is an integer."""
    if session_id is None:
        return None
    digits = re.findall(r"\d+", session_id)
    if not digits:
        return None
    return str(int(digits[0]) * 1_000_000_000 + int(digits[-1])) if len(digits) > 1 else str(int(digits[0]))


# --------------------------------------------------------------------------- HubSpot


BAD_TIMESTAMP = "not-a-date"


def _marked(series: pl.Series, bad: np.ndarray | None) -> pl.Series:
    """Timestamps as text, with rows flagged ``bad`` written unparseable (a broken export)."""
    if bad is None or not bad.any():
        return series
    return series.scatter(np.flatnonzero(bad), BAD_TIMESTAMP)


def hubspot_contacts(df: pl.DataFrame, created: np.ndarray, updated: np.ndarray,
                     bad: np.ndarray | None = None) -> pl.DataFrame:
    """Canonical contacts -> a HubSpot contacts export (CSV columns by property label);
    ``bad`` rows get an unparseable Create Date."""
    return df.select(
        pl.col("contact_id").alias("Record ID"),
        pl.col("first_name").alias("First Name"),
        pl.col("last_name").alias("Last Name"),
        pl.col("email").alias("Email"),
        pl.col("phone").alias("Phone Number"),
        pl.col("company").alias("Company Name"),
        pl.col("country").alias("Country/Region"),
        pl.col("city").alias("City"),
        pl.col("crm_lifecycle_stage").replace(HUBSPOT_STAGE).alias("Lifecycle Stage"),
        pl.col("lead_source").replace_strict(HUBSPOT_SOURCE, default=None).alias("Original Source"),
        pl.lit(_marked(_local(created, "%Y-%m-%d %H:%M:%S"), bad)).alias("Create Date"),
        pl.lit(_local(updated, "%Y-%m-%d %H:%M:%S")).alias("Last Modified Date"),
        pl.col("lead_score").cast(pl.String).alias("HubSpot Score"),
        pl.lit(None, pl.String).alias("Contact owner"),
        pl.lit(None, pl.String).alias("Lead Status"),
        pl.col("marketing_consent").alias("Marketing Consent"),  # custom properties
        pl.col("referred_by_email").alias("Referred By Email"),
    )


# --------------------------------------------------------------------------- Shopify


def shopify_orders(df: pl.DataFrame, ordered: np.ndarray, bad: np.ndarray | None = None) -> pl.DataFrame:
    """Canonical orders -> a Shopify orders export: one row per line item (an order with
    two or more items gets two lines), order fields on the first row only; ``bad`` rows
    get an unparseable Created at."""
    money = pl.Float64
    orders = df.with_columns(
        _created=pl.lit(_marked(_local(ordered, "%Y-%m-%d %H:%M:%S %z"), bad)),
        _cancelled=pl.lit(_local(ordered + 3600, "%Y-%m-%d %H:%M:%S %z")),
        _items=pl.col("items_count").cast(pl.Int64).fill_null(1).clip(1),
        _total=pl.col("total_amount").cast(money),
        _disc=pl.col("discount_amount").cast(money).fill_null(0.0),
    ).with_row_index("_i")
    status = pl.col("status").fill_null("completed")
    first = orders.select(
        "_i",
        pl.lit(0).alias("_line"),
        pl.col("order_id").alias("Name"),
        pl.col("email").alias("Email"),
        status.replace_strict(SHOPIFY_STATUS, default=status).alias("Financial Status"),
        pl.col("currency").alias("Currency"),
        (pl.col("_total") - pl.col("_disc")).round(2).alias("Subtotal"),
        pl.lit("0.00").alias("Shipping"),
        (pl.col("_total") - pl.col("_disc")).round(2).alias("Total"),
        pl.col("coupon_code").alias("Discount Code"),
        pl.col("_disc").round(2).alias("Discount Amount"),
        pl.col("_created").alias("Created at"),
        pl.when(pl.col("_items") > 1).then(pl.col("_items") - 1).otherwise(1).cast(pl.Int64).alias("Lineitem quantity"),
        pl.lit("Merino sweater").alias("Lineitem name"),
        pl.col("country").alias("Billing Country"),
        pl.when(status == "cancelled").then(pl.col("_cancelled")).alias("Cancelled at"),
        pl.col("refunded_amount").cast(money).round(2).alias("Refunded Amount"),
        pl.lit("web").alias("Source"),
        pl.col("phone").alias("Phone"),
    )
    second = orders.filter(pl.col("_items") > 1).select(
        "_i", pl.lit(1).alias("_line"), pl.col("order_id").alias("Name"), pl.lit(1, pl.Int64).alias("Lineitem quantity"),
        pl.lit("Wool socks").alias("Lineitem name"))
    out = pl.concat([first, second], how="diagonal").sort("_i", "_line").drop("_i", "_line")
    return out.select(pl.all().cast(pl.String))


# --------------------------------------------------------------------------- GA4


def _param(key: str, value: str | None, kind: str = "string_value") -> dict | None:
    return None if value is None else {"key": key, "value": {kind: value}}


def ga4_events(df: pl.DataFrame, event_at: np.ndarray, bad: np.ndarray | None = None) -> bytes:
    """Canonical web events -> GA4 BigQuery export NDJSON (``bad``: rows whose timestamp
    is written as unparseable text, as a broken export would)."""
    lines = []
    micros = (event_at.astype(np.int64) * 1_000_000).astype(str)
    rows = df.select("anonymous_id", "event_name", "user_id", "email", "page_url", "referrer", "utm_source",
                     "utm_medium", "utm_campaign", "device", "country", "session_id").iter_rows()
    for i, (anon, name, uid, email, page, ref, src, med, camp, dev, country, sess) in enumerate(rows):
        params = [p for p in (
            _param("ga_session_id", ga_session_id(sess), "int_value"),
            _param("page_location", page),
            _param("page_referrer", ref),
            _param("user_email" if i % 2 else "email", email),
            {"key": "engagement_time_msec", "value": {"int_value": str(100 + i % 900)}},
        ) if p is not None]
        event = {
            "event_date": None,
            "event_timestamp": BAD_TIMESTAMP if bad is not None and bad[i] else micros[i],
            "event_name": name,
            "event_params": params,
            "user_pseudo_id": anon,
            "user_id": uid,
            "device": {"category": dev, "web_info": {"browser": "Chrome"}},
            "geo": {"country": country},
            "platform": "WEB",
        }
        if src or med or camp:
            event["collected_traffic_source"] = {"manual_source": src, "manual_medium": med,
                                                 "manual_campaign_name": camp}
        lines.append(json.dumps(event, ensure_ascii=False, separators=(",", ":")))
    return ("\n".join(lines) + "\n").encode() if lines else b""


# --------------------------------------------------------------------------- equivalence


def _hubspot_channel(channel: str | None) -> str | None:
    """The channel a HubSpot export of ``channel`` loads as (through its Original Source label)."""
    from pipelines.raw.dialects.hubspot import ORIGINAL_SOURCE

    label = HUBSPOT_SOURCE.get(channel) if channel is not None else None
    if label is None:
        return None
    key = re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")
    return ORIGINAL_SOURCE.get(key, key)


def canonical_equivalent(source: str, df: pl.DataFrame, times: dict[str, np.ndarray],
                         bad: np.ndarray | None = None) -> pl.DataFrame:
    """The canonical frame of exactly the facts the vendor export of ``df`` (with the
    same ``times`` and ``bad`` rows) carries."""
    if source == "crm_contacts":
        # HubSpot dates are the portal's wall-clock time: the canonical file says the same
        # naive local times, read in the same timezone (source_timezones)
        return df.with_columns(
            created_at=pl.lit(_marked(_local(times["created_at"], "%Y-%m-%d %H:%M:%S"), bad)),
            updated_at=pl.lit(_local(times["updated_at"], "%Y-%m-%d %H:%M:%S")),
            lead_source=pl.col("lead_source").map_elements(_hubspot_channel, return_dtype=pl.String),
        )
    if source == "orders":
        return df.with_columns(ordered_at=pl.lit(_marked(_iso_utc(times["ordered_at"]), bad)),
                               customer_id=pl.lit(None, pl.String), channel=pl.lit(None, pl.String))
    if source == "web_events":
        return df.with_columns(
            event_at=pl.lit(_marked(_iso_utc(times["event_at"]), bad)), event_id=pl.lit(None, pl.String),
            session_id=pl.col("session_id").map_elements(ga_session_id, return_dtype=pl.String))
    raise ValueError(f"no vendor dialect for {source}")
