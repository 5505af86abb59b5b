"""Identity resolution (CONTRACT section 4): pipelines.identity.graph.

Every expectation here is written by hand from the rules; the inputs are tiny.
"""
from __future__ import annotations


import numpy as np
import polars as pl
import pytest

from pipelines.identity import graph as identity
from pipelines.identity.graph import pairwise_f1, resolve_identities

STATS_KEYS = {"records", "identifiers", "edges", "components", "iterations", "shared_devices",
              "merged_ids", "split_ids", "seconds"}


def links(*rows: tuple[str, str, str | None, str | None]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=["source", "source_key", "id_type", "id_value"], orient="row")


def cid(result, source: str, key: str) -> str:
    hit = result.assignments.filter((pl.col("source") == source) & (pl.col("source_key") == key))
    assert hit.height == 1, (source, key, hit)
    return hit["customer_id"].item()


def keyed(registry: pl.DataFrame) -> pl.DataFrame:
    """The registry with each row's node key as one string (id_key = key_type:key_value; a key of
    no known type is its key_value), the form older registries stored."""
    return registry.with_columns(id_key=pl.when(pl.col("key_type").is_null()).then(pl.col("key_value"))
                                 .otherwise(pl.concat_str(pl.col("key_type").cast(pl.String), pl.lit(":"), "key_value")))


def stored(result) -> pl.DataFrame:
    """The registry as the warehouse stores it (with customer_id), plus id_key (see keyed)."""
    return keyed(identity.registry_table(result.registry))


def persons(result) -> set[frozenset[str]]:
    """The partition of records (as 'source:key') into persons."""
    groups = result.assignments.group_by("customer_id").agg(
        pl.concat_str("source", pl.lit(":"), "source_key").alias("records"))
    return {frozenset(r) for r in groups["records"].to_list()}



def record_hashes(source: str, key: str) -> tuple[int, int]:
    """The two key hashes of the record node (source, key)."""
    h = identity._key_hashes(pl.Series([f"record:{source}"]), pl.Series([key]))
    return h["key_hash"].item(), h["key_check"].item()


def mix(h1: int, h2: int, attempt: int = 0) -> int:
    """A fresh id's code: Polars' hash of the anchor's pair (key_hash, key_check), seeded with the attempt."""
    pair = pl.DataFrame({"key_hash": [h1], "key_check": [h2]}, schema={"key_hash": pl.UInt64, "key_check": pl.UInt64})
    return pair.select(pl.struct("key_hash", "key_check").hash(attempt)).item()


def anchor(*records: tuple[str, str]) -> tuple[str, str]:
    """The record with the smallest key hashes: the one a new person's id comes from."""
    return min(records, key=lambda r: record_hashes(*r))


def fresh_id(*records: tuple[str, str], attempt: int = 0) -> str:
    """The id a new person made of these records gets on the given attempt."""
    return f"cus_{mix(*record_hashes(*anchor(*records)), attempt):016x}"


def web(anon: str, *ids: tuple[str, str]) -> list[tuple[str, str, str, str]]:
    return [("web_events", anon, "anonymous_id", anon), *(("web_events", anon, t, v) for t, v in ids)]


# ----------------------------------------------------------------------------- linking rules


def test_transitive_links_make_one_person():
    res = resolve_identities(links(
        ("crm_contacts", "c1", "email", "anna@example.com"),
        ("crm_contacts", "c1", "phone", "+4915112345678"),
        ("orders", "o1", "phone", "+4915112345678"),
        ("orders", "o1", "email", "anna.work@example.com"),
        ("surveys", "s1", "email", "anna.work@example.com"),
    ))
    assert persons(res) == {frozenset({"crm_contacts:c1", "orders:o1", "surveys:s1"})}
    # a new person's id: 'cus_' + the mix of the key hashes of its anchor record
    assert cid(res, "orders", "o1") == fresh_id(("crm_contacts", "c1"), ("orders", "o1"), ("surveys", "s1"))
    assert res.stats["records"] == 3
    assert res.stats["identifiers"] == 3
    assert res.stats["edges"] == 5
    assert res.stats["components"] == 1


