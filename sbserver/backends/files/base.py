"""The file provider contract: store, read, delete and link the bytes of an uploaded file.

Keys are built by the server (``<base>/<accountId>/<id><ext>``, segments of ``A-Z a-z 0-9 . _ -``);
a provider refuses any other shape with ``InvalidKey`` and never reads or writes outside its own
space. ``put`` is atomic: a reader sees the whole file or nothing, and a failed or abandoned put
leaves nothing behind.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass

from sbserver.errors import BadRequest

_SEGMENT = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}")


class InvalidKey(BadRequest):
    """A key that is not of the shape the server builds (a traversal attempt, say)."""


def key_parts(key: str) -> list[str]:
    """The segments of a well-formed key; ``InvalidKey`` for anything else (``..``, ``//``, ``\\``)."""
    parts = key.split("/")
    if len(parts) != 3 or not all(_SEGMENT.fullmatch(p) and ".." not in p for p in parts):
        raise InvalidKey("invalid file key: expected <app>/<account>/<file> of A-Z a-z 0-9 . _ -")
    return parts


@dataclass(frozen=True, slots=True)
class FileStat:
    size: int
    etag: str  # a strong validator, quoted as HTTP sends it


class FileProvider(ABC):
    """Where the bytes of uploaded files live."""

    kind: str = "abstract"
    serves_files: bool = False  # True: this server answers the file URLs (``/localfs/<key>``)

    async def open(self) -> None:  # noqa: B027  (most providers have nothing to open)
        """Check the provider is usable at start (``StoreError`` with the reason if not)."""

    async def close(self) -> None:  # noqa: B027
        """Release connections."""

    @abstractmethod
    async def put(self, key: str, chunks: AsyncIterator[bytes], content_type: str) -> int:
        """Store the bytes ``chunks`` yields under ``key``, atomically; the number of bytes stored.
        An exception from ``chunks`` aborts the put and leaves nothing stored."""

    @abstractmethod
    async def stat(self, key: str) -> FileStat | None:
        """Size and ETag of a stored file, or None when there is none."""

    @abstractmethod
    def get(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """The bytes of ``key`` from ``start`` up to ``end`` (exclusive; None: the end of the file)."""

    @abstractmethod
    async def delete(self, key: str) -> bool:
        """Remove a stored file; False when there was none."""

    @abstractmethod
    def url(self, key: str, public_base: str) -> str:
        """The public URL of ``key``; ``public_base`` is the server's own URL (used by ``local``)."""
