"""Query plans: an index made by ``create_index`` is what the database reads for an equality, a
range and a sort on its field, in every scope; a user's documents are counted from an index
alone. Written once, run on every store kind (the plan's wording is the database's own).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

import pytest

from sbserver.backends.storage import postgresql
from sbserver.backends.storage.base import Store
from sbserver.backends.storage.documents.filters import index_name
from sbserver.backends.storage.postgresql import PostgresStore
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


async def users_each_in_an_account(store: Store) -> tuple[Base, list[StoredDoc]]:
    """16 users, each in an account of its own (as a store's usual users), 1,000 documents
    each; ``k`` cycles through 100 values, one in five of them a numeric string."""
    base = await make_base(store)
    docs = [
        StoredDoc(
            str(uuid.uuid4()),
            f"acct-{i % 16}",
            f"user-{i % 16}",
            f"2024-01-01T00:00:{i:06d}Z",
            {"k": i % 100 if i % 5 else str(i % 100)},
        )
        for i in range(16_000)
    ]
    for i in range(0, len(docs), 2000):
        await store.insert_documents(base, COL, docs[i : i + 2000], "700")
    return base, docs


async def check_user_reads_own_index(store: Store, base: Base) -> None:
    scope = Scope(account_id="acct-3", owner_id="user-3")
    name = index_name(base.name, COL, "k", "o")
    for raw in ([["k", "==", 7]], [["k", ">=", 95]]):
        plan = await store.explain_query(base, COL, scope, parse_clauses(raw), Sort(desc=True))
        assert name in plan, (raw, plan)
        assert not re.search(rf"{name[:-2]}_[ar]\b", plan), (raw, plan)


async def test_a_users_equality_reads_the_index_that_leads_with_the_user(store: Store) -> None:
    """A user's equality or range on the indexed field reads the owner scope's index, for
    numbers and numeric strings, not a wider scope's (whose range holds every user's matches,
    each then read and filtered out). PostgreSQL ignores what ANALYZE learns of a partial
    index's expressions: the field's own statistics tell its planner."""
    base, docs = await users_each_in_an_account(store)
    await store.create_index(base, COL, "k")
    await check_user_reads_own_index(store, base)
    scope = Scope(account_id="acct-3", owner_id="user-3")
    found, total = await store.query_documents(base, COL, scope, parse_clauses([["k", "==", 7]]), Sort(desc=True), 5, 0)
    expected = sorted((d for d in docs if d.owner_id == "user-3" and d.data["k"] in (7, "7")), key=lambda d: d.created)
    assert total == len(expected) == 40
    assert [d.id for d in found] == [d.id for d in reversed(expected)][:5]


async def test_an_index_made_before_the_field_statistics_is_read_the_same_after_an_upgrade(
    new_store: Callable[[], Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An index made by a server from before the field statistics: the next open adds them
    (on PostgreSQL; SQLite's planner is told which index to read)."""
    with monkeypatch.context() as m:
        m.setattr(postgresql, "BASE_MIGRATIONS", postgresql.BASE_MIGRATIONS[:-1])
        old = new_store()
        await old.open()
        base, _ = await users_each_in_an_account(old)
        await old.create_index(base, COL, "k")
        if isinstance(old, PostgresStore):  # what the older server's create_index left
            async with old._conn() as c:
                for (name,) in await c.fetch("SELECT stxname FROM pg_statistic_ext WHERE stxname LIKE 'docstat_%'"):
                    await c.execute(f'DROP STATISTICS IF EXISTS "{base.name}"."{name}"')
                await c.execute(f'ANALYZE "{base.name}".documents')
        await old.close()
    s = new_store()
    await s.open()
    try:
        await check_user_reads_own_index(s, base)
    finally:
        await s.close()