def test_identical_normalised_emails_merge():
    res = resolve_identities(links(
        ("crm_contacts", "c1", "email", "max@gmail.com"),
        ("orders", "o9", "email", "max@gmail.com"),  # the caller folded max@googlemail.com
    ))
    assert cid(res, "crm_contacts", "c1") == cid(res, "orders", "o9")


def test_look_alike_identifiers_do_not_merge():
    res = resolve_identities(links(
        ("crm_contacts", "c1", "email", "anna.muller@x.de"),
        ("crm_contacts", "c2", "email", "anna.mueller@x.de"),
        ("orders", "o1", "phone", "+4915112345678"),
        ("orders", "o2", "phone", "+4915112345679"),
    ))
    assert res.stats["components"] == 4
    assert len(set(res.assignments["customer_id"])) == 4


def test_shared_device_links_nothing():
    res = resolve_identities(links(
        ("crm_contacts", "c1", "email", "anna@example.com"),
        ("crm_contacts", "c2", "email", "ben@example.com"),
        *web("anon-shared", ("email", "anna@example.com"), ("email", "ben@example.com")),
    ))
    assert persons(res) == {frozenset({"crm_contacts:c1"}), frozenset({"crm_contacts:c2"}),
                            frozenset({"web_events:anon-shared"})}
    assert res.stats["shared_devices"] == 1
    # the device is an anonymous person of its own, named after its own anonymous_id
    assert cid(res, "web_events", "anon-shared") == fresh_id(("web_events", "anon-shared"))
    # only the device's own anonymous_id link remains
    assert res.stats["edges"] == 3


def test_shared_device_by_two_user_ids():
    res = resolve_identities(links(
        ("orders", "o1", "user_id", "U1"),
        ("orders", "o2", "user_id", "U2"),
        *web("anon-1", ("user_id", "U1"), ("user_id", "U2"), ("email", "solo@example.com")),
        ("crm_contacts", "c1", "email", "solo@example.com"),
    ))
    assert res.stats["shared_devices"] == 1
    assert res.stats["components"] == 4  # its single email does not link either


def test_device_with_one_email_and_one_user_id_links_both():
    res = resolve_identities(links(
        ("crm_contacts", "c1", "email", "anna@example.com"),
        ("orders", "o1", "user_id", "U1"),
        *web("anon-1", ("email", "anna@example.com"), ("user_id", "U1"),
             ("email", "anna@example.com")),  # the same email seen on two events
    ))
    assert res.stats["shared_devices"] == 0
    assert persons(res) == {frozenset({"crm_contacts:c1", "orders:o1", "web_events:anon-1"})}


def test_order_linked_only_through_the_shop_account():
    res = resolve_identities(links(
        ("orders", "o1", "user_id", "U1"),
        *web("anon-1", ("user_id", "U1"), ("email", "e@example.com")),
        ("crm_contacts", "c1", "email", "e@example.com"),
    ))
    assert persons(res) == {frozenset({"orders:o1", "web_events:anon-1", "crm_contacts:c1"})}


def test_deal_and_survey_link_through_contact_id():
    res = resolve_identities(links(
        ("crm_contacts", "17", "contact_id", "17"),
        ("crm_deals", "d1", "contact_id", "17"),
        ("surveys", "r1", "contact_id", "17"),
        ("orders", "17", None, None),  # same key, other source: a different record
    ))
    assert persons(res) == {frozenset({"crm_contacts:17", "crm_deals:d1", "surveys:r1"}),
                            frozenset({"orders:17"})}


def test_record_without_identifiers_is_its_own_person():
    res = resolve_identities(links(
        ("orders", "o1", None, None),
        ("orders", "o2", "email", "a@example.com"),
        ("orders", "o3", "email", "a@example.com"),
    ))
    assert res.assignments.height == 3
    assert cid(res, "orders", "o1") == fresh_id(("orders", "o1"))
    assert cid(res, "orders", "o1") != cid(res, "orders", "o2")
    assert stored(res).filter(pl.col("id_key") == "record:orders:o1")["customer_id"].item() == cid(res, "orders", "o1")


