"""The Store conformance suite for documents (search and forms: test_search_storage, test_forms_storage).

Written once and run against every store kind through the fixtures of ``test_storage``; every
test makes its own bases with random names, so tests can share one PostgreSQL database.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import orjson
import pytest

from sbserver.backends.storage.base import Store
from sbserver.clauses import Clause, Sort
from sbserver.errors import Conflict, Forbidden
from sbserver.services.query import parse_clauses
from sbserver.types import ALL_ROWS, Base, Scope, StoredDoc
from tests.backends import test_storage
from tests.backends.test_storage import make_account, make_base, uid

# The fixtures of the Store suite, so these tests run once per store kind exactly as it does.
new_store = test_storage.new_store
store = test_storage.store

NOW = "2024-05-01T10:00:00Z"
COL = "posts_764_"


def doc(account_id: str = "acct", owner_id: str = "user", created: str = NOW, **data: Any) -> StoredDoc:
    return StoredDoc(uid(), account_id, owner_id, created, data)


async def every(store: Store, base: Base, col: str, scope: Scope) -> list[StoredDoc]:
    """Every document of the scope in creation order."""
    found, total = await store.query_documents(base, col, scope, [], Sort(), -1, 0)
    assert total == len(found)
    return found


def where(*clauses: list[Any]) -> list[Clause]:
    return parse_clauses(list(clauses))


async def search(store: Store, base: Base, col: str, words: str, limit: int = 100) -> list[str]:
    return await store.search_text(base, col, words.split(" "), limit)


# documents: values


# Every JSON shape a client may send; the expected bytes are what both stores must give back.
ODD_DATA: dict[str, Any] = {
    "zebra": 1,
    "apple": 2,
    "ünïcødé": '用户 😀 \u00e9\u0301 tab\tnewline\n quote" backslash\\ nul\u0000',
    "nested": {"b": [1, {"y": None, "x": [[], {}]}], "a": {"deep": {"deeper": "yes"}}},
    "floats": [1.5, 1e-7, -0.0, 0.1, 1e300, 2.5e-300, 123456.789],
    "ints": [0, -1, 2**53 + 1, 2**63 - 1, -(2**63)],
    "bools": [True, False],
    "null": None,
    "empty_list": [],
    "empty_obj": {},
    "": "empty key",
}
ODD_BYTES = orjson.dumps(ODD_DATA)


async def test_insert_get_round_trip_is_byte_identical(store: Store) -> None:
    base = await make_base(store)
    d = doc(**ODD_DATA)
    await store.insert_documents(base, COL, [d], "764")
    for found in [
        await store.get_document(base, COL, d.id, ALL_ROWS),
        *(await store.get_documents(base, COL, [d.id], ALL_ROWS)),
        *(await store.list_documents(base, COL, ALL_ROWS, False, 10, 0))[0],
        *(await every(store, base, COL, ALL_ROWS)),
        *(await store.query_documents(base, COL, ALL_ROWS, where(["zebra", "==", 1]), Sort(), 5, 0))[0],
    ]:
        assert found == d
        assert found is not None and orjson.dumps(found.data) == ODD_BYTES
        assert list(found.data) == list(ODD_DATA)  # key order kept
        assert list(found.data["nested"]) == ["b", "a"]
        assert found.data["ints"][3] == 2**63 - 1 and isinstance(found.data["ints"][3], int)
        assert found.data["floats"][1] == 1e-7 and isinstance(found.data["floats"][1], float)
    assert orjson.dumps(ODD_DATA["floats"]) == b"[1.5,1e-7,-0.0,0.1,1e+300,2.5e-300,123456.789]"


async def test_missing_things_read_as_empty(store: Store) -> None:
    base = await make_base(store)
    assert await store.get_document(base, "never", uid(), ALL_ROWS) is None
    assert await store.get_documents(base, "never", [uid()], ALL_ROWS) == []
    assert await store.get_documents(base, "never", [], ALL_ROWS) == []
    assert await store.list_documents(base, "never", ALL_ROWS, False, 25, 0) == ([], 0)
    assert await store.count_documents(base, "never", ALL_ROWS) == 0
    assert await every(store, base, "never", ALL_ROWS) == []
    assert await store.update_document(base, "never", uid(), ALL_ROWS, lambda d: {"x": 1}) is None
    assert await store.update_documents(base, "never", ALL_ROWS, [], lambda d: {}) == []
    assert await store.delete_document(base, "never", "not-a-uuid", ALL_ROWS) is None
    assert await store.delete_documents(base, "never", ALL_ROWS, []) == []
    assert await store.collections(base) == {}
    assert await store.search_text(base, "never", ["word"], 10) == []
    assert await store.forms(base, None, 10) == []


async def test_insert_is_all_or_nothing(store: Store) -> None:
    base = await make_base(store)
    a, b = doc(n=1), doc(n=2)
    with pytest.raises(Conflict, match="already exists"):  # duplicate id inside one batch
        await store.insert_documents(base, COL, [a, b, StoredDoc(a.id, "x", "y", NOW, {})], "764")
    assert await store.count_documents(base, COL, ALL_ROWS) == 0
    assert await store.get_document(base, COL, a.id, ALL_ROWS) is None
    assert await store.collections(base) == {}  # the registration rolled back too

    await store.insert_documents(base, COL, [a], "764")
    with pytest.raises(Conflict):  # an id that already exists
        await store.insert_documents(base, COL, [b, StoredDoc(a.id, "x", "y", NOW, {})], "764")
    assert await every(store, base, COL, ALL_ROWS) == [a]

    # The same id in another collection or another base is fine.
    await store.insert_documents(base, "other", [StoredDoc(a.id, "x", "y", NOW, {"o": 1})], "700")
    other = await make_base(store)
    await store.insert_documents(other, COL, [a], "764")
    assert (await store.get_document(base, "other", a.id, ALL_ROWS)) == StoredDoc(a.id, "x", "y", NOW, {"o": 1})
    assert await store.get_document(base, COL, a.id, ALL_ROWS) == a


async def test_bulk_insert(store: Store) -> None:
    base = await make_base(store)
    docs = [doc(created=f"2024-01-01T00:00:{i % 60:02d}Z", i=i) for i in range(500)]
    await store.insert_documents(base, COL, docs, "764")
    assert await store.count_documents(base, COL, ALL_ROWS) == 500
    assert await every(store, base, COL, ALL_ROWS) == sorted(docs, key=lambda d: (d.created, d.id))


# documents: scopes


class World:
    """Two accounts in one base: account A has users a1 and a2, account B has user b1."""

    def __init__(self, base: Base, a: str, a1: str, a2: str, b: str, b1: str) -> None:
        self.base, self.a, self.a1, self.a2, self.b, self.b1 = base, a, a1, a2, b, b1
        self.docs: dict[str, StoredDoc] = {}

    async def fill(self, store: Store) -> None:
        who = {"a1": (self.a, self.a1), "a2": (self.a, self.a2), "b1": (self.b, self.b1)}
        for i, (name, (account, owner)) in enumerate(
            [("a1", who["a1"]), ("a2", who["a2"]), ("b1", who["b1"]), ("a1", who["a1"])]
        ):
            d = doc(account, owner, f"2024-01-0{i + 1}T00:00:00Z", by=name, i=i)
            self.docs[f"{name}-{i}"] = d
        await store.insert_documents(self.base, COL, list(self.docs.values()), "764")


async def world(store: Store) -> World:
    base = await make_base(store)
    a, a1 = await make_account(store, base)
    b, b1 = await make_account(store, base)
    a2 = uid()
    w = World(base, a.id, a1.id, a2, b.id, b1.id)
    await w.fill(store)
    return w


async def test_scopes_on_reads(store: Store) -> None:
    w = await world(store)
    d = w.docs
    everything = list(d.values())
    cases: list[tuple[Scope, list[StoredDoc]]] = [
        (ALL_ROWS, everything),
        (Scope(account_id=w.a), [d["a1-0"], d["a2-1"], d["a1-3"]]),
        (Scope(account_id=w.b), [d["b1-2"]]),
        (Scope(account_id=w.a, owner_id=w.a1), [d["a1-0"], d["a1-3"]]),
        (Scope(account_id=w.a, owner_id=w.a2), [d["a2-1"]]),
        (Scope(account_id=w.b, owner_id=w.a1), []),  # owner scope checks the account too
        (Scope(owner_id=w.a1), []),  # an owner scope without an account matches nothing
        (Scope(account_id=uid()), []),
    ]
    ids = [x.id for x in everything]
    for scope, expected in cases:
        assert await every(store, w.base, COL, scope) == expected, scope
        assert await store.count_documents(w.base, COL, scope) == len(expected), scope
        assert await store.list_documents(w.base, COL, scope, False, 25, 0) == (expected, len(expected))
        assert await store.get_documents(w.base, COL, [*ids, uid()], scope) == expected, scope
        for x in everything:
            assert (await store.get_document(w.base, COL, x.id, scope)) == (x if x in expected else None)


async def test_list_paging_desc_and_totals(store: Store) -> None:
    base = await make_base(store)
    docs = [doc(created=f"2024-01-01T00:00:0{i % 4}Z", i=i) for i in range(7)]  # with ties
    await store.insert_documents(base, COL, docs, "764")
    ordered = sorted(docs, key=lambda d: (d.created, d.id))
    for offset in [0, 3, 6]:
        assert await store.list_documents(base, COL, ALL_ROWS, False, 3, offset) == (
            ordered[offset : offset + 3],
            7,
        )
        assert await store.list_documents(base, COL, ALL_ROWS, True, 3, offset) == (
            ordered[::-1][offset : offset + 3],
            7,
        )
    assert await store.list_documents(base, COL, ALL_ROWS, False, 3, 10) == ([], 7)
    assert await store.list_documents(base, COL, ALL_ROWS, False, 7, 0) == (ordered, 7)
    assert await store.list_documents(base, COL, ALL_ROWS, True, 100, 0) == (ordered[::-1], 7)
    assert await store.list_documents(base, COL, ALL_ROWS, False, 1, 0) == (ordered[:1], 7)


async def test_order_is_created_then_id_bytewise(store: Store) -> None:
    base = await make_base(store)
    # Byte order, not a locale's: "B" < "Z" < "_" < "a" < "é", and "." < "Z" in the times.
    ids = ["é", "a", "_", "Z", "B", "a-1", "A"]
    times = ["2024-01-01T00:00:00Z", "2024-01-01T00:00:00.5Z", "2024-01-01T00:00:00Z"]
    docs = [StoredDoc(i, "acct", "user", times[n % 3], {"n": n}) for n, i in enumerate(ids)]
    shuffled = docs[:]
    random.shuffle(shuffled)
    await store.insert_documents(base, COL, shuffled, "764")
    expected = sorted(docs, key=lambda d: (d.created.encode(), d.id.encode()))
    assert [d.created for d in expected][:2] == ["2024-01-01T00:00:00.5Z"] * 2
    assert await every(store, base, COL, ALL_ROWS) == expected
    assert await store.list_documents(base, COL, ALL_ROWS, False, 100, 0) == (expected, len(docs))
    assert await store.list_documents(base, COL, ALL_ROWS, True, 100, 0) == (expected[::-1], len(docs))
    assert await store.get_documents(base, COL, ids, ALL_ROWS) == expected


# documents: updates


def bump(d: StoredDoc) -> dict[str, Any]:
    return {**d.data, "n": d.data["n"] + 1}


async def test_update_document(store: Store) -> None:
    w = await world(store)
    target = w.docs["a1-0"]
    mine = Scope(account_id=w.a, owner_id=w.a1)

    updated = await store.update_document(w.base, COL, target.id, mine, lambda d: {"new": True, **d.data})
    expected = StoredDoc(target.id, w.a, w.a1, target.created, {"new": True, **target.data})
    assert updated == expected
    stored = await store.get_document(w.base, COL, target.id, ALL_ROWS)
    assert stored == expected and stored is not None and list(stored.data) == ["new", "by", "i"]

    # None: left as it is, and the current document is returned.
    assert await store.update_document(w.base, COL, target.id, mine, lambda d: None) == expected
    assert await store.get_document(w.base, COL, target.id, ALL_ROWS) == expected

    # Raising: the error propagates unchanged and nothing is written.
    refusal = Forbidden("not authorized")

    def refuse(d: StoredDoc) -> dict[str, Any]:
        raise refusal

    with pytest.raises(Forbidden) as caught:
        await store.update_document(w.base, COL, target.id, mine, refuse)
    assert caught.value is refusal
    assert await store.get_document(w.base, COL, target.id, ALL_ROWS) == expected

    # Out of scope: None, and the mutation is never called.
    calls: list[str] = []

    def spy(d: StoredDoc) -> dict[str, Any]:
        calls.append(d.id)
        return {}

    for scope in [Scope(account_id=w.b), Scope(account_id=w.a, owner_id=w.a2), Scope(owner_id=w.a1)]:
        assert await store.update_document(w.base, COL, target.id, scope, spy) is None
    assert await store.update_document(w.base, "other", target.id, ALL_ROWS, spy) is None
    assert calls == []
    assert await store.get_document(w.base, COL, target.id, ALL_ROWS) == expected


async def test_update_documents_with_predicate_and_scope(store: Store) -> None:
    w = await world(store)
    d = w.docs
    seen: list[str] = []

    def mutate(x: StoredDoc) -> dict[str, Any] | None:
        seen.append(x.id)
        return None if x.data["i"] == 3 else {**x.data, "touched": True}

    changed = await store.update_documents(w.base, COL, Scope(account_id=w.a), where(["i", "!=", 1]), mutate)
    assert seen == [d["a1-0"].id, d["a1-3"].id]  # in creation order; a2-1 did not match, b1 out of scope
    first = d["a1-0"]
    touched = StoredDoc(
        first.id, first.account_id, first.owner_id, first.created, {"by": "a1", "i": 0, "touched": True}
    )
    assert changed == [touched]
    after = {x.id: x for x in await every(store, w.base, COL, ALL_ROWS)}
    assert after[first.id] == touched
    for key in ["a2-1", "b1-2", "a1-3"]:
        assert after[d[key].id] == d[key]

    # A raise part-way rolls back the documents already changed.
    def fail_on_second(x: StoredDoc) -> dict[str, Any]:
        if x.data["i"] == 3:
            raise Forbidden("not authorized")
        return {"wiped": True}

    with pytest.raises(Forbidden, match="not authorized"):
        await store.update_documents(w.base, COL, ALL_ROWS, [], fail_on_second)
    assert {x.id: x for x in await every(store, w.base, COL, ALL_ROWS)} == after


async def test_concurrent_updates_do_not_lose_writes(store: Store) -> None:
    base = await make_base(store)
    target, bystander = doc(n=0), doc(n=0)
    await store.insert_documents(base, COL, [target, bystander], "764")
    results = await asyncio.gather(*(store.update_document(base, COL, target.id, ALL_ROWS, bump) for _ in range(50)))
    assert sorted(r.data["n"] for r in results if r is not None) == list(range(1, 51))
    found = await store.get_document(base, COL, target.id, ALL_ROWS)
    assert found is not None and found.data == {"n": 50}

    # Bulk updates interleaved with single ones: every increment lands too.
    await asyncio.gather(
        *(store.update_documents(base, COL, ALL_ROWS, [], bump) for _ in range(10)),
        *(store.update_document(base, COL, bystander.id, ALL_ROWS, bump) for _ in range(10)),
    )
    counts = {x.id: x.data["n"] for x in await every(store, base, COL, ALL_ROWS)}
    assert counts == {target.id: 60, bystander.id: 20}


# documents: deletes


async def test_delete_document(store: Store) -> None:
    w = await world(store)
    target = w.docs["a2-1"]
    await store.index_text(w.base, COL, target.id, "unique zeppelin words")
    await store.index_text(w.base, "other", target.id, "unique zeppelin words")

    assert await store.delete_document(w.base, COL, target.id, Scope(account_id=w.b)) is None
    assert await store.delete_document(w.base, COL, target.id, Scope(account_id=w.a, owner_id=w.a1)) is None
    assert await store.delete_document(w.base, COL, target.id, Scope(owner_id=w.a2)) is None
    assert await store.delete_document(w.base, "other", target.id, ALL_ROWS) is None
    assert await search(store, w.base, COL, "zeppelin") == [target.id]  # nothing deleted yet

    # It comes back as it was.
    assert await store.delete_document(w.base, COL, target.id, Scope(account_id=w.a, owner_id=w.a2)) == target
    assert await store.delete_document(w.base, COL, target.id, ALL_ROWS) is None
    assert await store.get_document(w.base, COL, target.id, ALL_ROWS) is None
    assert await store.count_documents(w.base, COL, ALL_ROWS) == 3
    # Its search entry went with it, even once a document with the same id comes back.
    assert await search(store, w.base, COL, "zeppelin") == []
    await store.insert_documents(w.base, COL, [target], "764")
    assert await search(store, w.base, COL, "zeppelin") == []
    assert await search(store, w.base, "other", "zeppelin") == [target.id]  # other collection kept


async def test_delete_documents_with_predicate_and_scope(store: Store) -> None:
    w = await world(store)
    d = w.docs
    for key, x in d.items():
        await store.index_text(w.base, COL, x.id, f"marker {key}")
    deleted = await store.delete_documents(w.base, COL, Scope(account_id=w.a), where(["i", "!=", 1]))
    assert deleted == [d["a1-0"], d["a1-3"]]  # as they were, in creation order
    assert await every(store, w.base, COL, ALL_ROWS) == [d["a2-1"], d["b1-2"]]
    assert sorted(await search(store, w.base, COL, "marker")) == sorted([d["a2-1"].id, d["b1-2"].id])

    assert await store.delete_documents(w.base, COL, Scope(account_id=w.b, owner_id=w.a2), []) == []
    assert await store.delete_documents(w.base, COL, ALL_ROWS, where(["i", "==", "none"])) == []
    assert await store.delete_documents(w.base, COL, ALL_ROWS, []) == [d["a2-1"], d["b1-2"]]
    assert await store.count_documents(w.base, COL, ALL_ROWS) == 0
    assert await search(store, w.base, COL, "marker") == []


async def test_delete_documents_many(store: Store) -> None:
    base = await make_base(store)
    docs = [doc(i=i, m=i % 3) for i in range(1200)]
    await store.insert_documents(base, COL, docs, "764")
    deleted = await store.delete_documents(base, COL, ALL_ROWS, where(["m", "!=", 0]))
    assert sorted(x.id for x in deleted) == sorted(x.id for x in docs if x.data["i"] % 3 != 0)
    assert await store.count_documents(base, COL, ALL_ROWS) == 400


# collections and indexes


async def test_collections_keep_the_first_perm(store: Store) -> None:
    base, other = await make_base(store), await make_base(store)
    await store.insert_documents(base, "b_col_700_", [doc()], "700")
    await store.insert_documents(base, "a_col", [doc()], "766")
    await store.insert_documents(base, "b_col_700_", [doc()], "777")
    await store.insert_documents(base, "B_upper", [doc()], "744")
    found = await store.collections(base)
    assert found == {"a_col": "766", "b_col_700_": "700", "B_upper": "744"}
    assert list(found) == ["B_upper", "a_col", "b_col_700_"]  # sorted by name, bytewise
    assert await store.collections(other) == {}
    # Deleting every document keeps the collection.
    await store.delete_documents(base, "a_col", ALL_ROWS, [])
    assert "a_col" in await store.collections(base)


async def test_create_index_is_idempotent(store: Store) -> None:
    base = await make_base(store)
    await store.create_index(base, "never_written", "name")
    await store.insert_documents(base, COL, [doc(name="x")], "764")
    for _ in range(2):
        await store.create_index(base, COL, "name")
        await store.create_index(base, COL, "nested.field")
    assert await store.count_documents(base, COL, ALL_ROWS) == 1
    assert await store.indexes(base, COL) == ["name", "nested.field"]
    assert await store.indexes(base, "never_written") == ["name"]
    assert await store.indexes(base, "other") == []
    # Queries on an indexed field answer as before.
    found, total = await store.query_documents(base, COL, ALL_ROWS, where(["name", "==", "x"]), Sort(), 10, 0)
    assert total == 1 and found[0].data == {"name": "x"}
