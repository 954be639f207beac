"""The per-process caches' map: bounded, least recently used out first, entries expire."""

from __future__ import annotations

import pytest

from sbserver.lru import ExpiringLRU


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_least_recently_used_entry_goes_first_not_everything() -> None:
    lru: ExpiringLRU[str, int] = ExpiringLRU(3, 60)
    for i, key in enumerate("abc"):
        lru.put(key, i)
    assert lru.get("a") == 0  # a is now the most recent
    lru.put("d", 3)
    assert len(lru) == 3
    assert lru.get("b") is None  # the oldest untouched entry went
    assert (lru.get("a"), lru.get("c"), lru.get("d")) == (0, 2, 3)


def test_entries_expire() -> None:
    clock = Clock()
    lru: ExpiringLRU[str, str] = ExpiringLRU(10, 30, clock=clock)
    lru.put("k", "v")
    lru.put("short", "v", ttl=5)
    clock.now = 10
    assert lru.get("short") is None and lru.get("k") == "v"
    clock.now = 30
    assert lru.get("k") is None and len(lru) == 0


def test_put_refreshes_and_pop_forgets() -> None:
    clock = Clock()
    lru: ExpiringLRU[str, int] = ExpiringLRU(2, 10, clock=clock)
    lru.put("k", 1)
    clock.now = 8
    lru.put("k", 2)
    clock.now = 15
    assert lru.get("k") == 2
    lru.pop("k")
    lru.pop("missing")
    assert lru.get("k") is None


def test_a_size_below_one_is_refused() -> None:
    with pytest.raises(ValueError):
        ExpiringLRU(0, 1)