def test_one_row_per_record_and_full_registry():
    res = resolve_identities(links(
        ("crm_contacts", "c1", "email", "a@example.com"),
        ("crm_contacts", "c1", "email", "a@example.com"),  # duplicated link row
        ("crm_contacts", "c1", "phone", "+491511"),
        ("orders", "o1", "email", "a@example.com"),
        ("orders", "o2", "phone", None),  # half an identifier is none
    ))
    assert res.assignments.columns == ["source", "source_key", "customer_id"]
    assert res.assignments.height == res.assignments.select("source", "source_key").n_unique() == 3
    assert res.registry.columns == ["key_type", "key_value", "customer_code", "key_hash", "key_check"]
    assert identity.registry_table(res.registry).columns == [
        "key_type", "key_value", "customer_id", "customer_code", "key_hash", "key_check"]
    assert stored(res)["customer_id"].sort().equals(
        pl.Series("customer_id", [cid(res, "orders", "o1")] * 4 + [cid(res, "orders", "o2")]).sort())
    assert set(keyed(res.registry)["id_key"]) == {"record:crm_contacts:c1", "record:orders:o1", "record:orders:o2",
                                           "email:a@example.com", "phone:+491511"}
    assert set(res.stats) == STATS_KEYS
    assert all(isinstance(v, (int, float)) for v in res.stats.values())  # counts only, no personal data


def test_lazy_input_and_empty_input():
    lazy = links(("orders", "o1", "email", "a@example.com")).lazy()
    assert resolve_identities(lazy).assignments.height == 1
    empty = resolve_identities(links().cast(pl.String))
    assert empty.assignments.is_empty() and empty.registry.is_empty()
    assert empty.stats["components"] == 0


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="id_value"):
        resolve_identities(pl.DataFrame({"source": ["orders"], "source_key": ["o1"], "id_type": ["email"]}))
    with pytest.raises(ValueError, match="unknown source"):
        resolve_identities(links(("shop", "o1", "email", "a@example.com")))
    with pytest.raises(ValueError, match="unknown id_type"):
        resolve_identities(links(("orders", "o1", "fax", "123")))
    with pytest.raises(ValueError, match="source_key"):
        resolve_identities(links(("orders", None, "email", "a@example.com")))


# ----------------------------------------------------------------------------- graph algorithm


def chain(n: int, seed: int) -> pl.DataFrame:
    """n orders, order i sharing a phone with order i + 1, in shuffled row order."""
    rows = [("orders", f"o{i}", "phone", f"+49{i}") for i in range(n)]
    rows += [("orders", f"o{i + 1}", "phone", f"+49{i}") for i in range(n - 1)]
    return links(*rows).sample(fraction=1.0, shuffle=True, seed=seed)


def test_long_chain_converges_in_few_rounds():
    res = resolve_identities(chain(3000, seed=1))
    assert res.stats["components"] == 1
    assert res.assignments["customer_id"].n_unique() == 1
    assert res.stats["iterations"] <= 30  # pointer jumping: far below the chain length


def test_hash_collisions_fall_back_to_grouping_on_both_hashes(monkeypatch, caplog):
    data = links(
        ("crm_contacts", "c1", "email", "a@example.com"),
        ("orders", "o1", "email", "a@example.com"),
        ("orders", "o2", "email", "b@example.com"),
        ("orders", "o3", None, None),
        ("surveys", "s1", "phone", "+49"),
        ("surveys", "s2", "phone", "+49"),
    )
    expected = resolve_identities(data)
    prepare = identity._prepare_links

    def colliding(frame):  # every key hashes to one of two values; the second hash stays honest
        one = pl.lit(1, pl.UInt64)
        return prepare(frame).with_columns(pl.col("record_hash") & one, pl.col("ident_hash") & one)

    monkeypatch.setattr(identity, "_prepare_links", colliding)
    with caplog.at_level("WARNING", logger="pipelines.identity.graph"):
        got = resolve_identities(data)
    assert sum("hash collision" in m for m in caplog.messages) == 2  # records and identifiers
    assert persons(got) == persons(expected)
    # ids come from the anchors' hashes as the run saw them: (h1 & 1, h2), smallest first
    for person in persons(got):
        records = [tuple(r.split(":")) for r in person]
        h1, h2 = min((record_hashes(*r)[0] & 1, record_hashes(*r)[1]) for r in records)
        assert {cid(got, *r) for r in records} == {f"cus_{mix(h1, h2):016x}"}
    shuffled = resolve_identities(data.sample(fraction=1.0, shuffle=True, seed=4))
    assert shuffled.assignments.sort("source", "source_key").equals(got.assignments.sort("source", "source_key"))


