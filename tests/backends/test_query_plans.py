"""Query plans: an index made by ``create_index`` is what the database reads for an equality, a
range and a sort on its field, in every scope; a user's documents are counted from an index
alone. Written once, run on every store kind (the plan's wording is the database's own).
"""

from __future__ import annotations

import re
import uuid

import pytest

from sbserver.backends.storage.base import Store
from sbserver.backends.storage.documents.filters import index_name
from sbserver.clauses import FIELD, Sort
from sbserver.services.query import matcher, parse_clauses
from sbserver.types import ALL_ROWS, Base, Scope, StoredDoc
from tests.backends import test_storage
from tests.backends.test_storage import make_base

new_store = test_storage.new_store
store = test_storage.store

COL = "docs_700_"
OWNER = Scope(account_id="acct-1", owner_id="user-1")
ACCOUNT = Scope(account_id="acct-1")
SCOPES = {"o": OWNER, "a": ACCOUNT, "r": ALL_ROWS}


async def seeded(store: Store, n: int = 4000) -> Base:
    """``n`` documents over 4 users of 2 accounts, ``k`` cycling through 100 values."""
    base = await make_base(store)
    docs = [
        StoredDoc(
            str(uuid.uuid4()),
            f"acct-{i % 2}",
            f"user-{i % 4}",
            f"2024-01-01T{i // 3600:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z",
            {"k": i % 100, "name": f"n{i % 37}", "nested": {"k": i % 7}},
        )
        for i in range(n)
    ]
    for i in range(0, n, 1000):
        await store.insert_documents(base, COL, docs[i : i + 1000], "700")
    return base


def uses(plan: str, name: str) -> bool:
    """The plan reads the index ``name``, or on PostgreSQL (whose planner may read the field's
    index of a wider scope and filter) one of the field's indexes."""
    if re.search(rf"\b{re.escape(name)}\b", plan):
        return True
    return re.search(rf"(using|on) {re.escape(name[:-2])}_[oar]\b", plan) is not None


@pytest.mark.parametrize("kind", ["o", "a", "r"])
async def test_an_index_serves_equality_range_and_sort(store: Store, kind: str) -> None:
    base = await seeded(store)
    scope = SCOPES[kind]
    cases = [
        (parse_clauses([["k", "==", 7]]), Sort(desc=True)),
        (parse_clauses([["k", ">=", 90]]), Sort()),
        (parse_clauses([["k", "<", "5"], ["name", "!=", "n1"]]), Sort(desc=True)),
        ([], Sort(FIELD, False, ("k",))),
        ([], Sort(FIELD, True, ("k",))),
    ]
    # Without the index, nothing names it (and the answers are the same before and after).
    before = [await store.query_documents(base, COL, scope, c, s, 20, 0) for c, s in cases]
    mixed = (parse_clauses([["name", "==", "n3"]]), Sort(FIELD, True, ("k",)))
    mixed_before = await store.query_documents(base, COL, scope, *mixed, 20, 0)
    assert mixed_before[1] > 0
    for clauses, sort in cases:
        assert "docidx_" not in await store.explain_query(base, COL, scope, clauses, sort)

    await store.create_index(base, COL, "k")
    await store.create_index(base, COL, "k")  # idempotent
    name = index_name(base.name, COL, "k", kind)
    for (clauses, sort), answer in zip(cases, before, strict=True):
        plan = await store.explain_query(base, COL, scope, clauses, sort)
        assert uses(plan, name), (clauses, sort, plan)
        assert await store.query_documents(base, COL, scope, clauses, sort, 20, 0) == answer
    # Another field's filter with a sort on the indexed one: the planner's choice, the same answer.
    assert await store.query_documents(base, COL, scope, *mixed, 20, 0) == mixed_before
    # A filtered count reads the index too.
    assert uses(await store.explain_query(base, COL, scope, cases[0][0], Sort(), count=True), name)


async def test_an_index_on_a_nested_field(store: Store) -> None:
    base = await seeded(store, 1000)
    await store.create_index(base, COL, "nested.k")
    plan = await store.explain_query(base, COL, OWNER, parse_clauses([["nested.k", "==", 3]]), Sort())
    assert uses(plan, index_name(base.name, COL, "nested.k", "o")), plan
    assert await store.indexes(base, COL) == ["nested.k"]


async def test_counting_a_users_documents_reads_an_index_only(store: Store) -> None:
    base = await seeded(store, 1000)
    plan = await store.explain_query(base, COL, OWNER, [], Sort(), count=True)
    if store.kind == "sqlite":
        assert "COVERING INDEX documents_owner" in plan, plan
    else:
        assert re.search(r"Index Only Scan using documents_owner", plan), plan
    assert await store.count_documents(base, COL, OWNER) == 250
    assert await store.count_documents(base, COL, Scope(account_id="acct-0", owner_id="user-1")) == 0


async def test_one_indexed_clause_pages_from_the_index_alone(store: Store) -> None:
    """One clause on an indexed field, in creation order: the page and total come from the
    index's entries (numbers, and numeric strings in their own range of it), equal to the
    answers without the index, page by page, both directions."""
    base = await make_base(store)
    values: list[object] = [7, 7.0, "7", " 7 ", "7e0", "x", 8, None, True, [7], "07", -0.0, 0, "0"]
    docs = [
        StoredDoc(
            str(uuid.uuid4()), "acct-1", "user-1", f"2024-01-01T00:00:{i % 60:02d}Z", {"k": values[i % len(values)]}
        )
        for i in range(300)
    ]
    await store.insert_documents(base, COL, docs, "700")
    cases = [
        (parse_clauses([[field, "==", v]]), desc, size, page)
        for field in ("k",)
        for v in (7, "7", 0, "x", True, None, [7])
        for desc in (False, True)
        for size, page in ((7, 0), (7, 2), (50, 0), (50, 9))
    ]
    before = [await store.query_documents(base, COL, OWNER, c, Sort(desc=d), n, n * p) for c, d, n, p in cases]
    await store.create_index(base, COL, "k")
    for (clauses, desc, size, page), answer in zip(cases, before, strict=True):
        assert await store.query_documents(base, COL, OWNER, clauses, Sort(desc=desc), size, size * page) == answer
    for (clauses, *_), answer in zip(cases, before, strict=True):  # and both equal the reference
        assert answer[1] == len([d for d in docs if matcher(clauses)(d.data)])
