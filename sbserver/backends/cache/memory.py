"""In-process cache: one dict, expiry checked on read. Single-process only."""

from __future__ import annotations

import time
from collections import deque

from sbserver.backends.cache.base import Cache


class MemoryCache(Cache):
    def __init__(self) -> None:
        self._values: dict[str, tuple[str, float | None]] = {}
        self._queues: dict[str, deque[str]] = {}

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def _live(self, key: str) -> str | None:
        item = self._values.get(key)
        if item is None:
            return None
        value, expires = item
        if expires is not None and expires <= time.monotonic():
            del self._values[key]
            return None
        return value

    async def get(self, key: str) -> str | None:
        return self._live(key)

    async def set(self, key: str, value: str, ttl: float | None = None) -> None:
        self._values[key] = (value, time.monotonic() + ttl if ttl else None)

    async def delete(self, key: str) -> None:
        self._values.pop(key, None)
        self._queues.pop(key, None)

    async def take(self, key: str) -> str | None:
        value = self._live(key)
        self._values.pop(key, None)
        return value

    # No await between the read and the write: on one event loop these are atomic.
    async def incr(self, key: str, ttl: float) -> int:
        current = self._live(key)
        if current is None:
            self._values[key] = ("1", time.monotonic() + ttl)
            return 1
        value = int(current) + 1
        expires = self._values[key][1]
        self._values[key] = (str(value), time.monotonic() + ttl if expires is None else expires)
        return value

    async def add(self, key: str, amount: int) -> int:
        current = self._live(key)
        try:
            value = int(current or 0) + amount
        except ValueError as exc:
            raise ValueError("the value is not an integer") from exc
        expires = self._values[key][1] if current is not None else None
        self._values[key] = (str(value), expires)
        return value

    async def push(self, key: str, value: str, limit: int | None = None) -> bool:
        q = self._queues.setdefault(key, deque())
        if limit is not None and len(q) >= limit:
            if not q:
                del self._queues[key]
            return False
        q.append(value)
        return True

    async def pop(self, key: str) -> str | None:
        q = self._queues.get(key)
        if not q:
            return None
        value = q.popleft()
        if not q:
            del self._queues[key]
        return value

    async def length(self, key: str) -> int:
        q = self._queues.get(key)
        return len(q) if q else 0