def test_sorting_by_key_detects_a_collision(caplog):
    frame = pl.DataFrame({"h1": _u64(7, 7, 3), "h2": _u64(1, 2, 3)}).with_row_index("row")
    with caplog.at_level("WARNING", logger="pipelines.identity.graph"):
        g = identity._sorted_by_key(frame, "h1", "h2", "key")
    assert any("hash collision" in m for m in caplog.messages)
    assert g["row"].to_list() == [2, 0, 1] and g["key"].to_list() == [0, 1, 2]
    g = identity._sorted_by_key(frame.with_columns(h2=_u64(1, 1, 3)), "h1", "h2", "key")
    assert g["row"][0] == 2 and g["key"].to_list() == [0, 1, 1]


def _u64(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.uint64)


def _match_registry(nodes, prev) -> tuple[np.ndarray, np.ndarray]:
    """identity._match_registry on frames: (node, registry row) of each match; prev.valid False
    stands for a registry key of no known type (null key_hash)."""
    node_frame = pl.DataFrame({"key_hash": nodes.hash, "key_check": nodes.check})
    prev_frame = pl.DataFrame({"key_hash": prev.hash, "key_check": prev.check}).with_columns(
        key_hash=pl.when(pl.lit(pl.Series(prev.valid))).then(pl.col("key_hash")))
    reg, node = identity._match_registry(prev_frame, node_frame)
    return node, reg


def test_registry_match_needs_both_hashes():
    from types import SimpleNamespace as NS
    nodes = NS(hash=_u64(3, 5, 9), check=_u64(30, 50, 90))
    prev = NS(hash=_u64(9, 5, 4, 3, 5), check=_u64(90, 51, 40, 30, 50),
              valid=np.array([True, True, True, False, True]), n=5)
    node, reg = _match_registry(nodes, prev)
    # row 1: second hash differs; row 2: no such node; row 3: not a node key
    assert sorted(zip(reg.tolist(), node.tolist())) == [(0, 2), (4, 1)]
    # two nodes share a first hash (after grouping on both hashes): joined on both hashes
    nodes = NS(hash=_u64(3, 3, 9), check=_u64(30, 31, 90))
    prev = NS(hash=_u64(3, 3, 9, 3), check=_u64(31, 30, 90, 32), valid=np.ones(4, bool), n=4)
    node, reg = _match_registry(nodes, prev)
    assert sorted(zip(reg.tolist(), node.tolist())) == [(0, 1), (1, 0), (2, 2)]
    empty = NS(hash=_u64(), check=_u64())
    assert len(_match_registry(empty, prev)[0]) == 0


def test_registry_key_hashes_are_the_node_hashes():
    # keys with ':' inside the value, an empty value, and keys that are no node keys
    res = resolve_identities(links(
        ("orders", "o:1:x", "email", "a:b@example.com"),
        ("web_events", "anon", "anonymous_id", ""),
        ("crm_contacts", "c1", "phone", "+491511"),
    ))
    again = identity._key_hashes(res.registry["key_type"], res.registry["key_value"])
    assert again.equals(res.registry.select("key_hash", "key_check"))
    assert again["key_hash"].null_count() == 0
    is_record = pl.col("key_type").cast(pl.String).str.starts_with("record:")
    identifiers = res.registry.filter(~is_record)["key_hash"]
    records = res.registry.filter(is_record)["key_hash"]
    assert identifiers.max() < 2**63 <= records.min()
    # one-column keys of older registries: split at the type's colon (a value may hold colons)
    split = identity._split_legacy_keys(pl.Series(
        ["nocolon", "record:nosuch:1", "record:orders", "fax:1", "email:x", "record:orders:o:1:x", "email:"]))
    assert split.rows() == [(None, "nocolon"), (None, "record:nosuch:1"), (None, "record:orders"), (None, "fax:1"),
                            ("email", "x"), ("record:orders", "o:1:x"), ("email", "")]
    odd = identity._key_hashes(split["key_type"], split["key_value"])
    assert odd["key_hash"].is_null().to_list() == [True, True, True, True, False, False, False]
    assert odd.row(5) == again.filter(res.registry["key_value"] == "o:1:x").row(0)


