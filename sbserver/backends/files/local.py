"""The local provider: files under ``<data dir>/files/<key>``, served by this server at
``<public base>/localfs/<key>``.

Writes stream to a temporary file in ``<root>/.tmp`` (same file system), which is fsynced and then
renamed into place, so a file is either whole or absent. Disk calls run on worker threads, a
chunk of up to ``WRITE_CHUNK`` bytes at a time: the event loop never waits on the disk and memory
holds one chunk, whatever the file's size.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO

from sbserver.backends.files.base import FileProvider, FileStat, key_parts

WRITE_CHUNK = 1024 * 1024  # bytes gathered before one write on a thread
READ_CHUNK = 1024 * 1024


class LocalFiles(FileProvider):
    kind = "local"
    serves_files = True

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).resolve()
        self.tmp = self.root / ".tmp"

    def path(self, key: str) -> Path:
        """The file of a key, confined to the root (``InvalidKey`` for a key of another shape)."""
        path = self.root.joinpath(*key_parts(key))
        # the key's shape already rules out traversal; symlinks planted under the root do not escape either
        real = Path(os.path.realpath(path))
        if os.path.commonpath([real, self.root]) != str(self.root):
            raise FileNotFoundError(key)
        return path

    async def put(self, key: str, chunks: AsyncIterator[bytes], content_type: str) -> int:
        final = self.path(key)
        await asyncio.to_thread(self.tmp.mkdir, parents=True, exist_ok=True)
        tmp = self.tmp / f"{uuid.uuid4().hex}.part"
        fh: BinaryIO = await asyncio.to_thread(open, tmp, "xb")
        size = 0
        try:
            pending: list[bytes] = []
            held = 0
            async for chunk in chunks:
                pending.append(chunk)
                held += len(chunk)
                if held >= WRITE_CHUNK:
                    await asyncio.to_thread(fh.write, b"".join(pending))
                    size += held
                    pending, held = [], 0
            if pending:
                await asyncio.to_thread(fh.write, b"".join(pending))
                size += held
            await asyncio.to_thread(_finish, fh, tmp, final)
        except BaseException:
            await asyncio.to_thread(_discard, fh, tmp)
            raise
        return size

    async def stat(self, key: str) -> FileStat | None:
        try:
            st = await asyncio.to_thread(os.stat, self.path(key))
        except (FileNotFoundError, NotADirectoryError):
            return None
        return FileStat(st.st_size, f'"{st.st_size:x}-{st.st_mtime_ns:x}"')

    async def get(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        fh: BinaryIO = await asyncio.to_thread(open, self.path(key), "rb")
        try:
            await asyncio.to_thread(fh.seek, start)
            left = None if end is None else max(0, end - start)
            while left is None or left > 0:
                data = await asyncio.to_thread(fh.read, READ_CHUNK if left is None else min(READ_CHUNK, left))
                if not data:
                    break
                if left is not None:
                    left -= len(data)
                yield data
        finally:
            await asyncio.to_thread(fh.close)

    async def delete(self, key: str) -> bool:
        path = self.path(key)
        try:
            await asyncio.to_thread(path.unlink)
        except FileNotFoundError:
            return False
        return True

    def url(self, key: str, public_base: str) -> str:
        return f"{public_base.rstrip('/')}/localfs/{key}"


def _finish(fh: BinaryIO, tmp: Path, final: Path) -> None:
    fh.flush()
    os.fsync(fh.fileno())
    fh.close()
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, final)


def _discard(fh: BinaryIO, tmp: Path) -> None:
    with contextlib.suppress(OSError):
        fh.close()
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
