"""Cost follows the answer, not the collection: over 100,000 documents, a filtered query builds
no more documents in Python than the page it returns, a filtered count none, and bulk writes only
the documents they match. A spy counts every document the store turns into a ``StoredDoc``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from sbserver.backends.storage.base import Store
from sbserver.backends.storage.documents import postgresql as pg_documents
from sbserver.backends.storage.documents import sqlite as sqlite_documents
from sbserver.clauses import FIELD, Sort
from sbserver.services.query import parse_clauses
from sbserver.types import ALL_ROWS, Scope, StoredDoc
from tests.backends import test_storage
from tests.backends.test_storage import make_base

new_store = test_storage.new_store
store = test_storage.store

N = 100_000
COL = "big_700_"


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many documents the stores have built, in a one-element list."""
    count = [0]
    for module in (sqlite_documents, pg_documents):
        real: Callable[[Any], StoredDoc] = module._doc

        def spy(row: Any, real: Callable[[Any], StoredDoc] = real) -> StoredDoc:
            count[0] += 1
            return real(row)

        monkeypatch.setattr(module, "_doc", spy)
    return count


@pytest.mark.parametrize("new_store", ["sqlite", "pg"], indirect=True)
async def test_a_query_over_100k_documents_builds_one_page(store: Store, built: list[int]) -> None:
    base = await make_base(store)
    # 16 users; ``k`` cycles through 1,000 values, so k == 7 matches 100 documents.
    docs = [
        StoredDoc(
            str(uuid.uuid4()), f"acct-{i % 16}", f"user-{i % 16}", f"2024-01-01T00:00:00.{i:06d}Z", {"k": i % 1000}
        )
        for i in range(N)
    ]
    for i in range(0, N, 10_000):
        await store.insert_documents(base, COL, docs[i : i + 10_000], "700")
    seven = parse_clauses([["k", "==", 7]])
    user = Scope(account_id="acct-7", owner_id="user-7")

    built[0] = 0
    page, total = await store.query_documents(base, COL, ALL_ROWS, seven, Sort(desc=True), 20, 0)
    assert total == 100 and len(page) == 20 and built[0] == 20
    assert [d.created for d in page] == sorted((d.created for d in page), reverse=True)
    page, total = await store.query_documents(base, COL, user, seven, Sort(), 20, 0)
    assert total == 50 and built[0] == 40 and {d.owner_id for d in page} == {"user-7"}  # i = 7 mod 2000
    page, total = await store.query_documents(base, COL, ALL_ROWS, [], Sort(FIELD, True, ("k",)), 20, 40)
    assert total == N and built[0] == 60 and [d.data["k"] for d in page] == [999] * 20
    assert await store.count_documents(base, COL, ALL_ROWS, parse_clauses([["k", "<", 10]])) == 1000
    assert await store.count_documents(base, COL, user) == N // 16
    assert built[0] == 60

    # Bulk writes build what they match (in batches), not the collection.
    changed = await store.update_documents(base, COL, ALL_ROWS, seven, lambda d: {**d.data, "seen": True})
    assert len(changed) == 100 and built[0] == 160
    deleted = await store.delete_documents(base, COL, ALL_ROWS, parse_clauses([["seen", "==", True]]))
    assert len(deleted) == 100 and built[0] == 260
    assert await store.count_documents(base, COL, ALL_ROWS) == N - 100


@pytest.mark.parametrize("new_store", ["pg"], indirect=True)
async def test_postgresql_without_autovacuum_vacuums_document_tables_itself(store: Store) -> None:
    """Where the server's autovacuum is off, every 10,000 new documents of a base start a
    VACUUM (ANALYZE) of its documents, so field indexes get statistics and counts read indexes
    only; where it is on, the store leaves that to PostgreSQL."""
    from sbserver.backends.storage.postgresql import PostgresStore

    assert isinstance(store, PostgresStore)
    setting = await store._fetchrow("SELECT current_setting('autovacuum')")
    assert setting is not None
    if setting[0] == "on":
        assert store._upkeep is None
        return
    upkeep = store._upkeep
    assert upkeep is not None
    base = await make_base(store)
    docs = [StoredDoc(str(uuid.uuid4()), "a", "u", f"2024-01-01T00:00:00.{i:06d}Z", {"k": i}) for i in range(10_000)]
    await store.insert_documents(base, COL, docs[:9_999], "700")
    assert base.name not in upkeep.running  # not yet
    await store.insert_documents(base, COL, docs[9_999:], "700")
    await asyncio.gather(*upkeep.running.values())
    row = await store._fetchrow(
        "SELECT last_vacuum IS NOT NULL, last_analyze IS NOT NULL FROM pg_stat_user_tables "
        "WHERE schemaname = $1 AND relname = 'documents'",
        base.name,
    )
    assert row is not None and row[0] and row[1]