def test_old_stale_and_odd_registries_give_the_same_ids():
    first = resolve_identities(links(*BASE))
    table = identity.registry_table(first.registry)
    legacy = keyed(table).select("id_key", "customer_id")
    odd = pl.DataFrame({"id_key": ["nocolon", "record:nosuch:1", "fax:+4915100000001"],
                        "customer_id": ["cus_0000000000000003", "cus_0000000000000001", "cus_00000000000000ff"]})
    variants = {
        "as stored": table,
        "codes only": first.registry,
        "key type as text (as the warehouse stores it)": table.with_columns(pl.col("key_type").cast(pl.String)),
        "one-column keys and ids (an older registry)": legacy,
        "one-column keys with codes and hashes": keyed(table).drop("key_type", "key_value"),
        "stale hashes (another Polars version)": table.with_columns(pl.col("key_hash") + 1),
        "wrong codes": table.with_columns(customer_code=pl.lit(7, pl.UInt64)),
        "null codes": table.with_columns(customer_code=pl.lit(None, pl.UInt64)),
        "a row without key or id": pl.concat(
            [table, pl.DataFrame({"key_type": ["email", "email"], "key_value": [None, "z@example.com"]},
                                 schema={"key_type": identity.KEY_TYPE, "key_value": pl.String})], how="diagonal"),
    }
    for what, registry in variants.items():
        again = resolve_identities(links(*BASE), registry)
        assert again.assignments.equals(first.assignments), what
        assert again.registry.sort("key_type", "key_value").equals(first.registry.sort("key_type", "key_value")), what
    # keys of no known form match nothing and are kept with their ids
    again = resolve_identities(links(*BASE), pl.concat([legacy, odd]))
    assert again.assignments.equals(first.assignments)
    kept = stored(again).join(odd, on="id_key")
    assert kept.height == 3 and (kept["customer_id"] == kept["customer_id_right"]).all()
    assert kept["customer_code"].to_list() == [3, 1, 255]
    assert kept["key_hash"].null_count() == 3  # no id type "fax", no source "nosuch", no colon


def test_registry_ids_of_another_form_are_refused():
    registry = pl.DataFrame({"key_type": ["email", "record:orders"], "key_value": ["a@example.com", "o2"],
                             "customer_id": ["cus_00000000000000aa", "CUST-0001"]})
    with pytest.raises(ValueError, match=r"registry row 1: customer_id 'CUST-0001' does not have the form 'cus_'"):
        resolve_identities(links(("orders", "o1", "email", "a@example.com")), registry)
    for columns in (["key_type", "key_value"], ["key_value", "customer_id"]):
        with pytest.raises(ValueError, match=r"needs columns key_type and key_value \(or id_key\) and customer_code"):
            resolve_identities(links(("orders", "o1", "email", "a@example.com")), registry.select(columns))


# ----------------------------------------------------------------------------- stable ids


BASE = [
    ("crm_contacts", "c1", "email", "anna@example.com"),
    ("crm_contacts", "c1", "phone", "+4915100000001"),
    ("orders", "o1", "email", "anna@example.com"),
    ("surveys", "s1", "email", "ben@example.com"),
    ("orders", "o2", None, None),
]


