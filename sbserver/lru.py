"""A bounded least-recently-used map whose entries expire: the per-process caches use it."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class ExpiringLRU(Generic[K, V]):
    """At most ``size`` entries, each valid for ``ttl`` seconds; the least recently used goes first.

    Single-threaded (the event loop's); ``clock`` is injectable for tests.
    """

    def __init__(self, size: int, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        if size < 1:
            raise ValueError("size must be at least 1")
        self.size = size
        self.ttl = ttl
        self._clock = clock
        self._items: OrderedDict[K, tuple[V, float]] = OrderedDict()

    def get(self, key: K) -> V | None:
        hit = self._items.get(key)
        if hit is None:
            return None
        if hit[1] <= self._clock():
            del self._items[key]
            return None
        self._items.move_to_end(key)
        return hit[0]

    def put(self, key: K, value: V, ttl: float | None = None) -> None:
        self._items[key] = (value, self._clock() + (self.ttl if ttl is None else ttl))
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def pop(self, key: K) -> None:
        self._items.pop(key, None)

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)
