"""Standardisation: phone numbers (pipelines.staging.phones) and the lookup seeds
(country aliases, currencies, channel groups) in dbt_project/seeds."""
from __future__ import annotations

import csv
import re
import unicodedata
from pathlib import Path

import duckdb
import polars as pl
import pytest

from pipelines.staging import phones
from pipelines.staging.phones import normalise_phone, normalise_phones, phone_key

SEEDS = Path(__file__).resolve().parents[1] / "dbt_project" / "seeds"


# ---------------------------------------------------------------- phones
@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        # German national numbers (0151 mobiles have 8 subscriber digits to be valid)
        ("0151 23456789", "DE", "+4915123456789"),
        ("0151-23456789", "DE", "+4915123456789"),
        ("(030) 1234567", "DE", "+49301234567"),
        ("030 1234567", "de", "+49301234567"),
        # 00 international prefix, with or without a region
        ("0049 151 23456789", "DE", "+4915123456789"),
        ("0049 151 23456789", None, "+4915123456789"),
        ("0049 151 23456789", "US", "+4915123456789"),  # US dials 011, 00 still understood
        ("0049 151 23456789", "AU", "+4915123456789"),
        ("011 49 151 23456789", "US", "+4915123456789"),  # the US international prefix
        # + numbers parse without a region and ignore the record's one
        ("+49 (0)151 23456789", None, "+4915123456789"),
        ("+49 (0)151 23456789", "DE", "+4915123456789"),
        ("+49 151 23456789", "FR", "+4915123456789"),
        ("+4915123456789", None, "+4915123456789"),
        ("(+49) 151 23456789", None, "+4915123456789"),
        ("+44 (0)20 7946 0958", None, "+442079460958"),
        ("+39 06 1234 5678", None, "+390612345678"),  # Italian leading zero is kept
        # US formats
        ("(415) 555-0101", "US", "+14155550101"),
        ("415-555-0101", "US", "+14155550101"),
        ("+1 415 555 0101", "US", "+14155550101"),
        ("+1 415 555 0101", None, "+14155550101"),
        ("1-415-555-0101", "US", "+14155550101"),
        ("+1 (415) 555-0101", "DE", "+14155550101"),
        # extensions are dropped
        ("+1 415 555 0101 ext. 12", None, "+14155550101"),
        ("0151 23456789 x12", "DE", "+4915123456789"),
        # national numbers without a (known) region
        ("0151 23456789", None, None),
        ("(415) 555-0101", None, None),
        ("0151 23456789", "XX", None),
        # garbage
        ("n/a", "DE", None),
        ("123", "DE", None),
        ("abc", None, None),
        ("abc", "US", None),
        ("", "DE", None),
        ("   ", "DE", None),
        (None, "DE", None),
        (None, None, None),
        # well-formed but not valid (is_valid_number is false)
        ("0151 2345678", "DE", None),  # 0151 needs 8 subscriber digits
        ("+49 (0)151 2345678", None, None),
        ("+1 123 555 0101", None, None),  # NANP area codes never start with 1
        ("+999 1234567", None, None),  # unassigned country code
    ],
)
def test_normalise_phone(raw, region, expected):
    assert normalise_phone(raw, region) == expected


def test_phone_key_merges_formatting_variants():
    assert phone_key("0151 23456789", "DE") == phone_key("0151-23456789", "DE") == ("015123456789", "DE")
    assert phone_key("+49 151 23456789", "DE") == phone_key("0049 151 23456789", None) == ("+4915123456789", None)
    assert phone_key("n/a", "DE") is None
    assert phone_key("0151 23456789", None) is None


