"""The Bus contract, written once and run on every bus.

MemoryBus always; RedisBus when ``SB_TEST_REDIS_URL`` is set (on this worker's Redis database).
Redis PUBLISH/SUBSCRIBE ignores database numbers, so every test uses topics of its own.
The Redis-only tests check what only a shared bus can do: two instances (two processes) see each
other's messages and members, and a bus whose connections are killed (``CLIENT KILL``, limited to
this process's connections so parallel workers are spared) heals by itself.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator

import pytest

from sbserver.backends.bus.base import Bus
from sbserver.backends.bus.memory import MemoryBus
from sbserver.errors import SBError
from tests.conftest import BUS_KINDS
from tests.realtime.support import kill_redis_clients

TIMEOUT = 5.0


def topic(name: str = "t") -> str:
    return f"test-bus:{name}:{uuid.uuid4().hex[:10]}"


def redis_bus(url: str) -> Bus:
    from sbserver.backends.bus.redis import RedisBus

    return RedisBus(url)


@pytest.fixture(params=BUS_KINDS)
async def bus(request: pytest.FixtureRequest) -> AsyncIterator[Bus]:
    b = MemoryBus() if request.param == "memory" else redis_bus(request.getfixturevalue("redis_url"))
    await b.open()
    yield b
    await b.close()


@pytest.fixture
async def redis_pair(redis_url: str) -> AsyncIterator[tuple[Bus, Bus]]:
    """Two Redis buses on one Redis: two processes as far as the bus can tell."""
    a, b = redis_bus(redis_url), redis_bus(redis_url)
    await a.open()
    await b.open()
    yield a, b
    await a.close()
    await b.close()


class Sink:
    """A subscriber that records what it is given."""

    def __init__(self) -> None:
        self.got: list[bytes] = []

    def __call__(self, payload: bytes) -> None:
        self.got.append(payload)

    async def wait_for(self, n: int, timeout: float = TIMEOUT) -> list[bytes]:
        deadline = time.monotonic() + timeout
        while len(self.got) < n and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        assert len(self.got) >= n, f"got {len(self.got)} of {n} payloads within {timeout}s: {self.got[-5:]}"
        return self.got


async def delivered_again(bus: Bus, sink: Sink, t: str, publisher: Bus | None = None) -> float:
    """Publish until ``sink`` receives; return how long it took (fails past ~5 s)."""
    publisher = publisher or bus
    start = time.monotonic()
    n = 0
    while time.monotonic() - start < TIMEOUT + 1:
        n += 1
        marker = f"retry-{n}".encode()
        try:
            await asyncio.wait_for(publisher.publish(t, marker), 1.0)
        except (SBError, TimeoutError):
            await asyncio.sleep(0.1)
            continue
        deadline = time.monotonic() + 0.3
        while time.monotonic() < deadline:
            if marker in sink.got:
                return time.monotonic() - start
            await asyncio.sleep(0.01)
    raise AssertionError(f"no delivery within {TIMEOUT + 1}s: {sink.got[-3:]}")


# --- the contract, on every bus -----------------------------------------------------------


async def test_publish_reaches_every_subscriber(bus: Bus) -> None:
    t = topic()
    a, b = Sink(), Sink()
    await bus.subscribe(t, a)
    await bus.subscribe(t, b)
    payload = b'{"x":1}\n\x00\xff opaque'
    await bus.publish(t, payload)
    assert await a.wait_for(1) == [payload]
    assert await b.wait_for(1) == [payload]


async def test_publish_without_subscribers_is_not_an_error_and_is_not_kept(bus: Bus) -> None:
    t = topic()
    await bus.publish(t, b"nobody listens")  # no exception
    sink = Sink()
    await bus.subscribe(t, sink)
    await bus.publish(t, b"marker")
    assert await sink.wait_for(1) == [b"marker"]  # what was published before is not replayed


async def test_may_reach_is_true_while_a_subscriber_may_listen(bus: Bus) -> None:
    """A publisher may skip a topic only when nobody can hear it; a shared bus cannot know that."""
    t = topic()
    shared = not isinstance(bus, MemoryBus)
    assert bus.may_reach(t) is shared
    sink = Sink()
    stop = await bus.subscribe(t, sink)
    assert bus.may_reach(t) is True
    assert bus.may_reach(topic()) is shared
    stop()
    assert bus.may_reach(t) is shared


async def test_order_is_kept_per_topic_for_1000_messages(bus: Bus) -> None:
    t = topic()
    a, b = Sink(), Sink()
    await bus.subscribe(t, a)
    await bus.subscribe(t, b)
    sent = [str(i).encode() for i in range(1000)]
    for payload in sent:
        await bus.publish(t, payload)
    assert await a.wait_for(1000) == sent
    assert await b.wait_for(1000) == sent


async def test_unsubscribe_stops_delivery(bus: Bus) -> None:
    t = topic()
    gone, stays = Sink(), Sink()
    unsubscribe = await bus.subscribe(t, gone)
    await bus.subscribe(t, stays)
    await bus.publish(t, b"1")
    await gone.wait_for(1)
    await stays.wait_for(1)
    unsubscribe()
    unsubscribe()  # twice is harmless
    await bus.publish(t, b"2")
    assert await stays.wait_for(2) == [b"1", b"2"]
    assert gone.got == [b"1"]


async def test_a_topic_can_be_left_and_joined_again_at_once(bus: Bus) -> None:
    t = topic()
    first = Sink()
    unsubscribe = await bus.subscribe(t, first)
    await bus.publish(t, b"1")
    await first.wait_for(1)
    unsubscribe()  # the last subscriber leaves ...
    again = Sink()
    await bus.subscribe(t, again)  # ... and a new one comes straight back
    await bus.publish(t, b"2")
    assert await again.wait_for(1) == [b"2"]
    assert first.got == [b"1"]


async def test_no_leakage_between_topics(bus: Bus) -> None:
    base = topic()
    names = [base, base + "x", base + ":sub", "x" + base]
    sinks = {name: Sink() for name in names}
    for name, sink in sinks.items():
        await bus.subscribe(name, sink)
    for name in names:
        await bus.publish(name, name.encode())
    for name, sink in sinks.items():
        assert await sink.wait_for(1) == [name.encode()]
    await asyncio.sleep(0.05)
    assert all(len(sink.got) == 1 for sink in sinks.values()), {n: s.got for n, s in sinks.items()}


async def test_presence_counts_joins_and_leaves(bus: Bus) -> None:
    t, other = topic(), topic()
    assert await bus.presence(t) == 0
    await bus.join(t, "m1")
    await bus.join(t, "m2")
    await bus.join(other, "m1")
    assert await bus.presence(t) == 2
    await bus.join(t, "m1")  # a member counts once
    assert await bus.presence(t) == 2
    await bus.leave(t, "m1")
    assert await bus.presence(t) == 1
    await bus.leave(t, "m1")
    await bus.leave(t, "never-joined")
    assert await bus.presence(t) == 1
    await bus.leave(t, "m2")
    assert await bus.presence(t) == 0
    assert await bus.presence(other) == 1


async def test_topics_lists_the_topics_of_a_prefix_that_have_members(bus: Bus) -> None:
    app = topic("app") + ":"
    assert await bus.topics(app) == {}
    await bus.join(app + "lobby", "m1")
    await bus.join(app + "lobby", "m2")
    await bus.join(app + "db-msgs", "m1")
    await bus.join(app + "glob*[x]?", "m3")  # pattern characters in a name are plain text
    await bus.join(app[:-1] + "x:lobby", "m4")  # another prefix: not listed
    await bus.join(app + "left", "m5")
    await bus.leave(app + "left", "m5")  # nobody left: not listed
    assert await bus.topics(app) == {app + "lobby": 2, app + "db-msgs": 1, app + "glob*[x]?": 1}
    assert await bus.topics(app + "glob*") == {app + "glob*[x]?": 1}
    assert len(await bus.topics(app, limit=2)) <= 2
    for name, member in (("lobby", "m1"), ("lobby", "m2"), ("db-msgs", "m1"), ("glob*[x]?", "m3")):
        await bus.leave(app + name, member)
    await bus.leave(app[:-1] + "x:lobby", "m4")
    assert await bus.topics(app) == {}


async def test_a_raising_subscriber_does_not_stop_the_others(bus: Bus) -> None:
    t = topic()
    calls: list[bytes] = []

    def broken(payload: bytes) -> None:
        calls.append(payload)
        raise RuntimeError("subscriber bug")

    good_before, good_after = Sink(), Sink()
    await bus.subscribe(t, good_before)
    await bus.subscribe(t, broken)
    await bus.subscribe(t, good_after)
    for payload in (b"1", b"2", b"3"):
        await bus.publish(t, payload)
    assert await good_before.wait_for(3) == [b"1", b"2", b"3"]
    assert await good_after.wait_for(3) == [b"1", b"2", b"3"]
    assert calls == [b"1", b"2", b"3"]
    assert bus.healthy


# --- Redis only: several processes, outages -----------------------------------------------


async def test_two_redis_buses_see_each_other(redis_pair: tuple[Bus, Bus]) -> None:
    a, b = redis_pair
    t = topic()
    on_a, on_b = Sink(), Sink()
    await a.subscribe(t, on_a)
    await b.subscribe(t, on_b)
    await a.publish(t, b"from-a")
    await b.publish(t, b"from-b")
    for sink in (on_a, on_b):
        got = await sink.wait_for(2)
        assert sorted(got) == [b"from-a", b"from-b"], got
    await a.join(t, "member-on-a")
    await b.join(t, "member-on-b")
    assert await a.presence(t) == 2
    assert await b.presence(t) == 2
    await a.leave(t, "member-on-a")
    assert await b.presence(t) == 1


async def test_order_is_kept_across_redis_buses(redis_pair: tuple[Bus, Bus]) -> None:
    a, b = redis_pair
    t = topic()
    sink = Sink()
    await b.subscribe(t, sink)
    sent = [str(i).encode() for i in range(1000)]
    for payload in sent:
        await a.publish(t, payload)
    assert await sink.wait_for(1000) == sent


async def test_a_subscription_made_right_after_open_is_live(redis_url: str) -> None:
    bus = redis_bus(redis_url)
    await bus.open()
    try:
        t = topic()
        sink = Sink()
        # what the broker does on join: subscribe, count the member, then messages flow
        await bus.subscribe(t, sink)  # "from now on": no message published after this may be missed
        await bus.join(t, "m1")
        await bus.publish(t, b"first")
        assert await sink.wait_for(1) == [b"first"]
    finally:
        await bus.close()


@pytest.mark.parametrize("kinds", [("pubsub",), ("normal",), ("pubsub", "normal")], ids="+".join)
async def test_redis_bus_heals_after_its_connections_are_killed(redis_url: str, kinds: tuple[str, ...]) -> None:
    bus = redis_bus(redis_url)
    await bus.open()
    try:
        t = topic()
        sink = Sink()
        await bus.subscribe(t, sink)
        await bus.join(t, "m1")
        await delivered_again(bus, sink, t)  # live before the cut (see the test just above)
        killed = await kill_redis_clients(redis_url, os.getpid(), kinds)
        assert killed >= 1, f"no {kinds} connection of this process to kill"
        took = await delivered_again(bus, sink, t)
        assert took < TIMEOUT, f"delivery resumed only after {took:.1f}s"
        deadline = time.monotonic() + TIMEOUT
        while not bus.healthy and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert bus.healthy, "delivery works again but the bus still reports itself unhealthy"
        assert await bus.presence(t) == 1
    finally:
        await bus.close()


async def test_a_healed_redis_bus_still_reaches_other_processes(redis_pair: tuple[Bus, Bus], redis_url: str) -> None:
    a, b = redis_pair
    t = topic()
    on_b = Sink()
    await b.subscribe(t, on_b)
    await delivered_again(a, on_b, t)
    await kill_redis_clients(redis_url, os.getpid())
    await delivered_again(a, on_b, t)
    assert a.healthy or await _becomes_healthy(a)
    assert b.healthy or await _becomes_healthy(b)


async def _becomes_healthy(bus: Bus) -> bool:
    deadline = time.monotonic() + TIMEOUT
    while not bus.healthy and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return bus.healthy
