"""Deterministic, realistically messy demo exports for the seven landing sources.

``generate(out_dir, customers, seed)`` writes one sub-folder per landing source
(CONTRACT section 2) plus ground truth in ``out_dir/_truth/`` (not a source folder):

* ``identities.parquet``: ``source``, ``source_key``, ``person_id`` for every
  CRM contact, CRM deal, order, survey response and web ``anonymous_id``
  (``person_id`` is null for shared devices), so identity resolution can be
  scored against it;
* ``persons.parquet``: the latent person table (archetype, ``scripted_stage``,
  country, acquisition channel, first seen, canonical e-mail...);
* ``manifest.json``: the files written (a later run into the same folder
  removes them first).

Files per source (``NNN`` = chunk number):

* ``crm_contacts/contacts_partNNN.csv``;
* ``crm_deals/deals_partNNN.csv``;
* ``web_events/events_partNNN.ndjson`` and, chunk 0 only, the 2023 Q1 events
  as ``events_2023q1_part000.ndjson.gz`` (timestamps with Berlin offsets);
* ``orders/orders_2023_2024_partNNN.csv`` (mixed timestamp forms, a few
  malformed rows), ``orders/orders_2025_partNNN.parquet`` (typed columns),
  ``orders/bestellungen_shop_de_2024q4.csv`` (chunk 0's German and Austrian
  orders of 2024 Q4 as a German Excel export: cp1252, ``;``, decimal comma,
  ``DD.MM.YYYY HH:MM``, CRLF) and ``orders/orders_2023_2024_part000_resend.csv``
  (a byte copy of ``orders_2023_2024_part000.csv``);
* ``marketing_spend/spend_2023.csv`` (``DD.MM.YYYY`` dates), ``spend_2024.csv``,
  ``spend_2025.csv.gz``;
* ``surveys/nps_responses_partNNN.json`` (JSON array) and
  ``surveys/ces_responses_partNNN.csv`` (UTF-8 with BOM, export-style headers
  such as ``Response ID`` and ``E-Mail``);
* ``fx_rates/fx_rates_daily.csv``.

How it works: persons are drawn chunk by chunk (``chunk_customers`` at a time,
each chunk from its own random stream derived from ``(seed, chunk index)``) as
a latent table of vectorised attributes; every source's rows are derived from
that table with numpy/polars column operations, messiness is applied by
masks, and each chunk is written before the next one is drawn, so memory stays
bounded whatever ``customers`` is.  Same ``(customers, seed, chunk_customers)``
gives byte-identical files.

All data lies between 2023-01-01 and 2025-12-31 (Europe/Berlin), so an
``as_of_date`` of 2025-12-31 evaluates everything.  Every lifecycle stage of
CONTRACT section 5 is non-empty at that date: each chunk of at least 20 persons
holds one scripted person per stage (see ``FORCED``) besides the random ones.
Names, e-mail addresses (``<first>.<last><n>@example.com`` and the like) and
phone numbers are synthetic.
"""
from __future__ import annotations

import argparse
import calendar
import datetime as dt
import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from scipy.signal import lfilter

from pipelines.contract import DEAL_STAGES, ORDER_STATUSES, SOURCES
TRUTH_DIR = "_truth"

DAY = 86_400
FIRST_DAY = dt.date(2023, 1, 1)
LAST_DAY = dt.date(2025, 12, 31)


def _epoch(y: int, m: int, d: int, hh: int = 0, mm: int = 0) -> int:
    return calendar.timegm((y, m, d, hh, mm, 0))


# Earliest and latest instant of any generated record (well inside the Berlin
# calendar days 2023-01-01 .. 2025-12-31).
T0 = _epoch(2023, 1, 1, 6)
T_END = _epoch(2025, 12, 31, 21)
END_NOON = _epoch(2025, 12, 31, 11)
SPLIT_2025 = _epoch(2025, 1, 1)

# --------------------------------------------------------------------------
# Reference lists (small and fixed; synthetic)
# --------------------------------------------------------------------------
COUNTRIES = ("DE", "AT", "CH", "US", "GB", "FR")
COUNTRY_P = (0.55, 0.10, 0.06, 0.12, 0.10, 0.07)
LANG_OF_COUNTRY = np.array([0, 0, 0, 1, 1, 2])  # de, en, fr
CURRENCIES = ("EUR", "USD", "GBP", "CHF")
CURRENCY_OF_COUNTRY = np.array([0, 0, 3, 1, 2, 0])
CURRENCY_FACTOR = np.array([1.0, 1.1, 0.85, 1.0])
# Country as written in exports: code, English name, lower-case code, local name, upper-case name.
COUNTRY_VARIANTS = (
    ("DE", "Germany", "de", "Deutschland", "GERMANY"),
    ("AT", "Austria", "at", "Österreich", "AUSTRIA"),
    ("CH", "Switzerland", "ch", "Schweiz", "SWITZERLAND"),
    ("US", "United States", "us", "United States", "UNITED STATES"),
    ("GB", "United Kingdom", "gb", "United Kingdom", "UNITED KINGDOM"),
    ("FR", "France", "fr", "France", "FRANCE"),
)
COUNTRY_VARIANT_P = (0.45, 0.25, 0.15, 0.10, 0.05)
N_CVAR = len(COUNTRY_VARIANT_P)

FIRST_NAMES = (
    ("Anna", "Jürgen", "Jörg", "Sören", "Lena", "Maximilian", "Sophie", "Lukas", "Marie",
     "Felix", "Jonas", "Leonie", "Björn", "Käthe", "Günter", "Hannah", "Paul", "Mia",
     "Tobias", "Katharina", "Uwe", "Renée", "Matthias", "Zoë"),
    ("James", "Mary", "John", "Olivia", "Emma", "Oliver", "William", "Sophia", "Liam",
     "Ava", "Noah", "Isabella", "Charlotte", "Harry", "Amelia", "George"),
    ("Camille", "Léa", "Chloé", "Hugo", "Louis", "Émile", "Zoé", "Théo", "Manon",
     "Gabriel", "Inès", "Raphaël"),
)
LAST_NAMES = (
    ("Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker",
     "Schäfer", "Koch", "Bauer", "Richter", "Klein", "Wolf", "Schröder", "Neumann",
     "Schwarz", "Zimmermann", "Braun", "Krüger", "Hofmann", "Hartmann", "Lange",
     "Köhler", "Groß", "Weiß"),
    ("Smith", "Johnson", "Williams", "Brown", "Jones", "Taylor", "Davies", "Wilson",
     "Evans", "Thomas", "Miller", "Davis", "Garcia", "O'Brien", "Clarke", "Walker"),
    ("Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand",
     "Lefèvre", "Moreau", "Girard", "François"),
)
CITIES = (
    ("Berlin", "Hamburg", "München", "Köln", "Frankfurt am Main", "Düsseldorf",
     "Nürnberg", "Stuttgart", "Leipzig", "Lübeck"),
    ("Wien", "Graz", "Linz", "Salzburg", "Innsbruck"),
    ("Zürich", "Genève", "Basel", "Bern", "Luzern"),
    ("New York", "San Francisco", "Austin", "Chicago", "Seattle"),
    ("London", "Manchester", "Bristol", "Edinburgh", "Leeds"),
    ("Paris", "Lyon", "Marseille", "Toulouse", "Nantes"),
)
COMPANIES = (
    "Müller Logistik GmbH", "Nordlicht Design GmbH", "Bäckerei Schäfer", "Acme Trading Ltd",
    "Köhler & Söhne KG", "Blue Harbor Inc.", "Café Lumière SARL", "Alpenblick Hotels AG",
    "Greenfield Analytics Ltd", "Weiß Consulting", "Brightside Media LLC", "Zürcher Werkstatt AG",
)
EMAIL_DOMAINS = ("gmail.com", "example.com", "example.org", "example.net", "mail.example.de")
EMAIL_DOMAIN_P = (0.30, 0.30, 0.15, 0.15, 0.10)

# Phone number plans: (country index, calling code, national prefix, free digits).
PHONE_PLANS = (
    (0, "49", "151", 8), (0, "49", "160", 8), (0, "49", "176", 8), (0, "49", "30", 8),
    (0, "49", "89", 8), (0, "49", "221", 7),
    (1, "43", "664", 7), (1, "43", "676", 8), (1, "43", "1", 7),
    (2, "41", "79", 7), (2, "41", "76", 7), (2, "41", "44", 7),
    (3, "1", "415", 7), (3, "1", "212", 7), (3, "1", "512", 7), (3, "1", "646", 7),
    (4, "44", "79", 8), (4, "44", "77", 8),
    (5, "33", "1", 8), (5, "33", "4", 8), (5, "33", "3", 8),
)
# Phone formats: national, national with parentheses, international, 00-international, compact E.164.
PHONE_FORMAT_P = (0.30, 0.15, 0.30, 0.10, 0.15)

CHANNELS = ("paid_search", "paid_social", "email", "affiliate", "display",
            "organic_search", "referral", "direct")
CHANNEL_P = (0.20, 0.15, 0.08, 0.07, 0.05, 0.22, 0.08, 0.15)
SPEND_CHANNELS = CHANNELS[:5]
# Daily spend in EUR per 1,000 customers, per spend channel.
SPEND_BASE = (10.0, 8.0, 1.0, 3.0, 4.0)
UTM_SOURCE = ("google", "facebook", "newsletter", "awin", "criteo", None, "refer_a_friend", None)
UTM_MEDIUM = ("cpc", "paid_social", "email", "affiliate", "display", None, "referral", None)
UTM_CAMPAIGN = ("generic_search", "lookalike_q", "weekly_newsletter", "partner_program",
                "retargeting", None, "refer_a_friend", None)
REFERRER = ("https://www.google.com/", "https://www.facebook.com/", None,
            "https://deals.example.net/", "https://news.example.org/",
            "https://www.google.com/", "https://blog.example.org/", None)

# Buyer archetypes (index = code); persons with archetype -1 never buy.
ARCHETYPES = ("one_time", "repeat", "loyal", "heavy", "reactivator")
ARCHETYPE_P = (0.48, 0.22, 0.14, 0.08, 0.08)
LEAD = -1
FORCED_CODE = 9
# One scripted person per lifecycle stage (days before 2025-12-31 of completed orders).
FORCED = (
    ("churned", (400,)),
    ("at_risk", (120,)),
    ("reactivated", (430, 30)),
    ("advocate", (100, 20)),
    ("loyal", (300, 220, 150, 80, 20)),
    ("repeat_buyer", (60, 20)),
    ("first_time_buyer", (10,)),
    ("trial", ()),
    ("opportunity", ()),
    ("lead", ()),
)
F_ADVOCATE, F_TRIAL, F_OPPORTUNITY, F_LEAD = 3, 7, 8, 9

