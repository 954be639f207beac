"""Where the SQLite store puts new documents: the rows one reader's scan reads lie together in
the table (``documents/sqlite.py``, ``Rowids``), whoever else writes at the same time, and no
row is ever written over, whatever else writes to the file."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import AsyncIterator
from itertools import pairwise
from pathlib import Path

import pytest
import pytest_asyncio

from sbserver.backends.storage.documents.sqlite import Rowids
from sbserver.backends.storage.sqlite import SQLiteStore
from sbserver.errors import Conflict
from sbserver.types import ALL_ROWS, Base, Scope, StoredDoc
from tests.backends.test_storage import make_base


@pytest_asyncio.fixture(params=["thread", "inline"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "sb.db", writer=request.param)
    await s.open()
    yield s
    await s.close()


def doc(i: int, user: int, account: int | None = None) -> StoredDoc:
    acct = user if account is None else account
    return StoredDoc(uuid.uuid4().hex, f"acct-{acct}", f"user-{user}", f"2024-01-01T00:{i:06d}Z", {"n": i})


def rowids(path: Path, col: str, where: str = "1", params: tuple[str, ...] = ()) -> list[int]:
    with sqlite3.connect(path) as c:
        sql = f"SELECT rowid FROM documents WHERE col = ? AND {where} ORDER BY created, id"
        return [r[0] for r in c.execute(sql, (col, *params))]


def breaks(ids: list[int]) -> int:
    """How many times the rows, in creation order, leave a run of consecutive rowids."""
    return sum(1 for a, b in pairwise(ids) if b != a + 1)


async def write_interleaved(store: SQLiteStore, base: Base, col: str, perm: str, n: int, **kw: int) -> None:
    """``n`` documents per user of 8, one at a time, the users taking turns (as requests do)."""
    for i in range(n * 8):
        await store.insert_documents(base, col, [doc(i, i % 8, **kw)], perm)


async def test_a_users_documents_lie_together_when_only_the_user_reads_them(store: SQLiteStore) -> None:
    base = await make_base(store)
    await write_interleaved(store, base, "notes_700_", "700", 200)
    mine = rowids(store.path, "notes_700_", "owner_id = ?", ("user-3",))
    assert len(mine) == 200
    assert breaks(mine) <= 200 // Rowids.RUN, mine  # one run of 64 after another
    assert len(set(rowids(store.path, "notes_700_"))) == 1600


async def test_an_accounts_documents_lie_together_when_the_account_reads_them(store: SQLiteStore) -> None:
    base = await make_base(store)
    # 8 users in 2 accounts; the collection's readers read an account's documents (740).
    for i in range(8 * 100):
        await store.insert_documents(base, "tasks", [doc(i, i % 8, account=i % 2)], "740")
    account = rowids(store.path, "tasks", "account_id = ?", ("acct-1",))
    assert len(account) == 400
    assert breaks(account) <= 400 // Rowids.RUN, account


async def test_a_collection_everyone_reads_stays_in_time_order(store: SQLiteStore) -> None:
    base = await make_base(store)
    await write_interleaved(store, base, "posts_744_", "744", 50)
    await write_interleaved(store, base, "pub_feed", "700", 50)
    for col in ("posts_744_", "pub_feed"):
        every = rowids(store.path, col)
        assert len(every) == 400
        assert breaks(every) <= 400 // Rowids.RUN, (col, every)


async def test_rows_another_writer_put_in_a_run_are_never_written_over(store: SQLiteStore, tmp_path: Path) -> None:
    """A user's run is under way when rows arrive from elsewhere: an import writing beside the
    server (SQLite's default rowids, the next after the highest: inside that run) and a second
    store on the same file (another process). Every write of every writer lands."""
    base = await make_base(store)
    await store.insert_documents(base, "notes_700_", [doc(0, 1), doc(1, 1)], "700")
    with sqlite3.connect(store.path) as c:  # as the transfer sink writes, beside a running server
        for i in range(3):
            c.execute(
                "INSERT INTO documents (base, col, id, account_id, owner_id, created, data) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (base.name, "notes_700_", f"imported-{i}", "acct-1", "user-1", f"2024-01-01T01:{i:06d}Z", "{}"),
            )
    other = SQLiteStore(store.path, writer="thread")
    await other.open()
    try:
        for i in range(2, 200):
            writer = store if i % 3 else other
            await writer.insert_documents(base, "notes_700_", [doc(i, 1), doc(i + 1000, 2)], "700")
    finally:
        await other.close()
    assert await store.count_documents(base, "notes_700_", Scope(account_id="acct-1", owner_id="user-1")) == 203
    assert await store.count_documents(base, "notes_700_", ALL_ROWS) == 401


async def test_a_rolled_back_insert_leaves_the_runs_usable(store: SQLiteStore) -> None:
    base = await make_base(store)
    first = [doc(i, 1) for i in range(10)]
    await store.insert_documents(base, "notes_700_", first, "700")
    with pytest.raises(Conflict):  # the batch's last id is taken: nothing of it is written
        await store.insert_documents(base, "notes_700_", [doc(10, 1), doc(11, 2), first[0]], "700")
    await store.insert_documents(base, "notes_700_", [doc(i, 1 + i % 2) for i in range(12, 100)], "700")
    assert await store.count_documents(base, "notes_700_", ALL_ROWS) == 98
    mine = rowids(store.path, "notes_700_", "owner_id = ?", ("user-1",))
    assert len(mine) == 54 and breaks(mine) <= 2, mine
