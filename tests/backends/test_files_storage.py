"""File records on every store kind (the Store suite's fixtures), and the local file provider.

Records: paging and both orders, per-account scope and usage, isolation between bases, delete.
Provider: byte-exact round trips of several MB, ranges, atomic puts (an aborted put leaves no file
and no temporary), keys confined to the root.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sbserver.backends.files.base import InvalidKey
from sbserver.backends.files.local import LocalFiles
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


async def stream(data: bytes, piece: int = 100_003) -> AsyncIterator[bytes]:
    for i in range(0, len(data), piece):
        yield data[i : i + piece]


async def collect(chunks: AsyncIterator[bytes]) -> bytes:
    return b"".join([c async for c in chunks])


async def test_local_round_trip_ranges_and_delete(tmp_path: Path) -> None:
    files = LocalFiles(tmp_path / "files")
    data = os.urandom(3 * 1024 * 1024 + 7)
    key = "app/acct/f1.bin"
    assert await files.stat(key) is None
    assert await files.put(key, stream(data), "application/octet-stream") == len(data)
    assert (tmp_path / "files" / "app" / "acct" / "f1.bin").read_bytes() == data
    stat = await files.stat(key)
    assert stat is not None and stat.size == len(data) and stat.etag.startswith('"')
    assert await collect(files.get(key)) == data
    assert await collect(files.get(key, 1000, 2_000_000)) == data[1000:2_000_000]
    assert await collect(files.get(key, len(data) - 3)) == data[-3:]
    assert files.url(key, "http://h:1/") == "http://h:1/localfs/app/acct/f1.bin"
    assert await files.delete(key) is True
    assert await files.delete(key) is False
    assert await files.stat(key) is None
    assert list((tmp_path / "files" / ".tmp").iterdir()) == []


async def test_local_aborted_put_leaves_nothing(tmp_path: Path) -> None:
    files = LocalFiles(tmp_path / "files")

    async def broken() -> AsyncIterator[bytes]:
        yield b"x" * 2_000_000
        raise RuntimeError("client went away")

    with pytest.raises(RuntimeError):
        await files.put("app/acct/f2.bin", broken(), "application/octet-stream")
    assert await files.stat("app/acct/f2.bin") is None
    assert list((tmp_path / "files" / ".tmp").iterdir()) == []
    assert not (tmp_path / "files" / "app" / "acct" / "f2.bin").exists()


@pytest.mark.parametrize(
    "key",
    [
        "../x/y",
        "app/../../etc/passwd",
        "app/acct/..",
        "app/acct",
        "/app/acct/f",
        "app//f",
        "app/acct/f/g",
        "app/acct/.tmp",
        "app\\acct\\f",
        ".tmp/a/b",
        "app/acct/f\x00",
    ],
)
async def test_local_refuses_keys_outside_its_shape(tmp_path: Path, key: str) -> None:
    files = LocalFiles(tmp_path / "files")
    with pytest.raises(InvalidKey):
        await files.put(key, stream(b"data"), "text/plain")
    with pytest.raises(InvalidKey):
        await files.stat(key)
    with pytest.raises(InvalidKey):
        await files.delete(key)
    assert not any(p.is_file() for p in tmp_path.rglob("*"))


async def test_local_does_not_follow_a_symlink_out_of_its_root(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    root = tmp_path / "files"
    (root / "app").mkdir(parents=True)
    (root / "app" / "acct").symlink_to(outside)
    files = LocalFiles(root)
    assert await files.stat("app/acct/secret.txt") is None