EVENTS = ("page_view", "add_to_cart", "begin_checkout", "purchase", "login", "sign_up",
          "newsletter_signup", "lead_form_submit", "trial_start")
EV_PAGE, EV_CART, EV_CHECKOUT, EV_PURCHASE, EV_LOGIN, EV_SIGNUP, EV_NEWS, EV_LEADFORM, EV_TRIAL = range(9)
SHOP = "https://shop.example.com"
PAGES = ("/", "/products/merino-sweater", "/products/linen-shirt", "/products/wool-socks",
         "/products/rain-jacket", "/products/canvas-tote", "/category/women", "/category/men",
         "/category/sale", "/blog/care-guide", "/about", "/products/leather-belt")
EVENT_PAGES = ("", "/cart", "/checkout", "/checkout/thank-you", "/account/login",
               "/account/register", "/newsletter", "/contact", "/trial/start")
DEVICES = ("mobile", "desktop", "tablet")

STATUSES = ORDER_STATUSES
COUPONS = ("WELCOME10", "SUMMER15", "GRÜN15", "VIP5", "BLACKFRIDAY20")
COUPON_PCT = np.array([0.10, 0.15, 0.15, 0.05, 0.20])
# Why orders were cancelled or refunded and deals lost, as shops and CRMs write them: codes,
# German and English free text (drawn from a stream of their own, so that adding them changed
# no other value of the demo data). Weights: what returns and lost deals are mostly about.
CANCEL_REASONS = (
    ("wrong_size", 0.12), ("Größe passt nicht", 0.08), ("Too small", 0.05),
    ("too_expensive", 0.06), ("Zu teuer", 0.05), ("Found it cheaper elsewhere", 0.04),
    ("late_delivery", 0.06), ("Lieferung hat zu lange gedauert", 0.05), ("Arrived damaged", 0.04),
    ("Qualität enttäuschend", 0.06), ("Poor quality, seams came apart", 0.05),
    ("changed_mind", 0.10), ("no_longer_needed", 0.07),
    ("Kundenservice hat nicht geantwortet", 0.04), ("Customer service was rude", 0.03),
    ("Checkout war kompliziert", 0.03), ("Payment failed twice", 0.02), ("other", 0.05),
)
LOST_REASONS = (
    ("Price too high", 0.30), ("Zu teuer im Vergleich", 0.15), ("Chose a competitor with faster delivery", 0.15),
    ("No response from sales", 0.10), ("Produkt passt nicht zu unseren Anforderungen", 0.15),
    ("Budget gestrichen", 0.10), ("other", 0.05),
)
NPS_COMMENTS = ("Schnelle Lieferung, super Qualität!", "Größe passte leider nicht.",
                "Great service, will order again.", "Très bien, merci.",
                "Rücksendung war kompliziert.", "Delivery took too long.", "Alles prima.")
CES_COMMENTS = ("Checkout war einfach.", "Couldn't find the return form.",
                "Zahlung hat zweimal nicht funktioniert.", "Easy.")

# --------------------------------------------------------------------------
# Fast timestamp formatting (numpy byte tables; polars' strftime is ~0.5 us/row)
# --------------------------------------------------------------------------
TS_Z, TS_OFFSET, TS_NAIVE, TS_GERMAN, DATE_ISO, DATE_GERMAN = range(6)
_TABLE_FIRST = dt.date(2020, 1, 1)
_TABLE_DAYS = (dt.date(2031, 1, 1) - _TABLE_FIRST).days
_DAY0 = (_TABLE_FIRST - dt.date(1970, 1, 1)).days
_ISO_DATES = np.frombuffer(
    "".join((_TABLE_FIRST + dt.timedelta(days=i)).strftime("%Y-%m-%d") for i in range(_TABLE_DAYS)).encode(),
    dtype=np.uint8).reshape(_TABLE_DAYS, 10)
_DE_DATES = np.frombuffer(
    "".join((_TABLE_FIRST + dt.timedelta(days=i)).strftime("%d.%m.%Y") for i in range(_TABLE_DAYS)).encode(),
    dtype=np.uint8).reshape(_TABLE_DAYS, 10)
