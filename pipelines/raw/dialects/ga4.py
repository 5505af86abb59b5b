"""GA4 BigQuery export as NDJSON: one event per line with nested records.
``event_timestamp`` is microseconds since the epoch (a string in JSON exports);
``event_params`` is a list of {key, value: {string_value | int_value | float_value |
double_value}}; identifiers are ``user_pseudo_id`` (the browser), ``user_id`` and an
``email`` or ``user_email`` parameter; the session is the ``ga_session_id`` parameter;
``geo.country`` is a country name. Traffic source per event is ``collected_traffic_source``
(manual_source / manual_medium / manual_campaign_name), else the ``source`` / ``medium`` /
``campaign`` parameters; the user-level ``traffic_source`` (first touch) is kept in _extra."""
from pipelines.raw.dialects import Dialect

PARAMS_TYPE = ('[{"key": "VARCHAR", "value": {"string_value": "VARCHAR", "int_value": "VARCHAR", '
               '"float_value": "VARCHAR", "double_value": "VARCHAR"}}]')


def param(key: str) -> str:
    value = f"list_filter(@{{=params}}, x -> x.key = '{key}')[1].value"
    return f"coalesce({value}.string_value, {value}.int_value, {value}.double_value, {value}.float_value)"


def field(column: str, path: str) -> str:
    return f"json_extract_string(@{{{column}}}, '$.{path}')"


DIALECT = Dialect(
    name="ga4_bigquery",
    source="web_events",
    description="GA4 BigQuery export (NDJSON)",
    signature=("event_timestamp", "user_pseudo_id", "event_name"),
    prepare={
        "params": f"CASE WHEN json_valid(@{{event_params}}) THEN from_json(@{{event_params}}, '{PARAMS_TYPE}') END",
        "micros": "trim(@{event_timestamp})",
    },
    columns={
        # microseconds -> ISO 8601 UTC; text that is not a number passes through (and is
        # rejected naming event_at)
        "event_at": r"CASE WHEN regexp_matches(@{=micros}, '^[0-9]{1,19}$') "
                    r"THEN strftime(make_timestamp(@{=micros}::BIGINT), '%Y-%m-%dT%H:%M:%S.%fZ') "
                    "ELSE @{=micros} END",
        "anonymous_id": "@{user_pseudo_id}",
        "event_name": "@{event_name}",
        "event_id": param("event_id"),
        "user_id": "@{user_id}",
        "email": f"coalesce({param('email')}, {param('user_email')})",
        "page_url": param("page_location"),
        "referrer": param("page_referrer"),
        "utm_source": f"coalesce({field('collected_traffic_source', 'manual_source')}, {param('source')})",
        "utm_medium": f"coalesce({field('collected_traffic_source', 'manual_medium')}, {param('medium')})",
        "utm_campaign": f"coalesce({field('collected_traffic_source', 'manual_campaign_name')}, {param('campaign')})",
        "device": field("device", "category"),
        "country": field("geo", "country"),
        "session_id": param("ga_session_id"),
    },
    consumed=("event_timestamp", "user_pseudo_id", "event_name", "user_id"),
    known=("event_params", "device", "geo", "traffic_source", "collected_traffic_source", "event_date",
           "event_previous_timestamp", "event_value_in_usd", "event_bundle_sequence_id",
           "event_server_timestamp_offset", "privacy_info", "user_properties", "user_first_touch_timestamp",
           "user_ltv", "app_info", "stream_id", "platform", "event_dimensions", "ecommerce", "items",
           "is_active_user", "batch_event_index", "batch_page_id", "batch_ordering_id",
           "session_traffic_source_last_click", "publisher"),
)
