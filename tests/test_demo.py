"""Tests of the demo-data generator (tools.demo.generate): determinism, volumes, file
layout, the messiness CONTRACT section 2 promises, ground truth that identity
resolution can reach, and every lifecycle stage of CONTRACT section 5 present."""
from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import json
import re
from collections import Counter, defaultdict
from pathlib import Path

import phonenumbers
import polars as pl
import pytest

from tools.demo.generate import generate
from pipelines.contract import SOURCES

N = 300
SEED = 11
AS_OF = dt.date(2025, 12, 31)
STAGES = ("churned", "at_risk", "reactivated", "advocate", "loyal", "repeat_buyer",
          "first_time_buyer", "trial", "opportunity", "lead", "visitor")
COUNTRY = {
    "de": "DE", "germany": "DE", "deutschland": "DE", "at": "AT", "austria": "AT", "österreich": "AT",
    "ch": "CH", "switzerland": "CH", "schweiz": "CH", "us": "US", "united states": "US",
    "gb": "GB", "united kingdom": "GB", "fr": "FR", "france": "FR",
}


# ---------------------------------------------------------------- helpers
def files_of(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def norm_header(name: str) -> str:
    return re.sub(r"[\s_\-]", "", name.lstrip("\ufeff").lower())


def canonical(source: str) -> dict[str, str]:
    return {norm_header(c): c for c in SOURCES[source].column_names}


def raw_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def read_source(out: Path, source: str) -> tuple[pl.DataFrame, int]:
    """All rows of a landing folder as text columns with canonical names (the
    re-delivered copy skipped), plus the number of rows no reader could parse."""
    names = canonical(source)
    frames, broken = [], 0
    for path in sorted((out / source).iterdir()):
        if "_resend" in path.name:
            continue
        rows: list[dict] = []
        if path.suffix == ".parquet":
            df = pl.read_parquet(path)
            df = df.with_columns(pl.col(pl.Datetime).dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
            rows = df.cast(pl.String).to_dicts()
        else:
            data = raw_bytes(path)
            text = data.decode("utf-8-sig") if _is_utf8(data) else data.decode("cp1252")
            if path.name.endswith((".ndjson", ".ndjson.gz")):
                for line in text.splitlines():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError:
                        broken += 1
            elif path.name.endswith(".json"):
                rows = json.loads(text)
            else:
                header_line = text.splitlines()[0]
                delim = ";" if header_line.count(";") > header_line.count(",") else ","
                reader = csv.reader(io.StringIO(text), delimiter=delim)
                header = next(reader)
                for rec in reader:
                    if len(rec) != len(header):
                        broken += 1
                        continue
                    rows.append(dict(zip(header, rec)))
        renamed = [{names[norm_header(k)]: (None if v in ("", None) else str(v)) for k, v in r.items()}
                   for r in rows]
        cols = list(SOURCES[source].column_names)
        frames.append(pl.DataFrame(renamed, schema={c: pl.String for c in cols}).with_columns(
            _file=pl.lit(path.name)))
    return pl.concat(frames), broken


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def parse_ts(col: str) -> pl.Expr:
    """The timestamp forms the generator writes, as UTC (naive and German forms are Berlin time)."""
    c = pl.col(col)
    local = lambda fmt: c.str.strptime(pl.Datetime("us"), fmt, strict=False).dt.replace_time_zone(  # noqa: E731
        "Europe/Berlin", ambiguous="earliest", non_existent="null").dt.convert_time_zone("UTC")
    return pl.coalesce(
        c.str.strptime(pl.Datetime("us", "UTC"), "%Y-%m-%dT%H:%M:%S%#z", strict=False),
        local("%Y-%m-%d %H:%M:%S"), local("%d.%m.%Y %H:%M"), local("%d.%m.%Y"), local("%Y-%m-%d"),
    )


def berlin_date(col: str) -> pl.Expr:
    return parse_ts(col).dt.convert_time_zone("Europe/Berlin").dt.date()


def norm_email(e: str | None) -> str | None:
    if not e or not e.strip():
        return None
    e = e.strip().lower()
    return e[: -len("@googlemail.com")] + "@gmail.com" if e.endswith("@googlemail.com") else e


def norm_phone(p: str | None, country: str | None) -> str | None:
    if not p:
        return None
    try:
        num = phonenumbers.parse(p, COUNTRY.get((country or "").strip().lower()))
    except phonenumbers.NumberParseException:
        return None
    return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)


# ---------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("demo") / "landing"
    return out, generate(out, N, SEED)


@pytest.fixture(scope="module")
def data(demo) -> dict:
    out, _ = demo
    loaded = {s: read_source(out, s) for s in SOURCES}
    return {s: df for s, (df, _) in loaded.items()} | {"_broken": {s: b for s, (_, b) in loaded.items()}}


@pytest.fixture(scope="module")
def truth(demo) -> pl.DataFrame:
    return pl.read_parquet(demo[0] / "_truth" / "identities.parquet")


# ---------------------------------------------------------------- determinism and volumes
def test_same_seed_gives_identical_bytes_and_other_seed_differs(demo, tmp_path):
    out, summary = demo
    again = generate(tmp_path / "again", N, SEED)
    first, second = files_of(out), files_of(tmp_path / "again")
    assert sorted(first) == sorted(second)
    assert len(first) >= 15
    for name in first:
        assert first[name] == second[name], name
    assert again == summary
    generate(tmp_path / "other", N, SEED + 1)
    other = files_of(tmp_path / "other")
    for name in ("orders/orders_2023_2024_part000.csv", "web_events/events_part000.ndjson",
                 "crm_contacts/contacts_part000.csv", "fx_rates/fx_rates_daily.csv"):
        assert other[name] != first[name], name


def test_volumes_are_within_30_percent(demo):
    _, summary = demo
    assert 0.7 * N <= summary["crm_contacts"] <= 1.3 * N
    assert 7 * N <= summary["orders"] <= 13 * N
    assert 35 * N <= summary["web_events"] <= 65 * N
    assert summary["fx_rates"] == 1096 * 4
    assert summary["marketing_spend"] == 1096 * 5
    assert summary["surveys"] > 0.05 * N and summary["crm_deals"] > 0.03 * N


def test_summary_counts_match_the_files(demo, data):
    _, summary = demo
    for source in SOURCES:
        assert data[source].height + data["_broken"][source] == summary[source], source


def test_chunks_are_independent_and_keys_unique(tmp_path):
    out = tmp_path / "chunked"
    summary = generate(out, 250, 5, chunk_customers=100)
    names = set(summary["files"])
    assert {"orders/orders_2023_2024_part002.csv", "web_events/events_part002.ndjson",
            "crm_contacts/contacts_part002.csv"} <= names
    t = pl.read_parquet(out / "_truth" / "identities.parquet")
    assert t.select("source", "source_key").is_duplicated().sum() == 0
    persons = pl.read_parquet(out / "_truth" / "persons.parquet")
    assert persons["person_id"].n_unique() == persons.height == 250 + (40 + 40 + 20)  # + anonymous visitors
    assert 7 * 250 <= summary["orders"] <= 13 * 250
    # a second run writing fewer chunks into the same folder removes the stale files
    generate(out, 150, 5, chunk_customers=100)
    assert not (out / "orders" / "orders_2023_2024_part002.csv").exists()


# ---------------------------------------------------------------- layout and formats
def test_file_layout_and_formats(demo):
    out, summary = demo
    names = set(summary["files"])
    expected = {
        "crm_contacts/contacts_part000.csv", "crm_deals/deals_part000.csv",
        "web_events/events_part000.ndjson", "web_events/events_2023q1_part000.ndjson.gz",
        "orders/orders_2023_2024_part000.csv", "orders/orders_2025_part000.parquet",
        "orders/bestellungen_shop_de_2024q4.csv", "orders/orders_2023_2024_part000_resend.csv",
        "marketing_spend/spend_2023.csv", "marketing_spend/spend_2024.csv", "marketing_spend/spend_2025.csv.gz",
        "surveys/nps_responses_part000.json", "surveys/ces_responses_part000.csv",
        "fx_rates/fx_rates_daily.csv", "_truth/identities.parquet", "_truth/persons.parquet",
    }
    assert expected <= names
    on_disk = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert on_disk == names
    assert (out / "orders/orders_2025_part000.parquet").read_bytes()[:4] == b"PAR1"
    for gz in ("web_events/events_2023q1_part000.ndjson.gz", "marketing_spend/spend_2025.csv.gz"):
        assert (out / gz).read_bytes()[:2] == b"\x1f\x8b"
    nps = json.loads((out / "surveys/nps_responses_part000.json").read_text(encoding="utf-8"))
    assert isinstance(nps, list) and len(nps) > 10 and "score" in nps[0]
    assert (out / "surveys/ces_responses_part000.csv").read_bytes()[:3] == b"\xef\xbb\xbf"
    # every top-level folder but _truth is a landing source
    assert {p.name for p in out.iterdir()} == set(SOURCES) | {"_truth"}


def test_required_and_only_canonical_columns_per_source(demo):
    out, _ = demo
    for source, spec in SOURCES.items():
        for path in (out / source).iterdir():
            if path.suffix == ".parquet":
                header = pl.read_parquet_schema(path).names()
            elif path.name.endswith(".json"):
                header = list(json.loads(raw_bytes(path))[0])
            elif ".ndjson" in path.name:
                header = list(json.loads(raw_bytes(path).split(b"\n", 1)[0]))
            else:
                data = raw_bytes(path)
                first = (data.decode("utf-8-sig") if _is_utf8(data) else data.decode("cp1252")).splitlines()[0]
                header = first.split(";" if first.count(";") > first.count(",") else ",")
            got = {norm_header(h) for h in header}
            assert {norm_header(c) for c in spec.required} <= got, (path, spec.required)
            assert got <= set(canonical(source)), (path, got - set(canonical(source)))


def test_redelivered_file_is_a_byte_copy(demo):
    out, _ = demo
    original = (out / "orders/orders_2023_2024_part000.csv").read_bytes()
    assert (out / "orders/orders_2023_2024_part000_resend.csv").read_bytes() == original
    assert original.count(b"\n") > 100


def test_german_excel_csv(demo):
    out, _ = demo
    data = (out / "orders/bestellungen_shop_de_2024q4.csv").read_bytes()
    assert not _is_utf8(data)
    text = data.decode("cp1252")
    assert "Österreich" in text or "Deutschland" in text
    rows = list(csv.reader(io.StringIO(text), delimiter=";"))
    header, body = rows[0], rows[1:]
    assert header[:3] == ["order_id", "ordered_at", "total_amount"]
    assert len(body) >= 20 and all(len(r) == len(header) for r in body)
    amounts = [r[header.index("total_amount")] for r in body]
    assert all(re.fullmatch(r"\d+,\d\d", a) for a in amounts)
    assert all(re.fullmatch(r"\d\d\.\d\d\.2024 \d\d:\d\d", r[1]) for r in body)
    assert "\r\n" in text


# ---------------------------------------------------------------- ground truth
def test_truth_covers_every_record_key(data, truth):
    assert set(truth["source"].unique()) == {"crm_contacts", "orders", "web_events", "surveys", "crm_deals"}
    key_col = {"crm_contacts": "contact_id", "orders": "order_id", "web_events": "anonymous_id",
               "surveys": "response_id", "crm_deals": "deal_id"}
    for source, col in key_col.items():
        keys = set(data[source][col].drop_nulls().to_list())
        known = set(truth.filter(pl.col("source") == source)["source_key"].to_list())
        assert keys and keys <= known, (source, list(keys - known)[:5])
    # only shared devices lack a person
    nulls = truth.filter(pl.col("person_id").is_null())
    assert nulls.height > 0 and set(nulls["source"].unique()) == {"web_events"}
    assert truth.select("source", "source_key").is_duplicated().sum() == 0


def test_truth_is_reachable_by_the_spec_identity_rules(data, truth):
    """A small resolver following CONTRACT section 4 reproduces the true persons (pairwise F1)."""
    parent: dict = {}

    def find(x):
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(a, b):
        parent[find(a)] = find(b)

    c, o, s, d, w = (data[k] for k in ("crm_contacts", "orders", "surveys", "crm_deals", "web_events"))
    # rows without their key cannot be told apart (a loader rejects them)
    c, o, s, d = (df.filter(pl.col(k).is_not_null()) for df, k in (
        (c, "contact_id"), (o, "order_id"), (s, "response_id"), (d, "deal_id")))
    for r in c.iter_rows(named=True):
        node = ("crm_contacts", r["contact_id"])
        find(node)
        for tok in (("e", norm_email(r["email"])), ("p", norm_phone(r["phone"], r["country"])),
                    ("c", r["contact_id"])):
            if tok[1]:
                union(node, tok)
    for r in o.iter_rows(named=True):
        node = ("orders", r["order_id"])
        find(node)
        for tok in (("e", norm_email(r["email"])), ("p", norm_phone(r["phone"], r["country"])),
                    ("u", r["customer_id"])):
            if tok[1]:
                union(node, tok)
    for r in s.iter_rows(named=True):
        node = ("surveys", r["response_id"])
        find(node)
        for tok in (("e", norm_email(r["email"])), ("c", r["contact_id"])):
            if tok[1]:
                union(node, tok)
    for r in d.iter_rows(named=True):
        find(("crm_deals", r["deal_id"]))
        if r["contact_id"]:
            union(("crm_deals", r["deal_id"]), ("c", r["contact_id"]))
    seen = defaultdict(lambda: (set(), set()))
    for anon, email, uid in w.select("anonymous_id", "email", "user_id").iter_rows():
        if anon:
            find(("web_events", anon))
            if email:
                seen[anon][0].add(norm_email(email))
            if uid:
                seen[anon][1].add(uid)
    shared = {a for a, (em, ui) in seen.items() if len(em) > 1 or len(ui) > 1}
    for anon, (emails, uids) in seen.items():
        if anon not in shared:
            for tok in [("e", e) for e in emails] + [("u", u) for u in uids]:
                union(("web_events", anon), tok)
    t = truth.filter(pl.col("person_id").is_not_null())
    true_of = {(a, b): p for a, b, p in t.iter_rows()}
    shared_truth = set(truth.filter(pl.col("person_id").is_null())["source_key"].to_list())
    assert shared and shared <= shared_truth
    records = [k for k in parent if len(k) == 2 and k[0] in (
        "crm_contacts", "orders", "surveys", "crm_deals", "web_events") and k in true_of]
    cells = Counter((find(k), true_of[k]) for k in records)
    pred = Counter(find(k) for k in records)
    real = Counter(true_of[k] for k in records)
    pairs = lambda counter: sum(v * (v - 1) // 2 for v in counter.values())  # noqa: E731
    tp = pairs(cells)
    precision, recall = tp / pairs(pred), tp / pairs(real)
    f1 = 2 * precision * recall / (precision + recall)
    assert len(records) > 0.9 * t.height
    assert f1 >= 0.99, (precision, recall)
    print("identity F1", round(f1, 4), round(precision, 4), round(recall, 4))


# ---------------------------------------------------------------- messiness
def test_contact_messiness(data, truth):
    c = data["crm_contacts"]
    emails = c["email"].drop_nulls()
    assert emails.str.starts_with("  ").sum() > 0 and (emails != emails.str.to_lowercase()).sum() > 0
    # duplicates: the same person twice
    t = truth.filter(pl.col("source") == "crm_contacts")
    assert t["person_id"].is_duplicated().sum() >= 2
    # gmail and googlemail used by the same person (across sources)
    every = pl.concat([
        c.select("email", key="contact_id").join(t, left_on="key", right_on="source_key"),
        data["orders"].select("email", key="order_id").join(
            truth.filter(pl.col("source") == "orders"), left_on="key", right_on="source_key"),
    ]).with_columns(domain=pl.col("email").str.strip_chars().str.to_lowercase().str.extract(r"@(.+)$"))
    both = every.group_by("person_id").agg(
        (pl.col("domain") == "gmail.com").any().alias("g"), (pl.col("domain") == "googlemail.com").any().alias("gm"))
    assert both.filter(pl.col("g") & pl.col("gm")).height > 0
    phones = c["phone"].drop_nulls()
    assert phones.str.contains(r"^0\d").sum() > 0 and phones.str.contains(r"^\(0\d+\) ").sum() > 0
    assert phones.str.contains(r"^\+\d+ ").sum() > 0 and phones.str.contains(r"^00\d").sum() > 0
    assert c["email"].null_count() > 0  # phone-only contacts
    countries = set(c["country"].drop_nulls().unique())
    assert {"DE", "Germany"} <= countries and countries & {"de", "Deutschland", "GERMANY"}
    assert c["country"].null_count() > 0
    assert set(c["marketing_consent"].unique()) == {"true", "false"}
    scores = c["lead_score"].drop_nulls().cast(pl.Int64)
    assert scores.min() >= 0 and scores.max() <= 100
    refs = c["referred_by_email"].drop_nulls()
    assert refs.len() > 0
    buyers_email = set(data["orders"]["email"].drop_nulls().map_elements(norm_email, return_dtype=pl.String))
    assert any(norm_email(r) in buyers_email for r in refs)
    assert "Müller" in set(c["last_name"].drop_nulls()) or any("ü" in x or "ö" in x for x in c["city"].drop_nulls())
    assert {"customer", "lead"} <= set(c["crm_lifecycle_stage"].unique())


def test_timestamp_forms_and_span(data):
    c, o = data["crm_contacts"], data["orders"]
    ts = pl.concat([c["created_at"], o["ordered_at"]]).drop_nulls()
    assert ts.str.contains(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$").sum() > 0
    assert ts.str.contains(r"\+01:00$").sum() > 0 and ts.str.contains(r"\+02:00$").sum() > 0
    assert ts.str.contains(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$").sum() > 0
    assert ts.str.contains(r"^\d\d\.\d\d\.\d{4} \d\d:\d\d$").sum() > 0
    for source, col in (("crm_contacts", "created_at"), ("orders", "ordered_at"), ("web_events", "event_at"),
                        ("surveys", "responded_at"), ("crm_deals", "created_at")):
        days = data[source].select(berlin_date(col)).to_series().drop_nulls()
        assert days.min() >= dt.date(2023, 1, 1) and days.max() <= AS_OF, source


def test_malformed_rows_are_few(data):
    bad = {
        "orders": data["orders"].filter(pl.col("order_id").is_null() | (pl.col("ordered_at") == "not-a-date")).height,
        "crm_contacts": data["crm_contacts"].filter(
            pl.col("contact_id").is_null() | (pl.col("created_at") == "not-a-date")).height,
        "web_events": data["web_events"].filter(
            pl.col("anonymous_id").is_null() | (pl.col("event_at") == "not-a-date")).height,
    }
    broken = data["_broken"]
    assert bad["orders"] + broken["orders"] > 0 and bad["web_events"] + broken["web_events"] > 0
    assert broken["orders"] > 0 and broken["web_events"] == 1  # ragged CSV rows, a truncated JSON line
    for source in SOURCES:
        rejected = bad.get(source, 0) + broken[source]
        assert rejected <= 0.02 * (data[source].height + broken[source]), source


def test_order_messiness(data, truth):
    o = data["orders"]
    status = Counter(o["status"].to_list())
    assert set(status) == {"completed", "pending", "cancelled", "refunded", "partially_refunded"}
    assert status["completed"] > 0.8 * o.height
    money = o.with_columns(
        [pl.col(c).str.replace(",", ".").cast(pl.Float64) for c in ("total_amount", "discount_amount", "refunded_amount")])
    ref = money.filter(pl.col("status") == "refunded")
    assert (ref["refunded_amount"] == ref["total_amount"]).all()
    part = money.filter(pl.col("status") == "partially_refunded")
    assert ((part["refunded_amount"] > 0) & (part["refunded_amount"] < part["total_amount"])).all()
    disc = money.filter(pl.col("coupon_code").is_not_null())
    assert disc.height > 0 and ((disc["discount_amount"] > 0) & (disc["discount_amount"] < disc["total_amount"])).all()
    assert set(o["currency"].unique()) == {"EUR", "USD", "GBP", "CHF"}
    assert (o["currency"] == "EUR").sum() > 0.6 * o.height
    ids = o.select(e=pl.col("email").is_not_null(), u=pl.col("customer_id").is_not_null(),
                   p=pl.col("phone").is_not_null())
    assert ids.filter(pl.col("u") & ~pl.col("e")).height > 0          # shop account only
    assert ids.filter(~pl.col("u") & pl.col("e")).height > 0          # guest with e-mail
    assert ids.filter(~pl.col("u") & ~pl.col("e") & pl.col("p")).height > 0  # phone only
    assert o["customer_id"].drop_nulls().str.contains(r"^U\d{7}$").all()
    assert set(o["channel"].unique()) >= {"paid_search", "paid_social", "email", "affiliate", "display"}
    # most buyers buy once, a minority many times
    per_person = o.join(truth.filter(pl.col("source") == "orders"), left_on="order_id",
                        right_on="source_key").group_by("person_id").len()["len"]
    assert (per_person == 1).sum() > 0.35 * per_person.len()
    assert (per_person >= 20).sum() > 0


def test_web_identity_stories(data, truth):
    w = data["web_events"].filter(pl.col("anonymous_id").is_not_null())
    names = set(w["event_name"].unique())
    assert {"page_view", "add_to_cart", "begin_checkout", "purchase", "login", "sign_up",
            "newsletter_signup", "lead_form_submit", "trial_start"} <= names
    assert w["anonymous_id"].str.contains(r"^anon_[0-9a-f]{16}$").all()
    w = w.with_columns(ts=parse_ts("event_at"), ident=pl.col("email").is_not_null() | pl.col("user_id").is_not_null())
    per = w.group_by("anonymous_id").agg(
        pl.col("ts").filter(~pl.col("ident")).min().alias("first_anon"),
        pl.col("ts").filter(pl.col("ident")).min().alias("first_ident"),
        pl.col("email").drop_nulls().str.to_lowercase().n_unique().alias("emails"),
        pl.col("user_id").drop_nulls().n_unique().alias("uids"))
    # browse anonymously first, identify later
    assert per.filter(pl.col("first_anon") < pl.col("first_ident")).height > 0.3 * N
    # never identify
    assert per.filter(pl.col("first_ident").is_null()).height > 0.2 * N
    # shared devices
    assert per.filter((pl.col("emails") > 1) | (pl.col("uids") > 1)).height > 0
    # web user_id is the shop's customer_id
    uids = set(w["user_id"].drop_nulls())
    assert len(uids) > 0.1 * N
    assert len(uids & set(data["orders"]["customer_id"].drop_nulls())) >= 0.8 * len(uids)
    assert set(w["utm_medium"].drop_nulls().unique()) >= {"cpc", "paid_social", "email", "affiliate", "display"}
    assert w["session_id"].null_count() == 0


def test_surveys_deals_spend_fx(data, demo):
    s = data["surveys"].with_columns(pl.col("score").cast(pl.Int64))
    nps, ces = s.filter(pl.col("survey_type") == "nps"), s.filter(pl.col("survey_type") == "ces")
    assert nps.height > 0 and ces.height > 0
    assert nps["score"].drop_nulls().is_between(0, 10).all() and ces["score"].drop_nulls().is_between(1, 7).all()
    assert (nps["score"] >= 9).sum() > 0 and (nps["score"] <= 6).sum() > 0
    assert s["contact_id"].null_count() < s.height and s["email"].null_count() < s.height
    d = data["crm_deals"]
    assert set(d["deal_stage"].unique()) == {"open", "won", "lost"}
    assert d.filter(pl.col("deal_stage") == "open")["closed_at"].null_count() == (d["deal_stage"] == "open").sum()
    sp = data["marketing_spend"]
    assert set(sp["channel"].unique()) == {"paid_search", "paid_social", "email", "affiliate", "display"}
    assert sp.select(berlin_date("spend_date")).to_series().n_unique() == 1096
    assert sp["spend"].cast(pl.Float64).min() > 0
    fx = data["fx_rates"].with_columns(pl.col("rate_to_reporting").cast(pl.Float64))
    assert fx.group_by("currency").len().sort("currency")["len"].to_list() == [1096] * 4
    assert (fx.filter(pl.col("currency") == "EUR")["rate_to_reporting"] == 1.0).all()
    usd = fx.filter(pl.col("currency") == "USD")["rate_to_reporting"]
    assert 0.7 < usd.min() and usd.max() < 1.2


def test_phone_numbers_are_valid(data):
    sample = pl.concat([data["crm_contacts"].select("phone", "country"), data["orders"].select("phone", "country")])
    sample = sample.filter(pl.col("phone").is_not_null())
    parsed = [norm_phone(p, c) for p, c in sample.iter_rows()]
    assert sum(p is not None for p in parsed) == len(parsed)
    valid = sum(phonenumbers.is_valid_number(phonenumbers.parse(p)) for p in parsed)
    assert valid >= 0.99 * len(parsed)


# ---------------------------------------------------------------- lifecycle stages
def test_every_lifecycle_stage_is_present_at_as_of(demo, data, truth):
    out, _ = demo
    persons = pl.read_parquet(out / "_truth" / "persons.parquet")
    key = {"orders": "order_id", "surveys": "response_id", "crm_contacts": "contact_id", "crm_deals": "deal_id",
           "web_events": "anonymous_id"}
    tagged = {s: data[s].join(truth.filter(pl.col("source") == s).drop("source"),
                              left_on=key[s], right_on="source_key").filter(pl.col("person_id").is_not_null())
              for s in key}
    purchases = defaultdict(list)
    o = tagged["orders"].with_columns(day=berlin_date("ordered_at"), status=pl.col("status").fill_null("completed"))
    for pid, day in o.filter(pl.col("status").is_in(["completed", "partially_refunded"]) & pl.col("day").is_not_null()
                             ).select("person_id", "day").iter_rows():
        purchases[pid].append(day)
    nps = (tagged["surveys"].filter(pl.col("survey_type") == "nps").with_columns(
        ts=parse_ts("responded_at"), score=pl.col("score").cast(pl.Int64))
        .drop_nulls(["ts", "score"]).sort("ts").group_by("person_id").agg(pl.col("score").last()))
    promoters = set(nps.filter(pl.col("score") >= 9)["person_id"])
    email_owner = {norm_email(e): p for p, e in persons.select("person_id", "email").drop_nulls().iter_rows()}
    referrers = {email_owner.get(norm_email(r)) for p, r in tagged["crm_contacts"].select(
        "person_id", "referred_by_email").drop_nulls().iter_rows() if p in purchases}
    open_deal = set(tagged["crm_deals"].filter(pl.col("deal_stage") == "open")["person_id"])
    hot_score = set(tagged["crm_contacts"].filter(pl.col("lead_score").cast(pl.Float64) >= 50)["person_id"])
    recent = tagged["web_events"].with_columns(day=berlin_date("event_at")).filter(
        pl.col("day") > AS_OF - dt.timedelta(days=30))
    trial = set(recent.filter(pl.col("event_name") == "trial_start")["person_id"])
    intent = set(recent.filter(pl.col("event_name").is_in(["add_to_cart", "begin_checkout"]))["person_id"])
    seen = set(truth["person_id"].drop_nulls())

    def stage(pid: str) -> str:
        days = sorted(purchases.get(pid, []))
        if days:
            since = (AS_OF - days[-1]).days
            if since > 180:
                return "churned"
            if since > 90:
                return "at_risk"
            if len(days) >= 2 and (days[-1] - days[-2]).days > 180:
                return "reactivated"
            if pid in promoters or pid in referrers:
                return "advocate"
            if sum(d > AS_OF - dt.timedelta(days=365) for d in days) >= 4:
                return "loyal"
            return "repeat_buyer" if len(days) >= 2 else "first_time_buyer"
        if pid in trial:
            return "trial"
        if pid in open_deal or pid in hot_score or pid in intent:
            return "opportunity"
        return "lead" if pid.startswith("P") else "visitor"

    stages = {pid: stage(pid) for pid in seen}
    counts = Counter(stages.values())
    assert set(counts) == set(STAGES), counts
    # the scripted person of every stage lands in it
    scripted = persons.filter(pl.col("scripted_stage").is_not_null())
    assert sorted(scripted["scripted_stage"]) == sorted(STAGES[:-1])
    for pid, arch in scripted.select("person_id", "scripted_stage").iter_rows():
        assert stages[pid] == arch, (pid, arch, stages[pid])
    # plausible dynamics: many churned buyers, most persons never reach loyal
    buyers = sum(counts[s] for s in STAGES[:7])
    assert counts["churned"] > 0.3 * buyers and counts["loyal"] < 0.3 * buyers