_PAIRS = np.array([[48 + i // 10, 48 + i % 10] for i in range(100)], dtype=np.uint8)


def _last_sunday(year: int, month: int) -> int:
    last = calendar.monthrange(year, month)[1]
    d = dt.date(year, month, last)
    return d.day - (d.weekday() + 1) % 7


# Europe/Berlin summer time: last Sunday of March 01:00 UTC to last Sunday of October 01:00 UTC.
_DST_START = np.array([_epoch(y, 3, _last_sunday(y, 3), 1) for y in range(2019, 2032)])
_DST_END = np.array([_epoch(y, 10, _last_sunday(y, 10), 1) for y in range(2019, 2032)])


def _berlin_offset(ts: np.ndarray) -> np.ndarray:
    i = np.searchsorted(_DST_START, ts, side="right") - 1
    summer = (i >= 0) & (ts < _DST_END[np.clip(i, 0, None)])
    return np.where(summer, 7200, 3600)


def _format_ts(ts: np.ndarray, style: int) -> pl.Series:
    """Epoch seconds (UTC) as text; every style but TS_Z is Europe/Berlin local time."""
    ts = np.asarray(ts, dtype=np.int64)
    n = len(ts)
    off = np.zeros(n, np.int64) if style == TS_Z else _berlin_offset(ts)
    t = ts + off
    day = (t // DAY - _DAY0).astype(np.int64)
    sod = (t % DAY).astype(np.int32)
    hh, mi, ss = sod // 3600, sod // 60 % 60, sod % 60
    if style in (DATE_ISO, DATE_GERMAN):
        buf = (_ISO_DATES if style == DATE_ISO else _DE_DATES)[day]
    elif style == TS_GERMAN:
        buf = np.empty((n, 16), np.uint8)
        buf[:, 0:10] = _DE_DATES[day]
        buf[:, 10] = 32
        buf[:, 11:13] = _PAIRS[hh]
        buf[:, 13] = 58
        buf[:, 14:16] = _PAIRS[mi]
    else:
        width = {TS_Z: 20, TS_OFFSET: 25, TS_NAIVE: 19}[style]
        buf = np.empty((n, width), np.uint8)
        buf[:, 0:10] = _ISO_DATES[day]
        buf[:, 10] = 32 if style == TS_NAIVE else 84  # ' ' or 'T'
        buf[:, 11:13] = _PAIRS[hh]
        buf[:, 13] = 58
        buf[:, 14:16] = _PAIRS[mi]
        buf[:, 16] = 58
        buf[:, 17:19] = _PAIRS[ss]
        if style == TS_Z:
            buf[:, 19] = 90  # 'Z'
        elif style == TS_OFFSET:
            buf[:, 19:25] = np.frombuffer(b"+01:00", np.uint8)
            buf[off == 7200, 21] = 50  # "+02:00"
    buf = np.ascontiguousarray(buf)
    return pl.Series(buf.view(f"S{buf.shape[1]}").ravel()).cast(pl.String)


def _format_ts_mixed(ts: np.ndarray, styles: np.ndarray) -> pl.Series:
    """Per-row styles; computed per style on its rows and put back in row order."""
    parts, order = [], []
    for style in np.unique(styles):
        idx = np.flatnonzero(styles == style)
        parts.append(_format_ts(ts[idx], int(style)))
        order.append(idx)
    if not parts:
        return pl.Series([], dtype=pl.String)
    order_all = np.concatenate(order)
    inverse = np.empty_like(order_all)
    inverse[order_all] = np.arange(len(order_all))
    return pl.concat(parts).gather(inverse)


# --------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------
def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng([seed, *keys])


def _pick(values, idx) -> pl.Expr:
    """values[idx] as an expression; idx == len(values) gives null."""
    return pl.lit(pl.Series(list(values) + [None], dtype=pl.String)).gather(idx)


def _stratified(rng: np.random.Generator, n: int, p) -> np.ndarray:
    """Category codes in the exact proportions p (remainders drawn), shuffled: less
    sampling noise than independent draws for small n."""
    p = np.asarray(p, dtype=float)
    counts = np.floor(p * n).astype(np.int64)
    rest = n - int(counts.sum())
    if rest:
        counts += np.bincount(rng.choice(len(p), rest, replace=False, p=p) if rest <= len(p) else
                              rng.choice(len(p), rest, p=p), minlength=len(p))
    return rng.permutation(np.repeat(np.arange(len(p)), counts))


_HEX_DIGITS = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def _hex(data: np.ndarray) -> pl.Series:
    """Rows of bytes as lower-case hex text."""
    buf = np.empty((data.shape[0], 2 * data.shape[1]), np.uint8)
    buf[:, 0::2] = _HEX_DIGITS[data >> 4]
    buf[:, 1::2] = _HEX_DIGITS[data & 15]
    return pl.Series(buf.view(f"S{buf.shape[1]}").ravel()).cast(pl.String)


def _spoil(rng: np.random.Generator, free: np.ndarray, rates, minimum: int = 1) -> list[np.ndarray]:
    """Disjoint masks of rows to spoil, about ``rate`` of the free rows each (at
    least ``minimum`` while there are free rows)."""
    idx = np.flatnonzero(free)
    counts = [max(minimum, int(rng.binomial(len(idx), r))) for r in rates]
    chosen = rng.choice(idx, min(sum(counts), len(idx)), replace=False) if len(idx) else idx
    masks, at = [], 0
    for k in counts:
        m = np.zeros(len(free), bool)
        m[chosen[at:at + k]] = True
        masks.append(m)
        at += k
    return masks


def _group_pos(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For groups of the given sizes: the group of every row and its position in it."""
    counts = np.asarray(counts, dtype=np.int64)
    group = np.repeat(np.arange(len(counts)), counts)
    starts = np.cumsum(counts) - counts
    pos = np.arange(int(counts.sum())) - np.repeat(starts, counts)
    return group, pos


def _fold(text: str) -> str:
    """ASCII e-mail local part for a name."""
    table = {"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "é": "e", "è": "e", "ë": "e",
             "É": "E", "ç": "c", "ï": "i", "'": ""}
    return "".join(table.get(ch, ch) for ch in text).lower()


def _flat(groups) -> tuple[list[str], np.ndarray, np.ndarray]:
    values = [v for g in groups for v in g]
    lengths = np.array([len(g) for g in groups])
    offsets = np.cumsum(lengths) - lengths
    return values, offsets, lengths


FIRST_FLAT, FIRST_OFF, FIRST_LEN = _flat(FIRST_NAMES)
LAST_FLAT, LAST_OFF, LAST_LEN = _flat(LAST_NAMES)
CITY_FLAT, CITY_OFF, CITY_LEN = _flat(CITIES)
COUNTRY_VARIANT_FLAT = [v for row in COUNTRY_VARIANTS for v in row]
PLAN_COUNTRY = np.array([p[0] for p in PHONE_PLANS])
PLAN_BY_COUNTRY = [np.flatnonzero(PLAN_COUNTRY == c) for c in range(len(COUNTRIES))]


def _choose_within(rng: np.random.Generator, offsets, lengths, group: np.ndarray) -> np.ndarray:
    return offsets[group] + (rng.random(len(group)) * lengths[group]).astype(np.int64)


def _email_expr(email: pl.Expr, variant: pl.Expr, googlemail: pl.Expr) -> pl.Expr:
    """Messy spelling of a canonical address: 0 as is, 1 padded/title case, 2 upper case;
    googlemail.com instead of gmail.com where ``googlemail``."""
    base = pl.when(googlemail).then(email.str.replace("@gmail.com", "@googlemail.com", literal=True)).otherwise(email)
    local = base.str.split("@").list.get(0, null_on_oob=True)
    domain = base.str.split("@").list.get(1, null_on_oob=True)
    padded = pl.concat_str([pl.lit("  "), local.str.to_titlecase(), pl.lit("@"),
                            domain.str.extract(r"^(.*)\.[^.]+$").str.to_titlecase(), pl.lit("."),
                            domain.str.extract(r"\.([^.]+)$").str.to_uppercase(), pl.lit(" ")])
    return (pl.when(variant == 1).then(padded)
            .when(variant == 2).then(base.str.to_uppercase())
            .otherwise(base))


def _phone_expr(fmt: pl.Expr) -> pl.Expr:
    """Phone text from columns ph_cc/ph_pre/ph_sub/ph_s3/ph_s4/ph_us and a format code."""
    cc, pre, sub = pl.col("ph_cc"), pl.col("ph_pre"), pl.col("ph_sub")
    s3, s4, us = pl.col("ph_s3"), pl.col("ph_s4"), pl.col("ph_us")
    cat = pl.concat_str
    nat = pl.when(us).then(cat([pl.lit("("), pre, pl.lit(") "), s3, pl.lit("-"), s4])).otherwise(
        cat([pl.lit("0"), pre, pl.lit(" "), sub]))
    nat_paren = pl.when(us).then(cat([pre, pl.lit("-"), s3, pl.lit("-"), s4])).otherwise(
        cat([pl.lit("(0"), pre, pl.lit(") "), sub]))
    intl = pl.when(us).then(cat([pl.lit("+1 ("), pre, pl.lit(") "), s3, pl.lit("-"), s4])).otherwise(
        cat([pl.lit("+"), cc, pl.lit(" "), pre, pl.lit(" "), sub]))
    i00 = cat([pl.lit("00"), cc, pl.lit(" "), pre, pl.lit(" "), sub])
    compact = cat([pl.lit("+"), cc, pre, sub])
    return (pl.when(fmt == 0).then(nat).when(fmt == 1).then(nat_paren).when(fmt == 2).then(intl)
            .when(fmt == 3).then(i00).when(fmt == 4).then(compact).otherwise(None))


def _phone_formats(rng, n: int, present: np.ndarray, country_given: np.ndarray, us: np.ndarray) -> np.ndarray:
    """Format code per record (5 = no phone). National and 00 forms only with a country."""
    fmt = rng.choice(5, n, p=PHONE_FORMAT_P)
    fmt = np.where(~country_given & np.isin(fmt, (0, 1, 3)), 2, fmt)
    fmt = np.where(us & (fmt == 3), 4, fmt)
    return np.where(present, fmt, 5)


def _country_idx(rng, country: np.ndarray, given: np.ndarray, p=COUNTRY_VARIANT_P) -> np.ndarray:
    variant = rng.choice(N_CVAR, len(country), p=p)
    return np.where(given, country * N_CVAR + variant, len(COUNTRY_VARIANT_FLAT))


class _Writer:
    """Keeps the list of written files and row counts."""

    def __init__(self, out_dir: Path):
        self.out = out_dir
        self.files: list[str] = []
        self.rows = {s: 0 for s in SOURCES}

    def path(self, rel: str) -> Path:
        if rel not in self.files:
            self.files.append(rel)
        return self.out / rel

    def count(self, source: str, rows: int) -> None:
        self.rows[source] += rows


def _gzip_open(path: Path):
    raw = open(path, "wb")
    return raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6)


# --------------------------------------------------------------------------
# Latent persons
# --------------------------------------------------------------------------
def _persons(seed: int, c: int, g0: int, n: int) -> dict:
    rng = _rng(seed, c, 0)
    g = g0 + np.arange(n, dtype=np.int64)
    country = rng.choice(len(COUNTRIES), n, p=COUNTRY_P)
    lang = LANG_OF_COUNTRY[country]
    fn = _choose_within(rng, FIRST_OFF, FIRST_LEN, lang)
    ln = _choose_within(rng, LAST_OFF, LAST_LEN, lang)
    city = _choose_within(rng, CITY_OFF, CITY_LEN, country)
    has_email = rng.random(n) >= 0.04
    has_phone = (rng.random(n) < 0.70) | ~has_email
    has_crm = (rng.random(n) < 0.88) | ~has_email
    k_forced = len(FORCED) if n >= 20 else 0
    buyer = np.where(has_email, _stratified(rng, n, (0.28, 0.72)), rng.random(n) < 0.5).astype(bool)
    buyer[:k_forced] = False
    arch = np.full(n, LEAD)
    arch[buyer] = _stratified(rng, int(buyer.sum()), ARCHETYPE_P)
    account = np.where(buyer, rng.random(n) < 0.6, rng.random(n) < 0.1)
    web = (has_email | account) & (rng.random(n) < 0.88)
    channel = rng.choice(len(CHANNELS), n, p=CHANNEL_P)
    first_seen = T0 + ((T_END - T0 - 20 * DAY) * rng.random(n) ** 0.8).astype(np.int64)
    # heavy buyers are older customers (and their volume varies less)
    first_seen = np.where(arch == 3, T0 + ((T_END - T0) * 0.6 * rng.random(n)).astype(np.int64), first_seen)
    ident = np.minimum(first_seen + rng.exponential(5 * DAY, n).astype(np.int64), T_END - 3600)
    first_order = ident + rng.exponential(20 * DAY, n).astype(np.int64)
    domain = rng.choice(len(EMAIL_DOMAINS), n, p=EMAIL_DOMAIN_P)
    pattern = rng.choice(3, n, p=(0.6, 0.25, 0.15))
    googlemail = (domain == 0) & (rng.random(n) < 0.4)
    plan_pick = rng.random(n)
    plan = np.empty(n, np.int64)
    for ci, plans in enumerate(PLAN_BY_COUNTRY):
        m = country == ci
        plan[m] = plans[(plan_pick[m] * len(plans)).astype(np.int64)]
    company = np.where(rng.random(n) < 0.18, rng.integers(0, len(COMPANIES), n), len(COMPANIES))
    lead_score = np.where(buyer, rng.integers(30, 101, n), (rng.beta(2.0, 3.0, n) * 100).astype(np.int64))
    consent = rng.random(n) < 0.6
    forced = np.full(n, -1)
    if k_forced:
        k = k_forced
        forced[:k] = np.arange(k)
        has_email[:k], has_phone[:k], has_crm[:k], web[:k], account[:k] = True, False, True, True, False
        country[:k], channel[:k], company[:k], lead_score[:k] = 0, 0, len(COMPANIES), 20
        buyer[:k] = [bool(orders) for _, orders in FORCED]
        arch[:k] = np.where(buyer[:k], FORCED_CODE, LEAD)
        first_seen[:k] = T_END - 700 * DAY
        ident[:k] = first_seen[:k] + DAY
        first_seen[F_TRIAL], ident[F_TRIAL] = T_END - 40 * DAY, T_END - 5 * DAY
        first_order[:k] = T_END + DAY  # no random orders
    # Phone digits: a bijection of the global person number, so no two persons share a number.
    free = np.array([p[3] for p in PHONE_PLANS])[plan]
    space = 8 * 10 ** (free - 1)
    sub = 2 * 10 ** (free - 1) + (g * 7_919_993 + 104_729 * plan) % space
    person_id = pl.Series(g).cast(pl.String).str.zfill(9)
    df = pl.DataFrame({
        "person_id": "P" + person_id,
        "g": g, "fn": fn, "ln": ln, "domain": domain, "pattern": pattern,
        "plan": plan, "sub": sub, "city": city, "company": company, "has_email": has_email,
        "account": account,
    }).select(
        "person_id",
        _pick(FIRST_FLAT, pl.col("fn")).alias("first_name"),
        _pick(LAST_FLAT, pl.col("ln")).alias("last_name"),
        pl.when(pl.col("has_email")).then(pl.concat_str([
            pl.when(pl.col("pattern") == 1).then(_pick([_fold(x)[:1] for x in FIRST_FLAT], pl.col("fn")))
            .otherwise(_pick([_fold(x) for x in FIRST_FLAT], pl.col("fn"))),
            pl.when(pl.col("pattern") == 2).then(pl.lit("")).otherwise(pl.lit(".")),
            _pick([_fold(x) for x in LAST_FLAT], pl.col("ln")),
            pl.col("g").cast(pl.String),
            pl.lit("@"),
            _pick(EMAIL_DOMAINS, pl.col("domain")),
        ])).alias("email"),
        _pick([p[1] for p in PHONE_PLANS], pl.col("plan")).alias("ph_cc"),
        _pick([p[2] for p in PHONE_PLANS], pl.col("plan")).alias("ph_pre"),
        pl.col("sub").cast(pl.String).alias("ph_sub"),
        (pl.col("sub") // 10_000).cast(pl.String).alias("ph_s3"),
        (pl.col("sub") % 10_000).cast(pl.String).str.zfill(4).alias("ph_s4"),
        (pl.col("plan").is_in(np.flatnonzero(PLAN_COUNTRY == 3).tolist())).alias("ph_us"),
        _pick(CITY_FLAT, pl.col("city")).alias("city"),
        _pick(COMPANIES, pl.col("company")).alias("company"),
        pl.when(pl.col("account")).then(
            pl.concat_str([pl.lit("U"), (pl.col("g") + 1).cast(pl.String).str.zfill(7)])).alias("customer_id"),
    )
    return dict(
        n=n, g=g, df=df, country=country, has_email=has_email, has_phone=has_phone,
        has_crm=has_crm, buyer=buyer, arch=arch, account=account, web=web, channel=channel,
        first_seen=first_seen, ident=ident, first_order=first_order, googlemail=googlemail,
        lead_score=lead_score, consent=consent, forced=forced, company=company,
    )


# --------------------------------------------------------------------------
# Orders
# --------------------------------------------------------------------------
def _order_times(rng, P: dict) -> tuple[np.ndarray, np.ndarray]:
    """(person index, epoch seconds) of every order, sorted by time."""
    arch, o1 = P["arch"], P["first_order"]
    b = np.flatnonzero((arch >= 0) & (arch < len(ARCHETYPES)))
    a = arch[b]
    room = np.maximum(T_END - o1[b], 0).astype(float)
    nb = len(b)
    k = np.ones(nb, np.int64)
    gap = np.zeros(nb)
    split = np.full(nb, -1)
    m = a == 1
    k[m] = 2 + (rng.random(m.sum()) < 0.35)
    gap[m] = 70 * DAY
    m = a == 2
    life = np.minimum(rng.exponential(500 * DAY, m.sum()), room[m])
    k[m] = 1 + rng.poisson(life / (14 * DAY))
    gap[m] = 14 * DAY
    m = a == 3
    life = room[m] * rng.uniform(0.5, 1.0, m.sum())
    k[m] = 1 + rng.poisson(life / (4 * DAY))
    gap[m] = 4 * DAY
    m = a == 4
    k1 = 1 + rng.integers(0, 3, m.sum())
    k[m] = k1 + 1 + rng.integers(0, 3, m.sum())
    split[m] = k1
    gap[m] = 35 * DAY
    grp, pos = _group_pos(k)
    gaps = rng.exponential(1.0, len(grp)) * gap[grp]
    gaps[pos == 0] = 0.0
    react = pos == split[grp]
    gaps[react] += 185 * DAY + rng.exponential(150 * DAY, int(react.sum()))
    cs = np.cumsum(gaps)
    starts = np.cumsum(k) - k
    t = o1[b][grp] + (cs - np.repeat(cs[starts], k)).astype(np.int64)
    person = b[grp]
    # scripted persons
    fp, ft = [], []
    for i in np.flatnonzero(P["forced"] >= 0):
        for days in FORCED[P["forced"][i]][1]:
            fp.append(i)
            ft.append(END_NOON - days * DAY)
    person = np.concatenate([person, np.array(fp, np.int64)])
    t = np.concatenate([t, np.array(ft, np.int64)])
    keep = (t <= T_END) & (t >= T0)
    person, t = person[keep], t[keep]
    order = np.lexsort((person, t))
    return person[order], t[order]


def _orders(seed: int, c: int, P: dict) -> dict:
    rng = _rng(seed, c, 1)
    person, t = _order_times(rng, P)
    n = len(t)
    # first order of each person
    first = np.zeros(n, bool)
    first[np.unique(person, return_index=True)[1]] = True  # rows are in time order
    protected = P["forced"][person] >= 0
    country = P["country"][person]
    currency = np.where(rng.random(n) < 0.04, rng.integers(0, len(CURRENCIES), n), CURRENCY_OF_COUNTRY[country])
    heavy = P["arch"][person] == 3
    total = np.round(np.exp(rng.normal(np.where(heavy, 3.2, 3.9), 0.55)) * CURRENCY_FACTOR[currency], 2)
    total = np.maximum(total, 4.99)
    items = 1 + rng.poisson(1.0, n)
    u = rng.random(n)
    status = np.zeros(n, np.int64)
    status[u < 0.10] = 4
    status[u < 0.07] = 3
    status[u < 0.04] = 2
    status[(u >= 0.10) & (u < 0.104)] = 1
    status[(t > T_END - 5 * DAY) & (rng.random(n) < 0.3)] = 1
    status[protected] = 0
    cu = rng.random(n)
    coupon = np.full(n, len(COUPONS))
    coupon[first & (cu < 0.25)] = 0
    later = ~first & (cu < 0.10)
    coupon[later] = rng.integers(1, len(COUPONS), int(later.sum()))
    coupon[status == 3] = len(COUPONS)
    pct = np.r_[COUPON_PCT, 0.0][coupon]
    discount = np.round(total * pct, 2)
    refunded = np.where(status == 3, total, 0.0)
    partial = status == 4
    refunded[partial] = np.round((total[partial] - discount[partial]) * rng.uniform(0.1, 0.6, int(partial.sum())), 2)
    later_channel = rng.choice(len(CHANNELS), n, p=(0.02, 0.02, 0.30, 0.03, 0.03, 0.20, 0.02, 0.38))
    channel = np.where(first | (rng.random(n) < 0.15), P["channel"][person], later_channel)
    # identifiers
    account = P["account"][person]
    has_email, has_phone = P["has_email"][person], P["has_phone"][person]
    r = rng.random(n)
    email_present = has_email & (~account | first | (r >= 0.25))
    phone_only = ~account & has_email & has_phone & ~first & (r < 0.05) & ~protected
    email_present &= ~phone_only
    phone_present = (has_phone & (rng.random(n) < 0.3)) | phone_only | ~has_email
    country_given = rng.random(n) >= 0.10
    email_variant = rng.choice(3, n, p=(0.85, 0.10, 0.05))
    phone_fmt = _phone_formats(rng, n, phone_present, country_given, P["country"][person] == 3)
    country_idx = _country_idx(rng, country, country_given)
    base = P["df"].select("email", "customer_id", "ph_cc", "ph_pre", "ph_sub", "ph_s3", "ph_s4", "ph_us",
                          "person_id")[person]
    seq = pl.Series(np.arange(n)).cast(pl.String).str.zfill(8)
    df = base.with_columns(
        seq=seq, em_ok=email_present, em_var=email_variant, gm=P["googlemail"][person],
        ph_fmt=phone_fmt, cidx=country_idx, st=status, cur=currency, ch=channel, cp=coupon,
    ).select(
        pl.concat_str([pl.lit(f"SO{c:03d}"), pl.col("seq")]).alias("order_id"),
        pl.lit(None, pl.String).alias("ordered_at"),
        pl.lit(pl.Series(total)).alias("total_amount"),
        "customer_id",
        pl.when(pl.col("em_ok")).then(_email_expr(pl.col("email"), pl.col("em_var"), pl.col("gm"))).alias("email"),
        _phone_expr(pl.col("ph_fmt")).alias("phone"),
        _pick(STATUSES, pl.col("st")).alias("status"),
        _pick(CURRENCIES, pl.col("cur")).alias("currency"),
        pl.lit(pl.Series(discount)).alias("discount_amount"),
        pl.lit(pl.Series(refunded)).alias("refunded_amount"),
        _pick(CHANNELS, pl.col("ch")).alias("channel"),
        _pick(COUPONS, pl.col("cp")).alias("coupon_code"),
        pl.lit(pl.Series(items.astype(np.int64))).alias("items_count"),
        _pick(COUNTRY_VARIANT_FLAT, pl.col("cidx")).alias("country"),
        "person_id",
    )
    return dict(n=n, person=person, t=t, first=first, status=status, channel=channel,
                protected=protected, df=_with_reasons(df, seed, c, 11, "cancel_reason", status >= 2, CANCEL_REASONS, 0.7),
                country=country, rng=rng)


def _with_reasons(df: pl.DataFrame, seed: int, c: int, stream: int, column: str, eligible: np.ndarray,
                  reasons: tuple, share: float) -> pl.DataFrame:
    """``df`` with ``column``: for ``share`` of the ``eligible`` rows a reason drawn by its weight,
    from a random stream of its own; inserted before ``person_id``."""
    rng = _rng(seed, c, stream)
    n = df.height
    texts, weights = zip(*reasons)
    pick = rng.choice(len(texts), n, p=np.array(weights) / sum(weights))
    given = eligible & (rng.random(n) < share)
    values = pl.Series(column, np.array(texts, dtype=object)[pick], dtype=pl.String)
    out = df.with_columns(pl.when(pl.lit(pl.Series(given))).then(values).otherwise(None).alias(column))
    cols = [c for c in df.columns if c != "person_id"] + [column] + (["person_id"] if "person_id" in df.columns else [])
    return out.select(cols)


def _write_orders(W: _Writer, c: int, O: dict) -> None:
    rng, df, t = O["rng"], O["df"], O["t"]
    n = O["n"]
    in_csv = t < SPLIT_2025
    german = np.zeros(n, bool)
    if c == 0:
        german = in_csv & (t >= _epoch(2024, 10, 1)) & np.isin(O["country"], (0, 1))
    main = in_csv & ~german
    # messiness in the main CSV: unparseable timestamps, empty keys, ragged rows
    bad_ts, bad_key, ragged = _spoil(rng, main & ~O["protected"], (0.0005, 0.0003, 0.0003))
    styles = rng.choice(4, n, p=(0.55, 0.20, 0.15, 0.10))
    cols = [col for col in df.columns if col != "person_id"]

    m_idx = np.flatnonzero(main & ~ragged)
    if len(m_idx) or c == 0:
        part = df[m_idx].with_columns(ordered_at=_format_ts_mixed(t[m_idx], styles[m_idx]))
        part = part.with_columns(
            ordered_at=pl.when(pl.lit(pl.Series(bad_ts[m_idx]))).then(pl.lit("not-a-date")).otherwise("ordered_at"),
            order_id=pl.when(pl.lit(pl.Series(bad_key[m_idx]))).then(None).otherwise("order_id"),
        ).select(cols)
        rel = f"orders/orders_2023_2024_part{c:03d}.csv"
        with open(W.path(rel), "wb") as fh:
            part.write_csv(fh, float_precision=2)
            r_idx = np.flatnonzero(ragged)
            if len(r_idx):
                bad = df[r_idx].with_columns(ordered_at=_format_ts(t[r_idx], TS_Z)).select(cols)
                bad.with_columns(note=pl.lit("see attachment")).write_csv(fh, include_header=False, float_precision=2)
        W.count("orders", len(m_idx) + int(ragged.sum()))
        if c == 0:  # the same file delivered again under another name
            shutil.copyfile(W.out / rel, W.path("orders/orders_2023_2024_part000_resend.csv"))
    g_idx = np.flatnonzero(german)
    if len(g_idx):
        gdf = df[g_idx].with_columns(
            ordered_at=_format_ts(t[g_idx], TS_GERMAN),
            country=_pick(("Deutschland", "DE", "Österreich", "AT"),
                          pl.lit(O["country"][g_idx] * 2 + (rng.random(len(g_idx)) < 0.3))),
        ).select(cols)
        text = gdf.write_csv(separator=";", decimal_comma=True, float_precision=2, line_terminator="\r\n")
        with open(W.path("orders/bestellungen_shop_de_2024q4.csv"), "wb") as fh:
            fh.write(text.encode("cp1252"))
        W.count("orders", len(g_idx))
    p_idx = np.flatnonzero(~in_csv)
    if len(p_idx):
        pdf = df[p_idx].with_columns(
            ordered_at=pl.from_epoch(pl.lit(t[p_idx]), time_unit="s").dt.replace_time_zone("UTC"),
            items_count=pl.col("items_count").cast(pl.Int32),
        ).select(cols)
        pdf.write_parquet(W.path(f"orders/orders_2025_part{c:03d}.parquet"), compression="zstd")
        W.count("orders", len(p_idx))


# --------------------------------------------------------------------------
# CRM contacts and deals
# --------------------------------------------------------------------------
def _contacts(seed: int, c: int, chunk: int, P: dict) -> dict:
    rng = _rng(seed, c, 3)
    crm = np.flatnonzero(P["has_crm"])
    dup = crm[(rng.random(len(crm)) < 0.05)]
    person = np.concatenate([crm, dup])
    is_dup = np.r_[np.zeros(len(crm), bool), np.ones(len(dup), bool)]
    n = len(person)
    created = np.where(P["web"][person], P["ident"][person] + rng.integers(60, 3 * 3600, n), P["first_seen"][person])
    created = np.minimum(created, T_END - 3600)
    later = (rng.random(n) * np.minimum(300 * DAY, T_END - 60 - created)).astype(np.int64)
    created = np.where(is_dup, created + later, created)
    order = np.lexsort((is_dup, person, created))
    person, is_dup, created = person[order], is_dup[order], created[order]
    contact_num = 100_000_000 + c * 2 * chunk + np.arange(n)
    primary_id = np.full(P["n"], -1, np.int64)
    primary_id[person[~is_dup]] = contact_num[~is_dup]
    dup_id = np.full(P["n"], -1, np.int64)
    dup_id[person[is_dup]] = contact_num[is_dup]
    forced = P["forced"][person] >= 0
    domain_is_gmail = P["df"]["email"].str.ends_with("@gmail.com").fill_null(False).to_numpy()[person]
    variant = np.where(is_dup, rng.choice(3, n, p=(0.2, 0.5, 0.3)), rng.choice(3, n, p=(0.85, 0.10, 0.05)))
    googlemail = is_dup & domain_is_gmail & (rng.random(n) < 0.7)
    dup_phone_only = is_dup & P["has_phone"][person] & (rng.random(n) < 0.15)
    email_present = P["has_email"][person] & ~dup_phone_only
    phone_present = P["has_phone"][person] & ((rng.random(n) < 0.85) | ~P["has_email"][person] | dup_phone_only)
    country_given = (rng.random(n) >= 0.08) | forced
    phone_fmt = _phone_formats(rng, n, phone_present, country_given, P["country"][person] == 3)
    country_idx = _country_idx(rng, P["country"][person], country_given)
    # referrals: name another (buying, non-scripted) person's address
    referral = (P["channel"][person] == CHANNELS.index("referral")) & ~forced
    pool = np.flatnonzero(P["buyer"] & P["has_email"] & (P["forced"] < 0))
    referrer = np.full(n, -1)
    if len(pool):
        referrer[referral] = pool[rng.integers(0, len(pool), int(referral.sum()))]
    referrer[referrer == person] = -1
    # deals per person (decided here so the CRM stage can show open deals)
    deal_p = np.where(P["company"] < len(COMPANIES), 0.5, 0.06)
    has_deal = P["has_crm"] & (rng.random(P["n"]) < deal_p) & (P["forced"] < 0)
    n_deals = np.where(has_deal, 1 + (rng.random(P["n"]) < 0.25), 0)
    if P["n"] >= 20:
        n_deals[F_OPPORTUNITY] = 1
    buyer_now = P["buyer"][person] & (P["first_order"][person] <= created)
    score = P["lead_score"][person]
    stage = np.select(
        [buyer_now, n_deals[person] > 0, score >= 60, score >= 40, rng.random(n) < 0.3],
        [0, 1, 2, 3, 4], 5)
    lower_name = rng.random(n) < 0.03
    updated = created + (rng.random(n) * (T_END - created)).astype(np.int64)
    styles_c = rng.choice(4, n, p=(0.55, 0.20, 0.15, 0.10))
    styles_u = rng.choice(4, n, p=(0.55, 0.20, 0.15, 0.10))
    base = P["df"].select("person_id", "email", "first_name", "last_name", "company", "city",
                          "ph_cc", "ph_pre", "ph_sub", "ph_s3", "ph_s4", "ph_us")[person]
    ref_email = P["df"]["email"].gather(pl.Series(np.where(referrer >= 0, referrer, 0)))
    df = base.with_columns(
        cid=pl.Series(contact_num).cast(pl.String), em_ok=email_present, em_var=variant, gm=googlemail,
        ph_fmt=phone_fmt, cidx=country_idx, stg=stage, src=P["channel"][person], score=score,
        consent=P["consent"][person], lower=lower_name, ref_ok=referrer >= 0, ref=ref_email,
        city_ok=rng.random(n) >= 0.1,
    ).select(
        pl.col("cid").alias("contact_id"),
        pl.lit(None, pl.String).alias("created_at"),
        pl.when(pl.col("em_ok")).then(_email_expr(pl.col("email"), pl.col("em_var"), pl.col("gm"))).alias("email"),
        _phone_expr(pl.col("ph_fmt")).alias("phone"),
        pl.when(pl.col("lower")).then(pl.col("first_name").str.to_lowercase()).otherwise("first_name").alias("first_name"),
        pl.when(pl.col("lower")).then(pl.col("last_name").str.to_uppercase()).otherwise("last_name").alias("last_name"),
        "company",
        _pick(COUNTRY_VARIANT_FLAT, pl.col("cidx")).alias("country"),
        pl.when(pl.col("city_ok")).then("city").alias("city"),
        _pick(("customer", "opportunity", "salesqualifiedlead", "marketingqualifiedlead", "subscriber", "lead"),
              pl.col("stg")).alias("crm_lifecycle_stage"),
        _pick(CHANNELS, pl.col("src")).alias("lead_source"),
        pl.col("score").alias("lead_score"),
        pl.when(pl.col("consent")).then(pl.lit("true")).otherwise(pl.lit("false")).alias("marketing_consent"),
        pl.lit(None, pl.String).alias("updated_at"),
        pl.when(pl.col("ref_ok")).then(pl.col("ref")).alias("referred_by_email"),
        "person_id",
    )
    df = df.with_columns(created_at=_format_ts_mixed(created, styles_c),
                         updated_at=_format_ts_mixed(updated, styles_u))
    return dict(n=n, person=person, created=created, updated=updated, df=df, forced=forced, rng=rng,
                primary_id=primary_id, dup_id=dup_id, n_deals=n_deals)


def _write_contacts(W: _Writer, c: int, C: dict) -> None:
    rng, df, n = C["rng"], C["df"], C["n"]
    bad_ts, bad_key, ragged = _spoil(rng, ~C["forced"], (0.0005, 0.0003, 0.0003))
    cols = [col for col in df.columns if col != "person_id"]
    good = df.with_columns(
        created_at=pl.when(pl.lit(pl.Series(bad_ts))).then(pl.lit("not-a-date")).otherwise("created_at"),
        contact_id=pl.when(pl.lit(pl.Series(bad_key))).then(None).otherwise("contact_id"),
    ).filter(pl.lit(pl.Series(~ragged))).select(cols)
    with open(W.path(f"crm_contacts/contacts_part{c:03d}.csv"), "wb") as fh:
        good.write_csv(fh)
        if ragged.any():
            df.filter(pl.lit(pl.Series(ragged))).select(cols).with_columns(x=pl.lit("imported")).write_csv(
                fh, include_header=False)
    W.count("crm_contacts", n)


def _deals(seed: int, c: int, chunk: int, P: dict, C: dict) -> dict:
    rng = _rng(seed, c, 5)
    grp, _ = _group_pos(C["n_deals"])
    person = grp
    n = len(person)
    contact_created = np.zeros(P["n"], np.int64)
    contact_created[C["person"]] = C["created"]
    created = np.minimum(contact_created[person] + rng.exponential(30 * DAY, n).astype(np.int64), T_END - 3600)
    stage = rng.choice(3, n, p=(0.3, 0.4, 0.3))
    closed = created + rng.exponential(25 * DAY, n).astype(np.int64)
    stage = np.where(closed > T_END, 0, stage)
    forced = P["forced"][person] == F_OPPORTUNITY
    stage[forced] = 0
    created[forced] = T_END - 30 * DAY
    cid = np.where((C["dup_id"][person] >= 0) & (rng.random(n) < 0.1), C["dup_id"][person], C["primary_id"][person])
    amount = np.round(np.exp(rng.normal(8.0, 0.8, n)), 2)
    currency = np.where(rng.random(n) < 0.85, 0, CURRENCY_OF_COUNTRY[P["country"][person]])
    missing_contact, = _spoil(rng, ~forced, (0.001,), minimum=0)
    order = np.argsort(created, kind="stable")
    df = pl.DataFrame({
        "deal_id": pl.Series(100_000 + c * 2 * chunk + np.arange(n)).cast(pl.String),
        "cid": cid, "st": stage, "cur": currency, "amount": amount, "miss": missing_contact,
        "person_id": P["df"]["person_id"].gather(pl.Series(person)) if n else pl.Series([], dtype=pl.String),
    }).select(
        pl.concat_str([pl.lit("D"), pl.col("deal_id")]).alias("deal_id"),
        pl.when(pl.col("miss")).then(None).otherwise(pl.col("cid").cast(pl.String)).alias("contact_id"),
        pl.lit(_format_ts(created, TS_Z)).alias("created_at"),
        _pick(DEAL_STAGES, pl.col("st")).alias("deal_stage"),
        "amount",
        _pick(CURRENCIES, pl.col("cur")).alias("currency"),
        pl.when(pl.col("st") > 0).then(pl.lit(_format_ts(closed, TS_Z))).alias("closed_at"),
        "person_id",
    )
    df = _with_reasons(df, seed, c, 12, "lost_reason", stage == 2, LOST_REASONS, 0.8)[order]
    return dict(n=n, df=df)


# --------------------------------------------------------------------------
# Web events
# --------------------------------------------------------------------------
def _web(seed: int, c: int, chunk: int, P: dict, O: dict) -> dict:
    rng = _rng(seed, c, 2)
    n = P["n"]
    v = int(round(0.4 * n))
    forced = P["forced"]
    W_ = np.flatnonzero(P["web"])
    nw = len(W_)
    # devices: one per web person, a second for some, one per anonymous visitor
    two = W_[(rng.random(nw) < 0.25) & (forced[W_] < 0)]
    dev0 = np.full(n, -1)
    dev0[W_] = np.arange(nw)
    dev1 = np.full(n, -1)
    dev1[two] = nw + np.arange(len(two))
    vis_dev = nw + len(two) + np.arange(v)
    n_dev = nw + len(two) + v
    # shared devices: some second devices are another person's first device. Both
    # persons leave their e-mail address on it (the owner when signing up, the
    # other one when buying), so the device is seen with two addresses.
    shared = two[(rng.random(len(two)) < 0.08) & P["has_email"][two]]
    borrower = np.zeros(n, bool)
    cand = W_[(forced[W_] < 0) & P["has_email"][W_]]
    if len(cand) > 1 and len(shared):
        other = cand[rng.integers(0, len(cand), len(shared))]
        ok = other != shared
        dev1[shared[ok]] = dev0[other[ok]]
        borrower[shared[ok]] = True
    anon = "anon_" + _hex(rng.integers(0, 256, (n_dev, 8), dtype=np.uint8))
    dev_type = rng.choice(3, n_dev, p=(0.55, 0.38, 0.07))
    vis_country = rng.choice(len(COUNTRIES), v, p=COUNTRY_P)
    vis_first = T0 + ((T_END - T0) * rng.random(v) ** 0.8).astype(np.int64)

    # last activity of known persons (for browsing)
    last_order = np.full(n, -1, np.int64)
    np.maximum.at(last_order, O["person"], O["t"])
    act_end = np.where(last_order > 0, last_order + 60 * DAY, P["ident"] + 200 * DAY)
    act_end = np.minimum(act_end, T_END)

    S = {k: [] for k in ("person", "dev", "anchor", "len", "kind", "ident", "cart", "login", "channel", "borrowed")}

    def add(person, dev, anchor, length, kind, ident=None, cart=None, login=None, channel=None, borrowed=None):
        m = len(person)
        S["person"].append(person)
        S["dev"].append(dev)
        S["anchor"].append(np.asarray(anchor, np.int64))
        S["len"].append(np.asarray(length, np.int64))
        S["kind"].append(np.full(m, kind))
        S["ident"].append(np.zeros(m, np.int64) if ident is None else ident)
        S["cart"].append(np.zeros(m, bool) if cart is None else cart)
        S["login"].append(np.zeros(m, bool) if login is None else login)
        S["channel"].append(np.full(m, -1) if channel is None else channel)
        S["borrowed"].append(np.zeros(m, bool) if borrowed is None else borrowed)

    # 0: first visit (acquisition), anonymous
    L = 1 + rng.poisson(1.5, nw)
    add(W_, dev0[W_], P["first_seen"][W_] + L * 45, L, 0, channel=P["channel"][W_])
    # 1: identification (sign-up, newsletter, lead form, trial start)
    ident_ev = np.where(P["account"][W_], EV_SIGNUP,
                        rng.choice([EV_NEWS, EV_LEADFORM, EV_TRIAL], nw, p=(0.45, 0.40, 0.15)))
    fw = forced[W_]
    ident_ev = np.where(fw >= 0, EV_NEWS, ident_ev)
    ident_ev = np.where(fw == F_TRIAL, EV_TRIAL, ident_ev)
    ident_ev = np.where(fw == F_OPPORTUNITY, EV_LEADFORM, ident_ev)
    L = 2 + rng.poisson(1.0, nw)
    add(W_, dev0[W_], np.maximum(P["ident"][W_], P["first_seen"][W_] + 3600), L, 1, ident=ident_ev)
    # 2: browsing, mostly anonymous (some start with a login)
    bw = W_[forced[W_] < 0]
    k = rng.poisson(2.8, len(bw))
    grp, _ = _group_pos(k)
    bp = bw[grp]
    m = len(bp)
    start = P["first_seen"][bp] + (rng.random(m) * np.maximum(act_end[bp] - P["first_seen"][bp], 0)).astype(np.int64)
    L = 1 + rng.poisson(2.5, m)
    add(bp, dev0[bp], start, L, 2, cart=rng.random(m) < 0.15,
        login=P["account"][bp] & (L >= 2) & (rng.random(m) < 0.3),
        channel=np.where(rng.random(m) < 0.15, CHANNELS.index("email"), -1))
    # 3: purchases (most orders of web persons have a web session)
    op = O["person"]
    has = P["web"][op] & ((rng.random(O["n"]) < 0.85) | O["protected"])
    oi = np.flatnonzero(has)
    pp = op[oi]
    use1 = (dev1[pp] >= 0) & (rng.random(len(oi)) < 0.35)
    L = np.minimum(3 + rng.poisson(1.2, len(oi)), 7)
    add(pp, np.where(use1, dev1[pp], dev0[pp]), O["t"][oi], L, 3,
        login=P["account"][pp] & (L >= 4), channel=O["channel"][oi], borrowed=use1 & borrower[pp])
    # 4: anonymous visitors who never identify
    k = 1 + rng.poisson(1.2, v)
    grp, _ = _group_pos(k)
    m = len(grp)
    start = vis_first[grp] + (rng.random(m) * np.minimum(120 * DAY, T_END - vis_first[grp])).astype(np.int64)
    L = 1 + rng.poisson(2.5, m)
    add(n + grp, vis_dev[grp], start, L, 4, cart=rng.random(m) < 0.1,
        channel=np.where(rng.random(m) < 0.5, rng.choice(len(CHANNELS), m, p=CHANNEL_P), -1))

    s = {key: np.concatenate(val) for key, val in S.items()}
    keep = (s["anchor"] <= T_END) & (s["anchor"] >= T0 + 600)
    s = {key: val[keep] for key, val in s.items()}
    ns = len(s["anchor"])
    e_s, pos = _group_pos(s["len"])
    ne = len(e_s)
    length = s["len"][e_s]
    rev = length - 1 - pos
    kind = s["kind"][e_s]
    jitter = rng.integers(0, 40, ne)
    jitter[rev == 0] = 0
    e_ts = s["anchor"][e_s] - rev * 45 - jitter
    ev = np.zeros(ne, np.int64)
    last = rev == 0
    ev[(kind == 1) & last] = s["ident"][e_s][(kind == 1) & last]
    ev[np.isin(kind, (2, 4)) & last & s["cart"][e_s]] = EV_CART
    ev[(kind == 3) & (rev == 2)] = EV_CART
    ev[(kind == 3) & (rev == 1)] = EV_CHECKOUT
    ev[(kind == 3) & last] = EV_PURCHASE
    ev[np.isin(kind, (2, 3)) & (pos == 0) & s["login"][e_s]] = EV_LOGIN
    e_person = s["person"][e_s]
    known = e_person < n
    kp = np.where(known, e_person, 0)
    account = known & P["account"][kp]
    has_email = known & P["has_email"][kp]
    user_id_ok = account & ((kind == 3) | ((kind == 2) & s["login"][e_s]) | ((kind == 1) & last & (ev == EV_SIGNUP)))
    email_ok = has_email & (
        ((kind == 1) & last) | ((kind == 3) & last & (~account | s["borrowed"][e_s] | (rng.random(ne) < 0.5))))
    e_dev = s["dev"][e_s]
    # malformed rows (not for scripted persons)
    bad_ts, no_anon = _spoil(rng, ~(known & (forced[kp] >= 0)), (0.0003, 0.0002))
    order = np.argsort(e_ts, kind="stable")
    country = np.where(known, P["country"][kp], vis_country[np.clip(e_person - n, 0, None)])
    sess_channel = s["channel"][e_s]
    first_in_session = pos == 0
    chan = np.where(first_in_session & (sess_channel >= 0), sess_channel, len(CHANNELS))
    page = np.where(ev == EV_PAGE, rng.integers(0, len(PAGES), ne), len(PAGES) + ev)
    # truth: anonymous_id -> person (null when more than one person used it)
    # (from sessions: every kept session has events on its device)
    span = n + v + 1
    pairs = np.unique(s["dev"] * span + s["person"])
    p_dev, p_person = pairs // span, pairs % span
    devs, counts = np.unique(p_dev, return_counts=True)
    owner = np.full(n_dev, -1)
    owner[p_dev] = p_person
    owner[devs[counts > 1]] = -2
    truth_dev = devs
    pid_all = pl.concat([P["df"]["person_id"],
                         "A" + pl.Series(c * chunk + np.arange(v)).cast(pl.String).str.zfill(9)])
    t_owner = owner[truth_dev]
    truth = pl.DataFrame({
        "source": pl.Series(["web_events"] * len(truth_dev), dtype=pl.String),
        "source_key": anon.gather(pl.Series(truth_dev)),
        "person_id": pid_all.gather(pl.Series(np.where(t_owner >= 0, t_owner, 0))),
    }).with_columns(person_id=pl.when(pl.lit(pl.Series(t_owner >= 0))).then("person_id"))
    persons_vis = pl.DataFrame({
        "person_id": pid_all[n:],
        "country": np.array(COUNTRIES)[vis_country],
        "first_seen_at": vis_first,
    })
    arrays = dict(ts=e_ts, ev=ev, dev=e_dev, person=e_person, kp=kp, known=known, uid=user_id_ok,
                  em=email_ok, chan=chan, page=page, country=country, sess=e_s, bad_ts=bad_ts,
                  no_anon=no_anon)
    arrays = {key: val[order] for key, val in arrays.items()}
    return dict(n=ne, sessions=ns, a=arrays, anon=anon, dev_type=dev_type, truth=truth,
                persons_vis=persons_vis, rng=rng)


def _web_frame(c: int, P: dict, E: dict, lo: int, hi: int, style: int) -> pl.DataFrame:
    a = {key: val[lo:hi] for key, val in E["a"].items()}
    m = hi - lo
    pdf = P["df"].select("email", "customer_id")[a["kp"]]
    cvar = np.where(np.arange(m) % 3 == 0, 1, 0)  # ISO code, sometimes the English name
    df = pl.DataFrame({
        "eid": np.arange(lo, hi), "ev": a["ev"], "dev": a["dev"], "chan": a["chan"], "page": a["page"],
        "cidx": a["country"] * N_CVAR + cvar, "uid": a["uid"], "em": a["em"], "sess": a["sess"],
        "bad_ts": a["bad_ts"], "no_anon": a["no_anon"],
        "dtype": E["dev_type"][a["dev"]],
    }).with_columns(pdf, ts=_format_ts(a["ts"], style), anon=E["anon"].gather(pl.Series(a["dev"])))
    return df.select(
        pl.concat_str([pl.lit(f"e{c:03d}-"), pl.col("eid").cast(pl.String)]).alias("event_id"),
        pl.when(pl.col("bad_ts")).then(pl.lit("not-a-date")).otherwise("ts").alias("event_at"),
        pl.when(pl.col("no_anon")).then(pl.lit("")).otherwise("anon").alias("anonymous_id"),
        _pick(EVENTS, pl.col("ev")).alias("event_name"),
        pl.when(pl.col("uid")).then("customer_id").alias("user_id"),
        pl.when(pl.col("em")).then("email").alias("email"),
        pl.concat_str([pl.lit(SHOP), _pick(PAGES + EVENT_PAGES, pl.col("page"))]).alias("page_url"),
        _pick(REFERRER, pl.col("chan")).alias("referrer"),
        _pick(UTM_SOURCE, pl.col("chan")).alias("utm_source"),
        _pick(UTM_MEDIUM, pl.col("chan")).alias("utm_medium"),
        _pick(UTM_CAMPAIGN, pl.col("chan")).alias("utm_campaign"),
        _pick(DEVICES, pl.col("dtype")).alias("device"),
        _pick(COUNTRY_VARIANT_FLAT, pl.col("cidx")).alias("country"),
        pl.concat_str([pl.lit(f"s{c:03d}-"), pl.col("sess").cast(pl.String)]).alias("session_id"),
    )


def _write_web(W: _Writer, c: int, P: dict, E: dict, slice_rows: int = 1_000_000) -> None:
    ts = E["a"]["ts"]
    ne = E["n"]
    cut = int(np.searchsorted(ts, _epoch(2023, 4, 1))) if c == 0 else 0
    if cut:
        raw, gz = _gzip_open(W.path(f"web_events/events_2023q1_part{c:03d}.ndjson.gz"))
        with raw, gz:
            for lo in range(0, cut, slice_rows):
                gz.write(_web_frame(c, P, E, lo, min(lo + slice_rows, cut), TS_OFFSET).write_ndjson().encode())
    with open(W.path(f"web_events/events_part{c:03d}.ndjson"), "wb") as fh:
        for lo in range(cut, ne, slice_rows):
            _web_frame(c, P, E, lo, min(lo + slice_rows, ne), TS_Z).write_ndjson(fh)
        if c == 0:  # an export cut off mid-line
            fh.write(b'{"event_id":"e000-truncated","event_at":"2025-12-31T20:59:59Z","anonymous_id":"anon_\n')
    W.count("web_events", ne + (1 if c == 0 else 0))


# --------------------------------------------------------------------------
# The same facts as vendor exports (--dialect vendor) or as canonical files of exactly the
# facts vendor exports carry (--dialect vendor-equivalent; for testing the dialects)
# --------------------------------------------------------------------------
def _vendor_orders(W: _Writer, c: int, O: dict, P: dict, equivalent: bool) -> None:
    from tools.demo import vendor_exports as vendor

    rng, t = O["rng"], O["t"]
    bad_ts, = _spoil(rng, ~O["protected"], (0.0005,))
    # a shop account's orders carry its email in Shopify (the account id itself is not exported)
    person_email = P["df"]["email"].gather(pl.Series(O["person"]))
    # Shopify's export carries no cancel reason: the equivalent canonical files leave it out too
    df = O["df"].drop("person_id", "cancel_reason").with_columns(
        email=pl.when(pl.col("email").is_null() & pl.col("customer_id").is_not_null())
        .then(pl.lit(person_email)).otherwise("email"),
        total_amount=pl.col("total_amount").round(2))
    if equivalent:
        out = vendor.canonical_equivalent("orders", df, {"ordered_at": t}, bad_ts)
        out.write_csv(W.path(f"orders/orders_equivalent_part{c:03d}.csv"), float_precision=2)
    else:
        rel = f"orders/shopify_orders_export_part{c:03d}.csv"
        vendor.shopify_orders(df, t, bad_ts).write_csv(W.path(rel))
        if c == 0:  # re-delivered under another name
            shutil.copyfile(W.out / rel, W.path("orders/shopify_orders_export_part000 (1).csv"))
    W.count("orders", df.height)


def _vendor_contacts(W: _Writer, c: int, C: dict, equivalent: bool) -> None:
    from tools.demo import vendor_exports as vendor

    bad_ts, = _spoil(C["rng"], ~C["forced"], (0.0005,))
    df = C["df"].drop("person_id")
    if equivalent:
        out = vendor.canonical_equivalent("crm_contacts", df, {"created_at": C["created"],
                                                               "updated_at": C["updated"]}, bad_ts)
        out.write_csv(W.path(f"crm_contacts/contacts_equivalent_part{c:03d}.csv"))
    else:
        vendor.hubspot_contacts(df, C["created"], C["updated"], bad_ts).write_csv(
            W.path(f"crm_contacts/hubspot-crm-exports-all-contacts-part{c:03d}.csv"))
    W.count("crm_contacts", df.height)


def _vendor_web(W: _Writer, c: int, P: dict, E: dict, equivalent: bool, slice_rows: int = 200_000) -> None:
    from tools.demo import vendor_exports as vendor

    ts, bad = E["a"]["ts"], E["a"]["bad_ts"]
    rel = f"web_events/{'events_equivalent' if equivalent else 'ga4_events'}_part{c:03d}.ndjson"
    with open(W.path(rel), "wb") as fh:
        for lo in range(0, E["n"], slice_rows):
            hi = min(lo + slice_rows, E["n"])
            frame = _web_frame(c, P, E, lo, hi, TS_Z)
            if equivalent:
                vendor.canonical_equivalent("web_events", frame, {"event_at": ts[lo:hi]}, bad[lo:hi]).write_ndjson(fh)
            else:
                fh.write(vendor.ga4_events(frame, ts[lo:hi], bad[lo:hi]))
        if c == 0:  # an export cut off mid-line
            fh.write(b'{"event_timestamp":"1767214799000000","event_name":"page_view","user_pseudo_id":"anon_\n')
    W.count("web_events", E["n"] + (1 if c == 0 else 0))


# --------------------------------------------------------------------------
# Surveys
# --------------------------------------------------------------------------
def _surveys(seed: int, c: int, P: dict, O: dict, C: dict) -> tuple[pl.DataFrame, pl.DataFrame]:
    rng = _rng(seed, c, 4)
    n = P["n"]
    purchase = np.isin(O["status"], (0, 4))
    op, ot = O["person"][purchase], O["t"][purchase]
    # orders grouped by person: op is sorted by time; sort by person for ranges
    srt = np.lexsort((ot, op))
    op, ot = op[srt], ot[srt]
    cnt = np.bincount(op, minlength=n)
    start = np.cumsum(cnt) - cnt
    buyers = np.flatnonzero((cnt > 0) & (P["forced"] < 0))
    resp = buyers[rng.random(len(buyers)) < 0.30]
    k = 1 + (rng.random(len(resp)) < 0.3)
    grp, _ = _group_pos(k)
    rp = resp[grp]
    pick = start[rp] + (rng.random(len(rp)) * cnt[rp]).astype(np.int64)
    rt = ot[pick] + rng.integers(2 * DAY, 14 * DAY, len(rp))
    arch = P["arch"][rp]
    fan = np.isin(arch, (2, 3))
    cls = np.where(rng.random(len(rp)) < np.where(fan, 0.55, 0.35), 2,
                   np.where(rng.random(len(rp)) < 0.35, 0, 1))
    score = np.select([cls == 2, cls == 1], [rng.integers(9, 11, len(rp)), rng.integers(7, 9, len(rp))],
                      rng.integers(0, 7, len(rp)))
    if n >= 20:
        rp = np.r_[rp, F_ADVOCATE]
        rt = np.r_[rt, END_NOON - 15 * DAY]
        score = np.r_[score, 10]
    nps = dict(person=rp, t=rt, score=score, type=np.zeros(len(rp), np.int64))
    # CES: some buyers after an order, a few leads after signing up
    cb = buyers[rng.random(len(buyers)) < 0.12]
    pick = start[cb] + (rng.random(len(cb)) * cnt[cb]).astype(np.int64)
    ct = ot[pick] + rng.integers(DAY, 5 * DAY, len(cb))
    leads = np.flatnonzero((P["arch"] == LEAD) & (P["forced"] < 0) & (rng.random(n) < 0.03))
    lt = P["ident"][leads] + rng.integers(DAY, 30 * DAY, len(leads))
    cp = np.r_[cb, leads]
    ces = dict(person=cp, t=np.r_[ct, lt], score=rng.choice(np.arange(1, 8), len(cp),
                                                            p=(0.05, 0.08, 0.12, 0.2, 0.25, 0.2, 0.1)),
               type=np.ones(len(cp), np.int64))
    out = []
    seq0 = 0
    for part_no, part in enumerate((nps, ces)):
        keep = part["t"] <= T_END
        part = {key: val[keep] for key, val in part.items()}
        order = np.argsort(part["t"], kind="stable")
        part = {key: val[order] for key, val in part.items()}
        m = len(part["t"])
        pp = part["person"]
        by_contact = (C["primary_id"][pp] >= 0) & ((rng.random(m) < 0.4) | ~P["has_email"][pp])
        comments = NPS_COMMENTS if part_no == 0 else CES_COMMENTS
        cidx = np.where(rng.random(m) < 0.4, rng.integers(0, len(comments), m), len(comments))
        bad, = _spoil(rng, P["forced"][pp] < 0, (0.001,), minimum=0)
        df = P["df"].select("email", "person_id", gm=pl.lit(False))[pp].with_columns(
            rid=pl.Series(seq0 + np.arange(m)).cast(pl.String).str.zfill(8),
            ts=_format_ts_mixed(part["t"], rng.choice(3, m, p=(0.6, 0.3, 0.1))),
            typ=part["type"], sc=part["score"], byc=by_contact,
            cid=pl.Series(C["primary_id"][pp]).cast(pl.String), var=rng.choice(3, m, p=(0.8, 0.15, 0.05)),
            cm=cidx, bad=bad,
        ).select(
            pl.concat_str([pl.lit(f"R{c:03d}-"), pl.col("rid")]).alias("response_id"),
            pl.col("ts").alias("responded_at"),
            _pick(("nps", "ces"), pl.col("typ")).alias("survey_type"),
            pl.when(pl.col("bad")).then(None).otherwise(pl.col("sc")).cast(pl.Int64).alias("score"),
            pl.when(~pl.col("byc")).then(_email_expr(pl.col("email"), pl.col("var"), pl.col("gm"))).alias("email"),
            pl.when(pl.col("byc")).then("cid").alias("contact_id"),
            _pick(comments, pl.col("cm")).alias("comment"),
            "person_id",
        )
        seq0 += m
        out.append(df)
    return out[0], out[1]


# --------------------------------------------------------------------------
# Global sources: fx rates and marketing spend
# --------------------------------------------------------------------------
def _days() -> np.ndarray:
    first = (FIRST_DAY - dt.date(1970, 1, 1)).days
    last = (LAST_DAY - dt.date(1970, 1, 1)).days
    return np.arange(first, last + 1, dtype=np.int64) * DAY + 12 * 3600


def _fx(seed: int) -> tuple[pl.DataFrame, np.ndarray]:
    rng = _rng(seed, 1_000_000, 0)
    days = _days()
    nd = len(days)
    start = {"USD": 0.93, "GBP": 1.16, "CHF": 1.02}
    rates = {"EUR": np.ones(nd)}
    for cur, s0 in start.items():
        # log rate: a mean-reverting AR(1) walk around s0 (a few per cent either way)
        walk = lfilter([1.0], [1.0, -0.99], rng.normal(0, 0.004, nd))
        rates[cur] = np.round(s0 * np.exp(walk), 6)
    frames = [pl.DataFrame({"rate_date": _format_ts(days, DATE_ISO), "currency": [cur] * nd,
                            "rate_to_reporting": rates[cur]}) for cur in CURRENCIES]
    return pl.concat(frames), rates["USD"]


def _spend(seed: int, customers: int, usd: np.ndarray) -> pl.DataFrame:
    rng = _rng(seed, 1_000_000, 1)
    days = _days()
    nd = len(days)
    frames = []
    trend = 0.7 + 0.6 * np.arange(nd) / nd
    weekday = np.where(((days // DAY) + 3) % 7 >= 5, 0.8, 1.05)  # 1970-01-01 was a Thursday
    for ci, ch in enumerate(SPEND_CHANNELS):
        eur = SPEND_BASE[ci] * customers / 1000 * trend * weekday * np.exp(rng.normal(0, 0.25, nd))
        usd_billed = ch == "paid_social"
        amount = np.round(eur / usd if usd_billed else eur, 2)
        year = (days // DAY * DAY).astype("datetime64[s]").astype("datetime64[Y]").astype(int) + 1970
        frames.append(pl.DataFrame({
            "ts": days, "channel": [ch] * nd, "spend": amount,
            "campaign": pl.Series([f"{ch}_always_on_"] * nd) + pl.Series(year).cast(pl.String),
            "currency": ["USD" if usd_billed else "EUR"] * nd,
        }))
    return pl.concat(frames).sort("ts", "channel", maintain_order=True)


# --------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------
TRUTH_SCHEMA = pa.schema([("source", pa.string()), ("source_key", pa.string()), ("person_id", pa.string())])


def _truth_table(source: str, keys: pl.Series, persons: pl.Series) -> pa.Table:
    df = pl.DataFrame({"source_key": keys, "person_id": persons}).filter(
        pl.col("source_key").is_not_null() & (pl.col("source_key") != ""))
    df = df.select(pl.lit(source).alias("source"), "source_key", "person_id")
    return df.to_arrow().cast(TRUTH_SCHEMA)


def _clean_previous(out_dir: Path) -> None:
    manifest = out_dir / TRUTH_DIR / "manifest.json"
    if not manifest.exists():
        return
    try:
        files = json.loads(manifest.read_text(encoding="utf-8")).get("files", [])
    except (ValueError, AttributeError):
        return
    for rel in files:
        p = (out_dir / rel)
        if p.is_file() and out_dir.resolve() in p.resolve().parents:
            p.unlink()


DIALECTS = ("canonical", "vendor", "vendor-equivalent")


def generate(out_dir: Path, customers: int, seed: int, chunk_customers: int = 200_000,
             dialect: str = "canonical") -> dict:
    """Write demo exports for every landing source into ``out_dir/<source>/`` and
    ground truth into ``out_dir/_truth/``; returns rows written per source plus
    ``files`` (paths relative to ``out_dir``) and ``truth_rows``.

    ``dialect``: ``canonical`` (the messy canonical exports described above), ``vendor``
    (CRM contacts as a HubSpot export, orders as a Shopify export, web events as a GA4
    BigQuery export; the other sources canonical) or ``vendor-equivalent`` (canonical
    files carrying exactly the facts of the vendor files: the same persons, orders and
    visits, for comparing the two; see tools.demo.vendor_exports).

    Deterministic: the same ``(customers, seed, chunk_customers, dialect)`` gives
    byte-identical files."""
    out_dir = Path(out_dir)
    if customers < 1:
        raise ValueError("customers must be at least 1")
    if seed < 0:
        raise ValueError("seed must be a non-negative integer")
    if chunk_customers < 1:
        raise ValueError("chunk_customers must be at least 1")
    if dialect not in DIALECTS:
        raise ValueError(f"dialect must be one of {', '.join(DIALECTS)}")
    vendor_form = dialect != "canonical"
    equivalent = dialect == "vendor-equivalent"
    _clean_previous(out_dir)
    for folder in (*SOURCES, TRUTH_DIR):
        (out_dir / folder).mkdir(parents=True, exist_ok=True)
    W = _Writer(out_dir)

    fx, usd = _fx(seed)
    fx.write_csv(W.path("fx_rates/fx_rates_daily.csv"), float_precision=6)
    W.count("fx_rates", fx.height)
    spend = _spend(seed, customers, usd)
    for year, rel, style in ((2023, "marketing_spend/spend_2023.csv", DATE_GERMAN),
                             (2024, "marketing_spend/spend_2024.csv", DATE_ISO),
                             (2025, "marketing_spend/spend_2025.csv.gz", DATE_ISO)):
        part = spend.filter((pl.col("ts") >= _epoch(year, 1, 1)) & (pl.col("ts") < _epoch(year + 1, 1, 1)))
        part = part.select(pl.lit(_format_ts(part["ts"].to_numpy(), style)).alias("spend_date"),
                           "channel", "spend", "campaign", "currency")
        text = part.write_csv(float_precision=2).encode()
        if rel.endswith(".gz"):
            raw, gz = _gzip_open(W.path(rel))
            with raw, gz:
                gz.write(text)
        else:
            W.path(rel).write_bytes(text)
        W.count("marketing_spend", part.height)

    truth_writer = pq.ParquetWriter(W.path(f"{TRUTH_DIR}/identities.parquet"), TRUTH_SCHEMA, compression="zstd")
    persons_frames = []
    truth_rows = 0
    n_chunks = -(-customers // chunk_customers)
    try:
        for c in range(n_chunks):
            n = min(chunk_customers, customers - c * chunk_customers)
            P = _persons(seed, c, c * chunk_customers, n)
            O = _orders(seed, c, P)
            if vendor_form:
                _vendor_orders(W, c, O, P, equivalent)
            else:
                _write_orders(W, c, O)
            C = _contacts(seed, c, chunk_customers, P)
            if vendor_form:
                _vendor_contacts(W, c, C, equivalent)
            else:
                _write_contacts(W, c, C)
            D = _deals(seed, c, chunk_customers, P, C)
            if D["n"]:
                D["df"].drop("person_id").write_csv(W.path(f"crm_deals/deals_part{c:03d}.csv"), float_precision=2)
                W.count("crm_deals", D["n"])
            nps, ces = _surveys(seed, c, P, O, C)
            if nps.height:
                nps.drop("person_id").write_json(W.path(f"surveys/nps_responses_part{c:03d}.json"))
            if ces.height:
                ces.drop("person_id").rename({
                    "response_id": "Response ID", "responded_at": "Responded At", "survey_type": "Survey-Type",
                    "score": "Score", "email": "E-Mail", "contact_id": "Contact ID", "comment": "Comment",
                }).write_csv(W.path(f"surveys/ces_responses_part{c:03d}.csv"), include_bom=True)
            W.count("surveys", nps.height + ces.height)
            E = _web(seed, c, chunk_customers, P, O)
            if vendor_form:
                _vendor_web(W, c, P, E, equivalent)
            else:
                _write_web(W, c, P, E)
            tables = [
                _truth_table("crm_contacts", C["df"]["contact_id"], C["df"]["person_id"]),
                _truth_table("crm_deals", D["df"]["deal_id"], D["df"]["person_id"]),
                _truth_table("orders", O["df"]["order_id"], O["df"]["person_id"]),
                _truth_table("surveys", pl.concat([nps["response_id"], ces["response_id"]]),
                             pl.concat([nps["person_id"], ces["person_id"]])),
                E["truth"].to_arrow().cast(TRUTH_SCHEMA),
            ]
            table = pa.concat_tables(tables)
            truth_writer.write_table(table)
            truth_rows += table.num_rows
            arch_names = np.array(list(ARCHETYPES) + ["?"] * (FORCED_CODE - len(ARCHETYPES)) + ["scripted", "lead"])
            known = pl.DataFrame({
                "person_id": P["df"]["person_id"],
                "kind": np.where(P["arch"] >= 0, "buyer", "lead"),
                "archetype": np.where(P["forced"] >= 0, "scripted", arch_names[P["arch"]]),
                "scripted_stage": pl.Series(np.array([f[0] for f in FORCED] + [""])[P["forced"]]).replace("", None),
                "country": np.array(COUNTRIES)[P["country"]],
                "acquisition_channel": np.array(CHANNELS)[P["channel"]],
                "first_seen_at": P["first_seen"],
                "has_crm_contact": P["has_crm"],
                "has_shop_account": P["account"],
                "email": P["df"]["email"],
            })
            vis = E["persons_vis"].with_columns(
                kind=pl.lit("visitor"), archetype=pl.lit("visitor"), scripted_stage=pl.lit(None, pl.String),
                acquisition_channel=pl.lit(None, pl.String),
                has_crm_contact=pl.lit(False), has_shop_account=pl.lit(False), email=pl.lit(None, pl.String),
            ).select(known.columns)
            persons_frames.append(pl.concat([known, vis]).with_columns(
                pl.from_epoch("first_seen_at", time_unit="s").dt.replace_time_zone("UTC")))
            del P, O, C, D, E, nps, ces, tables, table
    finally:
        truth_writer.close()
    pl.concat(persons_frames).write_parquet(W.path(f"{TRUTH_DIR}/persons.parquet"), compression="zstd")
    summary: dict = dict(W.rows)
    summary["files"] = list(W.files)
    summary["truth_rows"] = truth_rows
    (out_dir / TRUTH_DIR / "manifest.json").write_text(
        json.dumps({"customers": customers, "seed": seed, "chunk_customers": chunk_customers, "dialect": dialect,
                    "rows": W.rows, "files": W.files + [f"{TRUTH_DIR}/manifest.json"]}, indent=2),
        encoding="utf-8")
    summary["files"].append(f"{TRUTH_DIR}/manifest.json")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write deterministic demo exports.")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--chunk-customers", type=int, default=200_000)
    parser.add_argument("--dialect", choices=DIALECTS, default="canonical")
    args = parser.parse_args(argv)
    summary = generate(args.out, args.customers, args.seed, args.chunk_customers, args.dialect)
    print(json.dumps({k: v for k, v in summary.items() if k != "files"}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
