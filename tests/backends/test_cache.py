"""The Cache contract, written once and run on every cache: MemoryCache always, RedisCache on this
worker's Redis database (skipped when ``SB_TEST_REDIS_URL`` is unset).

The counters are what request limits stand on: many concurrent ``incr`` calls on one key must
hand out 1..n exactly once each, the first one must start an expiry window that later ones do not
push back, and of concurrent ``take`` calls on one key exactly one gets the value. Queues (apps'
``/sudo/cache`` queues) are first in, first out, hand each value to one popper, and a bounded push
never lets a queue pass its limit, even with two clients pushing at once.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from sbserver.backends.cache.base import Cache
from sbserver.backends.cache.memory import MemoryCache
from tests.conftest import BUS_KINDS as CACHE_KINDS  # the same two kinds: in-process and Redis


def key(name: str = "k") -> str:
    return f"test-cache:{name}:{uuid.uuid4().hex[:10]}"


def redis_cache(url: str) -> Cache:
    from sbserver.backends.cache.redis import RedisCache

    return RedisCache(url)


@pytest.fixture(params=CACHE_KINDS)
async def cache(request: pytest.FixtureRequest) -> AsyncIterator[Cache]:
    c = MemoryCache() if request.param == "memory" else redis_cache(request.getfixturevalue("redis_url"))
    await c.open()
    yield c
    await c.close()


async def wait_until_gone(cache: Cache, k: str, limit: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + limit
    while await cache.get(k) is not None:
        assert asyncio.get_running_loop().time() < deadline, f"{k} never expired"
        await asyncio.sleep(0.02)


async def test_get_set_delete(cache: Cache) -> None:
    k = key()
    assert await cache.get(k) is None
    await cache.set(k, "v")
    assert await cache.get(k) == "v"
    await cache.delete(k)
    assert await cache.get(k) is None
    await cache.delete(k)  # deleting a missing key is fine


async def test_incr_counts_from_one(cache: Cache) -> None:
    k = key()
    assert [await cache.incr(k, 60) for _ in range(3)] == [1, 2, 3]
    assert await cache.get(k) == "3"


async def test_concurrent_incr_hands_out_each_number_once(cache: Cache) -> None:
    k = key()
    values = await asyncio.gather(*(cache.incr(k, 60) for _ in range(200)))
    assert sorted(values) == list(range(1, 201))


async def test_incr_window_starts_on_first_use_and_is_not_extended(cache: Cache) -> None:
    k = key()
    assert await cache.incr(k, 0.4) == 1
    await asyncio.sleep(0.25)
    assert await cache.incr(k, 0.4) == 2  # same window: not pushed back to 0.4 s from now
    await wait_until_gone(cache, k, limit=0.6)
    assert await cache.incr(k, 60) == 1  # a new window


async def test_incr_gives_a_key_without_expiry_one(cache: Cache) -> None:
    k = key()
    assert await cache.add(k, 5) == 5  # no expiry
    assert await cache.incr(k, 0.2) == 6
    await wait_until_gone(cache, k)


async def test_add_keeps_the_window(cache: Cache) -> None:
    k = key()
    await cache.incr(k, 0.3)
    assert await cache.add(k, -1) == 0
    await wait_until_gone(cache, k)


async def test_take_returns_and_removes(cache: Cache) -> None:
    k = key()
    assert await cache.take(k) is None
    await cache.set(k, "code")
    assert await cache.take(k) == "code"
    assert await cache.get(k) is None
    assert await cache.take(k) is None


async def test_concurrent_take_has_one_winner(cache: Cache) -> None:
    k = key()
    await cache.set(k, "once")
    got = await asyncio.gather(*(cache.take(k) for _ in range(50)))
    assert got.count("once") == 1 and got.count(None) == 49


async def test_take_ignores_an_expired_value(cache: Cache) -> None:
    k = key()
    await cache.set(k, "v", 0.1)
    await wait_until_gone(cache, k)
    assert await cache.take(k) is None


async def test_two_redis_clients_share_counters(request: pytest.FixtureRequest) -> None:
    """Two processes as far as Redis can tell: their increments interleave into one sequence."""
    url = request.getfixturevalue("redis_url")
    a, b = redis_cache(url), redis_cache(url)
    await a.open()
    await b.open()
    try:
        k = key()
        values = await asyncio.gather(*(c.incr(k, 60) for c in (a, b) * 50))
        assert sorted(values) == list(range(1, 101))
    finally:
        await a.close()
        await b.close()


async def test_add_on_a_non_integer_is_a_value_error(cache: Cache) -> None:
    k = key()
    await cache.set(k, "abc")
    with pytest.raises(ValueError, match="not an integer"):
        await cache.add(k, 1)
    assert await cache.get(k) == "abc"


# Queues (spec 02 §7.2 type=queue)


async def test_queue_is_first_in_first_out(cache: Cache) -> None:
    k = key("q")
    assert await cache.pop(k) is None  # never created: empty, not an error
    assert await cache.length(k) == 0
    for value in ("1", "2", "", "é ✓"):
        assert await cache.push(k, value) is True
    assert await cache.length(k) == 4
    assert [await cache.pop(k) for _ in range(5)] == ["1", "2", "", "é ✓", None]
    assert await cache.length(k) == 0


async def test_bounded_push_refuses_a_full_queue_and_stores_nothing(cache: Cache) -> None:
    k = key("q")
    assert [await cache.push(k, str(i), limit=3) for i in range(4)] == [True, True, True, False]
    assert await cache.length(k) == 3
    assert await cache.pop(k) == "0"
    assert await cache.push(k, "again", limit=3) is True  # room again after a pop
    assert [await cache.pop(k) for _ in range(4)] == ["1", "2", "again", None]
    assert await cache.push(k, "x", limit=0) is False  # a limit of 0 refuses even an empty queue
    assert await cache.length(k) == 0 and await cache.pop(k) is None


async def test_concurrent_bounded_pushes_never_pass_the_limit(cache: Cache) -> None:
    k = key("q")
    added = await asyncio.gather(*(cache.push(k, str(i), limit=10) for i in range(60)))
    assert added.count(True) == 10 and added.count(False) == 50
    assert await cache.length(k) == 10


async def test_concurrent_pops_hand_out_each_value_once(cache: Cache) -> None:
    k = key("q")
    for i in range(40):
        await cache.push(k, str(i))
    got = await asyncio.gather(*(cache.pop(k) for _ in range(60)))
    values = [v for v in got if v is not None]
    assert sorted(values, key=int) == [str(i) for i in range(40)] and got.count(None) == 20


async def test_two_redis_clients_share_a_bounded_queue(request: pytest.FixtureRequest) -> None:
    """Two processes pushing to one queue: together they never pass its limit."""
    url = request.getfixturevalue("redis_url")
    a, b = redis_cache(url), redis_cache(url)
    await a.open()
    await b.open()
    try:
        k = key("q")
        added = await asyncio.gather(*(c.push(k, "v", limit=25) for c in (a, b) * 30))
        assert added.count(True) == 25
        assert await a.length(k) == 25 and await b.length(k) == 25
    finally:
        await a.close()
        await b.close()