def test_normalise_phones_one_row_per_distinct_pair_and_one_parse_per_key(monkeypatch):
    calls: list[tuple[str, str | None]] = []
    real = phones._parse_key

    def counting(number, region):
        calls.append((number, region))
        return real(number, region)

    monkeypatch.setattr(phones, "_parse_key", counting)
    frame = pl.DataFrame(
        {
            "phone_raw": [
                "0151 23456789", "0151 23456789", "0151-23456789", "015123456789",  # one key (DE)
                "0151 23456789",  # same text, other region: its own key
                "+49 151 23456789", "+49 151 23456789", "0049 151 23456789",  # one key (+49...)
                "(415) 555-0101", "415-555-0101", "(415) 555-0101",  # one key (US)
                "n/a", "n/a", None, "0151 23456789",  # no key: no parse
            ],
            "default_region": [
                "DE", "DE", "DE", "DE",
                "AT",
                "DE", None, "DE",
                "US", "US", "US",
                "DE", "DE", "DE", None,
            ],
        }
    )
    out = normalise_phones(frame)
    assert out.columns == ["phone_raw", "default_region", "phone_e164"]
    assert out.schema["phone_e164"] == pl.String
    assert out.height == frame.unique().height == 12
    assert out.select("phone_raw", "default_region").is_duplicated().sum() == 0
    assert sorted(calls, key=str) == sorted(
        [("015123456789", "DE"), ("015123456789", "AT"), ("+4915123456789", None), ("4155550101", "US")], key=str
    )
    got = {(r, g): e for r, g, e in out.iter_rows()}
    assert got[("0151-23456789", "DE")] == "+4915123456789"
    assert got[("0151 23456789", "AT")] == "+4315123456789"  # the region decides the country
    assert got[("+49 151 23456789", None)] == "+4915123456789"
    assert got[("415-555-0101", "US")] == "+14155550101"
    assert got[("n/a", "DE")] is None and got[(None, "DE")] is None and got[("0151 23456789", None)] is None


def test_normalise_phones_agrees_with_normalise_phone_and_handles_null_columns():
    frame = pl.DataFrame(
        {"phone_raw": ["0151 23456789", "+1 415 555 0101", "0049 30 1234567", "x"],
         "default_region": ["DE", None, "US", None]}
    )
    out = normalise_phones(frame)
    for raw, region, e164 in out.iter_rows():
        assert e164 == normalise_phone(raw, region)
    empty = normalise_phones(pl.DataFrame({"phone_raw": [None, None], "default_region": [None, None]}))
    assert empty.height == 1 and empty.schema["phone_e164"] == pl.String and empty["phone_e164"][0] is None


