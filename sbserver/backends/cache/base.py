"""The cache contract: string values with optional expiry, counters and FIFO queues.

A key holds either a value (``get``/``set``/``incr``/``add``) or a queue (``push``/``pop``), never
both: callers keep the two in different key spaces (Redis refuses a list operation on a string).
"""

from __future__ import annotations

from abc import ABC, abstractmethod


class Cache(ABC):
    @abstractmethod
    async def open(self) -> None:
        """Connect (a no-op in process)."""

    @abstractmethod
    async def close(self) -> None:
        """Release connections."""

    @abstractmethod
    async def get(self, key: str) -> str | None:
        """The value, or None when missing or expired."""

    @abstractmethod
    async def set(self, key: str, value: str, ttl: float | None = None) -> None:
        """Store a value, expiring after ttl seconds when given."""

    @abstractmethod
    async def delete(self, key: str) -> None:
        """Remove a key if present."""

    @abstractmethod
    async def take(self, key: str) -> str | None:
        """Remove a key and return its value (None when missing): of concurrent takers, one wins."""

    @abstractmethod
    async def incr(self, key: str, ttl: float) -> int:
        """Atomically add one to a counter, starting its ttl-second expiry window on first use (a
        key with no expiry gets one); returns the new value, so concurrent callers see 1, 2, 3..."""

    @abstractmethod
    async def add(self, key: str, amount: int) -> int:
        """Atomically add ``amount`` to the integer at key (missing = 0); returns the new value.
        ValueError("the value is not an integer") when the key holds something else."""

    @abstractmethod
    async def push(self, key: str, value: str, limit: int | None = None) -> bool:
        """Append to the queue at key; with ``limit``, only while it holds fewer values than that
        (checked and appended atomically): False when it was full and nothing was added."""

    @abstractmethod
    async def pop(self, key: str) -> str | None:
        """Take the oldest queued value, None when the queue is empty or was never created: of
        concurrent poppers, each value goes to one. An emptied queue leaves nothing behind."""

    @abstractmethod
    async def length(self, key: str) -> int:
        """How many values the queue at key holds (0 when it was never created)."""