def test_ids_are_stable_when_records_are_added():
    first = resolve_identities(links(*BASE))
    second = resolve_identities(links(
        *BASE,
        ("crm_contacts", "c9", "email", "new@example.com"),  # a new person
        ("orders", "o3", "phone", "+4915100000001"),  # a new record of anna
    ), first.registry)
    old = first.assignments.join(second.assignments, on=["source", "source_key"], suffix="_2")
    assert old.height == first.assignments.height
    assert (old["customer_id"] == old["customer_id_2"]).all()
    assert cid(second, "orders", "o3") == cid(first, "crm_contacts", "c1")
    assert cid(second, "crm_contacts", "c9") not in set(first.assignments["customer_id"])
    assert cid(second, "crm_contacts", "c9") == fresh_id(("crm_contacts", "c9"))
    assert second.stats["merged_ids"] == 0 and second.stats["split_ids"] == 0
    # the registry grows by the new keys only: two records and one email
    assert second.registry.height == first.registry.height + 3


def test_same_input_against_its_own_registry_changes_nothing():
    first = resolve_identities(links(*BASE))
    again = resolve_identities(links(*BASE), first.registry)
    assert again.assignments.equals(first.assignments)
    assert again.registry.sort("key_type", "key_value").equals(first.registry.sort("key_type", "key_value"))


def test_merge_keeps_the_id_with_more_registry_keys():
    first = resolve_identities(links(*BASE))
    anna, ben = cid(first, "crm_contacts", "c1"), cid(first, "surveys", "s1")
    assert anna != ben
    # anna has 5 registry keys (2 records, email, phone... ), ben 2; an order now links both
    second = resolve_identities(links(
        *BASE,
        ("orders", "o4", "email", "anna@example.com"),
        ("orders", "o4", "email", "ben@example.com"),
    ), first.registry)
    for source, key in [("crm_contacts", "c1"), ("orders", "o1"), ("surveys", "s1"), ("orders", "o4")]:
        assert cid(second, source, key) == anna
    assert second.stats["merged_ids"] == 1
    assert second.stats["split_ids"] == 0
    # ben's keys now point at anna's id
    assert set(stored(second).filter(pl.col("id_key").str.contains("ben"))["customer_id"]) == {anna}


def test_merge_tie_takes_the_smallest_id():
    first = resolve_identities(links(("orders", "o1", "email", "x@example.com"),
                                     ("orders", "o2", "email", "y@example.com")))
    ids = sorted(first.assignments["customer_id"])
    second = resolve_identities(links(("orders", "o1", "email", "x@example.com"),
                                      ("orders", "o2", "email", "y@example.com"),
                                      ("orders", "o2", "email", "x@example.com")), first.registry)
    # o1 + x (2 keys) against o2 + y (2 keys): a tie, the smaller id wins
    assert set(second.assignments["customer_id"]) == {ids[0]}
    assert second.stats["merged_ids"] == 1


def test_split_keeps_the_id_on_the_larger_part():
    chain_rows = [
        ("crm_contacts", "c12", "email", "a@example.com"),
        ("orders", "o1", "email", "a@example.com"),  # the bridge
        ("orders", "o1", "phone", "+491"),
        ("orders", "o2", "phone", "+491"),
        ("orders", "o2", "email", "z@example.com"),
        ("surveys", "s1", "email", "z@example.com"),
    ]
    first = resolve_identities(links(*chain_rows))
    assert first.stats["components"] == 1
    old = cid(first, "crm_contacts", "c12")
    second = resolve_identities(links(*[r for r in chain_rows if r[1] != "o1"]), first.registry)
    # parts: {c12, email:a} (2 keys) and {o2, s1, phone, email:z} (4 keys)
    assert cid(second, "orders", "o2") == cid(second, "surveys", "s1") == old
    # the smaller part is new and anchored on c12 -- which anchored the whole chain before (the
    # record with the smallest key hash), so its first draw is the old id, taken: drawn again
    assert anchor(("crm_contacts", "c12"), ("orders", "o1"), ("orders", "o2"), ("surveys", "s1")) \
        == ("crm_contacts", "c12")
    assert old == fresh_id(("crm_contacts", "c12"))
    assert cid(second, "crm_contacts", "c12") == fresh_id(("crm_contacts", "c12"), attempt=1)
    assert second.stats["split_ids"] == 1
    assert second.stats["merged_ids"] == 0
    # the vanished record stays in the registry with its last id
    assert stored(second).filter(pl.col("id_key") == "record:orders:o1")["customer_id"].item() == old