# ---------------------------------------------------------------- seeds
def read_seed(name: str) -> list[dict[str, str]]:
    with open(SEEDS / name, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def alias_key(alias: str) -> str:
    """Python twin of the SQL match key (the production definition):
    macro country_key in dbt_project/macros/standardise.sql,
    nullif(regexp_replace(lower(strip_accents(trim(alias))), '[^a-z0-9]', '', 'g'), '')."""
    decomposed = unicodedata.normalize("NFD", alias.strip().lower())
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return re.sub(r"[^a-z0-9]", "", stripped)


@pytest.fixture(scope="module")
def country_aliases() -> dict[str, str]:
    rows = read_seed("country_aliases.csv")
    assert list(rows[0]) == ["alias", "country_code"]
    keys = [alias_key(r["alias"]) for r in rows]
    assert all(keys), "an alias with an empty key"
    duplicates = {k for k in keys if keys.count(k) > 1}
    assert not duplicates, f"aliases collide on the match key: {sorted(duplicates)}"
    return {k: r["country_code"] for k, r in zip(keys, rows)}


def test_country_alias_keys_match_the_sql_definition():
    con = duckdb.connect()
    rows = con.execute(
        "select alias, nullif(regexp_replace(lower(strip_accents(trim(alias))), '[^a-z0-9]', '', 'g'), '') "
        "from read_csv(?, header = true, all_varchar = true)",
        [str(SEEDS / "country_aliases.csv")],
    ).fetchall()
    assert len(rows) == len(read_seed("country_aliases.csv"))
    assert [k for _, k in rows] == [alias_key(a) for a, _ in rows]


def test_country_aliases_cover_every_code(country_aliases):
    codes = set(country_aliases.values())
    assert all(re.fullmatch(r"[A-Z]{2}", c) for c in codes)
    assert len(codes - {"XK"}) == 249
    for code in codes:  # every code is its own alias
        assert country_aliases[code.lower()] == code
    alpha3 = {r["country_code"] for r in read_seed("country_aliases.csv") if re.fullmatch(r"[A-Z]{3}", r["alias"])}
    assert len(alpha3 - {"XK"}) == 249  # an alpha-3 code for every country


@pytest.mark.parametrize(
    ("alias", "code"),
    [
        *[(a, "DE") for a in ["de", "DE", "DEU", "Deutschland", "germany", "Germany", " GERMANY "]],
        *[(a, "AT") for a in ["Österreich", "Oesterreich", "Osterreich", "Austria", "AT", "AUT"]],
        *[(a, "US") for a in ["United States", "USA", "U.S.A.", "US", "u.s.", "Vereinigte Staaten",
                               "United States of America"]],
        *[(a, "GB") for a in ["uk", "Großbritannien", "Grossbritannien", "United Kingdom", "Great Britain",
                               "England", "Scotland", "Wales", "Northern Ireland", "GBR",
                               "Vereinigtes Königreich"]],
        *[(a, "CH") for a in ["Schweiz", "Switzerland", "CH", "CHE", "Suisse"]],
        *[(a, "NL") for a in ["Holland", "The Netherlands", "Niederlande", "NLD"]],
        *[(a, "CZ") for a in ["Czech Republic", "Czechia", "Tschechien"]],
        *[(a, "KR") for a in ["South Korea", "Korea, Republic of", "Südkorea", "KOR"]],
        ("North Korea", "KP"), ("Russia", "RU"), ("Russland", "RU"), ("Vietnam", "VN"), ("Viet Nam", "VN"),
        ("Turkey", "TR"), ("Türkiye", "TR"), ("Türkei", "TR"), ("Ivory Coast", "CI"),
        ("Côte d’Ivoire", "CI"), ("Swaziland", "SZ"), ("Macedonia", "MK"), ("Burma", "MM"),
        ("Myanmar (Burma)", "MM"), ("Bosnia & Herzegovina", "BA"), ("Congo - Kinshasa", "CD"),
        ("Frankreich", "FR"), ("Spanien", "ES"), ("Italien", "IT"), ("Polen", "PL"), ("Dänemark", "DK"),
        ("Brasilien", "BR"), ("Kanada", "CA"), ("Mexiko", "MX"), ("Südafrika", "ZA"), ("Indien", "IN"),
        ("Japan", "JP"), ("China", "CN"), ("Australien", "AU"), ("Namibia", "NA"), ("NA", "NA"),
        ("Norway", "NO"), ("NO", "NO"),
    ],
)
def test_country_alias_lookup(country_aliases, alias, code):
    assert country_aliases[alias_key(alias)] == code


def test_currencies():
    rows = read_seed("currencies.csv")
    assert list(rows[0]) == ["currency_code", "currency_name", "minor_units"]
    codes = [r["currency_code"] for r in rows]
    assert len(codes) == len(set(codes)) >= 150
    assert all(re.fullmatch(r"[A-Z]{3}", c) and r["currency_name"] for c, r in zip(codes, rows))
    minor = {r["currency_code"]: int(r["minor_units"]) for r in rows}
    assert {c: minor[c] for c in ["EUR", "USD", "GBP", "CHF", "JPY"]} == {
        "EUR": 2, "USD": 2, "GBP": 2, "CHF": 2, "JPY": 0}
    assert minor["KWD"] == 3 and minor["KRW"] == 0 and set(minor.values()) <= {0, 2, 3, 4}


# ---------------------------------------------------------------- channel groups
CHANNEL_CASES = [
    ("google", "cpc", "", "Paid Search"),
    ("google", "cpc", "summer_sale", "Paid Search"),
    ("bing", "ppc", None, "Paid Search"),
    ("google", "organic", "", "Organic Search"),
    ("www.google.de", "referral", "", "Organic Search"),  # referral from a search engine
    ("duckduckgo.com", "", "", "Organic Search"),
    ("newsletter", "organic", "", "Organic Search"),
    ("facebook", "paid_social", "", "Paid Social"),
    ("facebook", "cpc", "", "Paid Social"),
    ("Facebook", "CPC", "", "Paid Social"),
    ("l.facebook.com", "referral", "", "Organic Social"),
    ("instagram", "story", "", "Organic Social"),
    ("t.co", "referral", "", "Organic Social"),
    ("anything", "social", "", "Organic Social"),
    ("youtube", "cpv", "", "Paid Video"),
    ("youtube.com", "referral", "", "Organic Video"),
    ("amazon", "cpc", "", "Paid Shopping"),
    ("partner", "cpc", "black_friday_shopping", "Paid Shopping"),
    ("idealo.de", "referral", "", "Organic Shopping"),
    ("partner", "banner", "", "Display"),
    ("partner", "cpm", "", "Display"),
    ("partner", "retargeting", "", "Paid Other"),
    ("partner", "cpc", "cross-network", "Cross-network"),
    ("newsletter", "email", "", "Email"),
    ("email", "", "", "Email"),
    ("newsletter", "e-mail", "", "Email"),
    ("google", "email", "", "Email"),
    ("", "", "", "Direct"),
    (None, None, None, "Direct"),
    ("(direct)", "(none)", "(direct)", "Direct"),
    ("partner", "affiliate", "", "Affiliates"),
    ("example.com", "referral", "", "Referral"),
    ("some-app", "app", "", "Referral"),
    ("spotify", "audio", "", "Audio"),
    ("sms", "", "", "SMS"),
    ("firebase", "", "", "Mobile Push Notifications"),
    ("shop_app", "push", "", "Mobile Push Notifications"),
    ("some", "unknown", "", "Unassigned"),
    ("", "", "spring_launch", "Unassigned"),
]


@pytest.fixture(scope="module")
def channel_rules() -> list[dict[str, str]]:
    rows = read_seed("channel_groups.csv")
    assert list(rows[0]) == ["priority", "channel_group", "source_pattern", "medium_pattern", "campaign_pattern", "channel"]
    priorities = [int(r["priority"]) for r in rows]
    assert len(priorities) == len(set(priorities))
    rows = sorted(rows, key=lambda r: int(r["priority"]))
    last = rows[-1]
    assert last["channel_group"] == "Unassigned"
    assert not (last["source_pattern"] or last["medium_pattern"] or last["campaign_pattern"])
    return rows


def channel_group(rules, source: str | None, medium: str | None, campaign: str | None) -> str:
    """Test-only evaluation of the seed (production evaluates it in SQL): first rule by
    priority whose non-empty patterns all match the lower-cased inputs (null = '')."""
    values = [(v or "").lower() for v in (source, medium, campaign)]
    for rule in rules:
        patterns = (rule["source_pattern"], rule["medium_pattern"], rule["campaign_pattern"])
        if all(not p or re.search(p, v) for p, v in zip(patterns, values)):
            return rule["channel_group"]
    raise AssertionError("no rule matched; the seed needs a catch-all")


@pytest.mark.parametrize(("source", "medium", "campaign", "expected"), CHANNEL_CASES)
def test_channel_group_rules(channel_rules, source, medium, campaign, expected):
    assert channel_group(channel_rules, source, medium, campaign) == expected


def test_channel_group_rules_give_the_same_answers_in_duckdb(channel_rules):
    """The patterns must mean the same in RE2 (DuckDB regexp_matches) as in Python re."""
    con = duckdb.connect()
    con.execute(
        "create table rules as select * from read_csv(?, header = true, all_varchar = true)",
        [str(SEEDS / "channel_groups.csv")],
    )
    con.execute("create table cases (i int, source varchar, medium varchar, campaign varchar)")
    con.executemany("insert into cases values (?, ?, ?, ?)",
                    [(i, s, m, c) for i, (s, m, c, _) in enumerate(CHANNEL_CASES)])
    got = dict(con.execute(
        """
        select i, arg_min(r.channel_group, cast(r.priority as int))
        from cases c join rules r
          on  (coalesce(r.source_pattern, '') = '' or regexp_matches(lower(coalesce(c.source, '')), r.source_pattern))
          and (coalesce(r.medium_pattern, '') = '' or regexp_matches(lower(coalesce(c.medium, '')), r.medium_pattern))
          and (coalesce(r.campaign_pattern, '') = '' or regexp_matches(lower(coalesce(c.campaign, '')), r.campaign_pattern))
        group by i
        """
    ).fetchall())
    assert got == {i: expected for i, (*_, expected) in enumerate(CHANNEL_CASES)}
