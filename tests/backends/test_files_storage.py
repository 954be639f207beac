"""File records on every store kind (the Store suite's fixtures): paging and both orders,
per-account scope and usage, isolation between bases, delete. The file providers' own suite (local
and S3) is tests/backends/test_file_providers.py.
"""

from __future__ import annotations

import pytest

from sbserver.backends.storage.base import Store
from sbserver.backends.storage.files.base import FileRecord
from sbserver.errors import Conflict
from tests.backends import test_storage
from tests.backends.test_storage import make_base, uid

new_store = test_storage.new_store
store = test_storage.store


def record(account: str, size: int, uploaded: str, base: str = "b") -> FileRecord:
    fid = uid()
    return FileRecord(fid, account, f"n-{fid[:4]}.txt", f"{base}/{account}/{fid}.txt", "http://x/f", size, uploaded)


async def test_records_page_sort_scope_usage_and_delete(store: Store) -> None:
    base, other = await make_base(store), await make_base(store)
    a, b = uid(), uid()
    mine = [record(a, size, f"2024-05-01T10:00:0{i}Z") for i, size in enumerate((30, 10, 20))]
    theirs = record(b, 5, "2024-05-01T10:00:09Z")
    for r in [*mine, theirs]:
        await store.add_file(base, r)
    await store.add_file(other, record(a, 999, "2024-05-01T10:00:00Z"))
    with pytest.raises(Conflict):
        await store.add_file(base, mine[0])

    assert await store.file(base, mine[1].id) == mine[1]
    assert await store.file(other, mine[1].id) is None
    assert await store.files(base, a, "uploaded", False, 10, 0) == mine
    assert await store.files(base, a, "uploaded", True, 10, 0) == mine[::-1]
    assert [r.size for r in await store.files(base, a, "size", False, 10, 0)] == [10, 20, 30]
    assert [r.size for r in await store.files(base, a, "size", True, 2, 1)] == [20, 10]
    assert await store.files(base, None, "uploaded", False, 10, 0) == [*mine, theirs]
    assert await store.files(base, b, "uploaded", False, 10, 0) == [theirs]
    assert await store.file_usage(base, a) == (3, 60)
    assert await store.file_usage(base, None) == (4, 65)
    assert await store.file_usage(base, uid()) == (0, 0)
    assert await store.file_usage(other, None) == (1, 999)

    assert await store.delete_file(other, mine[0].id) is None
    assert await store.delete_file(base, mine[0].id) == mine[0]
    assert await store.delete_file(base, mine[0].id) is None
    assert await store.file_usage(base, a) == (2, 30)