def test_split_tie_goes_to_the_part_with_the_smallest_anchor():
    rows = [("orders", "o1", "email", "b@example.com"), ("orders", "o2", "email", "b@example.com"),
            ("orders", "o2", "email", "a@example.com"), ("orders", "o6", "email", "a@example.com")]
    first = resolve_identities(links(*rows))
    old = cid(first, "orders", "o1")
    second = resolve_identities(links(rows[0], rows[3]), first.registry)
    # {o1, email:b} and {o6, email:a}: 2 keys each; o6's key hashes are the smaller ones
    assert anchor(("orders", "o1"), ("orders", "o6")) == ("orders", "o6")
    assert cid(second, "orders", "o6") == old
    assert cid(second, "orders", "o1") == fresh_id(("orders", "o1"))
    assert second.stats["split_ids"] == 1


def test_returning_identifier_gets_its_person_back():
    first = resolve_identities(links(("surveys", "s1", "email", "back@example.com")))
    old = cid(first, "surveys", "s1")
    gone = resolve_identities(links(("orders", "o1", "email", "other@example.com")), first.registry)
    assert stored(gone).filter(pl.col("id_key") == "email:back@example.com")["customer_id"].item() == old
    back = resolve_identities(links(("orders", "o1", "email", "other@example.com"),
                                    ("crm_contacts", "c5", "email", "back@example.com")), gone.registry)
    assert cid(back, "crm_contacts", "c5") == old


def test_fresh_id_is_drawn_again_when_taken():
    data = links(("orders", "o1", "email", "a@example.com"))
    wanted = fresh_id(("orders", "o1"))
    registry = pl.DataFrame({"key_type": ["email"], "key_value": ["someone-else@example.com"], "customer_id": [wanted]})
    res = resolve_identities(data, registry)
    assert cid(res, "orders", "o1") == fresh_id(("orders", "o1"), attempt=1)


def test_fresh_id_comes_from_the_anchor_record_only():
    # the identifiers do not matter, only which record has the smallest key hashes
    res = resolve_identities(links(("orders", "a1", "user_id", "u1"), ("crm_contacts", "z9", "user_id", "u1"),
                                   ("crm_deals", "d1", "user_id", "u2"), ("crm_deals", "d0", "user_id", "u2")))
    other = resolve_identities(links(("orders", "a1", "email", "x@example.com"),
                                     ("crm_contacts", "z9", "phone", "+4930123"),
                                     ("crm_contacts", "z9", "email", "x@example.com")))
    assert cid(res, "orders", "a1") == cid(res, "crm_contacts", "z9") == cid(other, "orders", "a1") \
        == fresh_id(("orders", "a1"), ("crm_contacts", "z9"))
    assert cid(res, "crm_deals", "d1") == fresh_id(("crm_deals", "d0"), ("crm_deals", "d1"))


def _fresh_ids(h1: np.ndarray, h2: np.ndarray, taken: np.ndarray) -> np.ndarray:
    return identity._fresh_codes(h1, h2, pl.Series(taken, dtype=pl.UInt64))


def test_fresh_codes_are_polars_hashes_of_the_anchor_hashes():
    # attempt 0 for every component; attempt 2 only after two clashes (see the next test)
    pairs = pl.DataFrame({"key_hash": _u64(1, 5), "key_check": _u64(0, 7)})
    x = pairs.select(pl.struct("key_hash", "key_check").hash(0)).to_series().to_list()
    got = _fresh_ids(np.array([1, 5], np.uint64), np.array([0, 7], np.uint64), _u64())
    assert got.tolist() == x == [mix(1, 0), mix(5, 7)]
    assert len({mix(5, 7, attempt) for attempt in range(3)}) == 3


def test_fresh_ids_draw_again_on_clashes():
    # two components with the same anchor hashes (only possible by hand) draw the same code:
    # the first keeps it, the second draws again; a taken code is drawn again too
    h1, h2 = np.array([5, 5, 9], np.uint64), np.array([7, 7, 3], np.uint64)
    got = _fresh_ids(h1, h2, np.array([mix(9, 3)], np.uint64))
    assert got.tolist() == [mix(5, 7), mix(5, 7, 1), mix(9, 3, 1)]
    # the smaller anchor keeps a code two components drew: (5, 7) before (5, 8)
    h1, h2 = np.array([5, 5], np.uint64), np.array([8, 7], np.uint64)
    assert _fresh_ids(h1, h2, np.zeros(0, np.uint64))[1] == mix(5, 7)


def test_a_stored_key_type_no_longer_known_is_kept_and_matches_nothing():
    first = resolve_identities(links(("orders", "o1", "email", "a@example.com")))
    table = identity.registry_table(first.registry).with_columns(pl.col("key_type").cast(pl.String))
    gone = pl.DataFrame({"key_type": ["record:shop"], "key_value": ["o1"], "customer_id": ["cus_00000000000000aa"]})
    again = resolve_identities(links(("orders", "o1", "email", "a@example.com")),
                               pl.concat([table, gone], how="diagonal"))
    assert again.assignments.equals(first.assignments)
    kept = stored(again).filter(pl.col("key_type").is_null())
    assert kept.select("key_value", "customer_id", "key_hash").rows() == [("record:shop:o1", "cus_00000000000000aa", None)]


# ----------------------------------------------------------------------------- determinism


def test_deterministic_and_independent_of_row_order():
    rows = BASE + [
        *web("anon-1", ("email", "anna@example.com")),
        *web("anon-2", ("email", "x@example.com"), ("email", "y@example.com")),
        ("crm_deals", "d1", "contact_id", "c1"),
        ("crm_contacts", "c1", "contact_id", "c1"),
    ]
    a, b = resolve_identities(links(*rows)), resolve_identities(links(*rows))
    assert a.assignments.equals(b.assignments)
    assert a.registry.equals(b.registry)
    assert {k: v for k, v in a.stats.items() if k != "seconds"} == {k: v for k, v in b.stats.items() if k != "seconds"}
    for seed in (1, 2, 3):
        shuffled = resolve_identities(links(*rows).sample(fraction=1.0, shuffle=True, seed=seed))
        assert shuffled.assignments.equals(a.assignments)
        assert shuffled.registry.equals(a.registry)


# ----------------------------------------------------------------------------- evaluation


def test_pairwise_f1_on_a_hand_made_example():
    predicted = pl.DataFrame({
        "source": ["orders"] * 6,
        "source_key": ["r1", "r2", "r3", "r4", "r5", "r6"],
        "customer_id": ["A", "A", "B", "B", "B", "B"],
    })
    truth = pl.DataFrame({
        "source": ["orders"] * 6,
        "source_key": ["r1", "r2", "r3", "r4", "r5", "r6"],
        "person_id": ["X", "X", "X", "X", "Y", None],  # r6 is a person of its own
    })
    # predicted pairs: A 1 + B 6 = 7; true pairs: X 6; both: (A, X) 1 + (B, X) 1 = 2
    got = pairwise_f1(predicted, truth)
    assert got["predicted_pairs"] == 7 and got["true_pairs"] == 6 and got["true_positive_pairs"] == 2
    assert got["precision"] == pytest.approx(2 / 7)
    assert got["recall"] == pytest.approx(1 / 3)
    assert got["f1"] == pytest.approx(4 / 13)


def test_pairwise_f1_perfect_and_empty():
    p = pl.DataFrame({"source": ["orders"] * 3, "source_key": ["a", "b", "c"], "customer_id": ["1", "1", "2"]})
    t = pl.DataFrame({"source": ["orders"] * 3, "source_key": ["a", "b", "c"], "person_id": ["p", "p", "q"]})
    assert pairwise_f1(p, t)["f1"] == 1.0
    singles = p.with_columns(customer_id=pl.col("source_key"))
    got = pairwise_f1(singles, t)
    assert got["precision"] == 1.0 and got["recall"] == 0.0 and got["f1"] == 0.0
