"""Redis bus: PUBLISH/SUBSCRIBE shared by every process, presence in sorted sets.

One subscriber connection per process carries every topic its local subscribers need; a reader
task hands each message to the local subscribers in arrival order (Redis keeps per-channel
order). When Redis drops, the reader reconnects with backoff and re-subscribes every topic,
so realtime resumes without a restart; HTTP never waits on it. Presence members are scored
with an expiry that this process refreshes while they stay, so a crashed process's members
age out within ``MEMBER_TTL``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Callable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from sbserver.backends.bus.base import Bus, Delivery
from sbserver.errors import StoreError

log = logging.getLogger("sbserver.bus")
MEMBER_TTL = 60.0
REFRESH_EVERY = 20.0
PREFIX = "sbbus:"
_GLOB = re.compile(r"[\\*?\[\]]")  # what SCAN MATCH reads as a pattern


class RedisBus(Bus):
    def __init__(self, url: str) -> None:
        self.url = url
        self._r: aioredis.Redis | None = None
        self._pubsub: aioredis.client.PubSub | None = None
        self._subs: dict[str, list[Delivery]] = {}
        self._members: dict[str, set[str]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._refresher: asyncio.Task[None] | None = None
        self._healthy = False
        self._outbox: asyncio.Queue[tuple[str, bytes, asyncio.Future[None] | None]] = asyncio.Queue()
        self._confirmed: dict[str, asyncio.Event] = {}  # topics Redis has confirmed for our pubsub
        self._sync_lock = asyncio.Lock()
        self._connected = asyncio.Event()
        self._publisher: asyncio.Task[None] | None = None

    @property
    def healthy(self) -> bool:
        return self._healthy

    @property
    def r(self) -> aioredis.Redis:
        assert self._r is not None, "bus is not open"
        return self._r

    async def open(self) -> None:
        self._r = aioredis.from_url(self.url, health_check_interval=10, socket_connect_timeout=3, socket_timeout=10)
        try:
            await self._r.ping()
        except RedisError as exc:
            raise StoreError(f"cannot reach Redis at {self.url}: {exc}") from exc
        self._healthy = True
        self._reader = asyncio.create_task(self._read_forever(), name="redis-bus-reader")
        self._refresher = asyncio.create_task(self._refresh_forever(), name="redis-bus-presence")
        self._publisher = asyncio.create_task(self._publish_forever(), name="redis-bus-publisher")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), 5.0)

    async def close(self) -> None:
        # Every step is bounded: a half-dead connection must not keep a server from stopping.
        for task in (self._reader, self._refresher, self._publisher):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(task, 2.0)
        self._reader = self._refresher = self._publisher = None
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._pubsub.aclose(), 2.0)
            self._pubsub = None
        if self._members and self._r is not None:
            with contextlib.suppress(Exception):
                pipe = self.r.pipeline()
                for topic, members in self._members.items():
                    pipe.zrem(PREFIX + "members:" + topic, *members)
                await asyncio.wait_for(pipe.execute(), 2.0)
        self._subs.clear()
        self._members.clear()
        self._confirmed.clear()
        if self._r is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._r.aclose(), 2.0)
            self._r = None

    # publishing and subscribing
    async def publish(self, topic: str, payload: bytes) -> None:
        # One publisher task sends everything in FIFO order (pipelined), so the order in which
        # this process publishes is the order every subscriber sees.
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._outbox.put_nowait((topic, payload, fut))
        await fut

    async def _publish_forever(self) -> None:
        while True:
            batch = [await self._outbox.get()]
            while len(batch) < 512 and not self._outbox.empty():
                batch.append(self._outbox.get_nowait())
            failure: Exception | None = None
            try:
                pipe = self.r.pipeline(transaction=False)
                for topic, payload, _ in batch:
                    pipe.publish(PREFIX + topic, payload)
                await pipe.execute()
                self._healthy = True
            except (RedisError, OSError) as exc:
                self._healthy = False
                failure = StoreError(f"unable to publish: {exc}")
            for _, _, fut in batch:
                if fut is not None and not fut.done():
                    if failure is None:
                        fut.set_result(None)
                    else:
                        fut.set_exception(failure)

    async def subscribe(self, topic: str, deliver: Delivery) -> Callable[[], None]:
        self._subs.setdefault(topic, []).append(deliver)
        await self._sync(topic)

        def unsubscribe() -> None:
            current = self._subs.get(topic)
            if current and deliver in current:
                current.remove(deliver)
                if not current:
                    del self._subs[topic]
                    task = asyncio.ensure_future(self._sync(topic))
                    task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)

        return unsubscribe

    async def _sync(self, topic: str) -> None:
        """Make Redis's subscription of ``topic`` match the local subscribers, in call order;
        a new subscription returns once Redis has confirmed it (so nothing published after
        ``subscribe`` returns is missed)."""
        async with self._sync_lock:
            pubsub = self._pubsub
            if pubsub is None:
                return  # the reader subscribes every wanted topic when it (re)connects
            wanted = topic in self._subs
            active = topic in self._confirmed
            try:
                if wanted and not active:
                    event = self._confirmed.setdefault(topic, asyncio.Event())
                    await pubsub.subscribe(PREFIX + topic)
                    await asyncio.wait_for(event.wait(), 5.0)
                elif not wanted and active:
                    self._confirmed.pop(topic, None)
                    await pubsub.unsubscribe(PREFIX + topic)
            except (RedisError, OSError, TimeoutError) as exc:
                log.warning("redis bus: could not (un)subscribe %s: %s", topic, exc)

    def _dispatch(self, channel: bytes, payload: bytes) -> None:
        topic = channel.decode()[len(PREFIX) :]
        for fn in list(self._subs.get(topic, ())):
            try:
                fn(payload)
            except Exception:
                log.exception("subscriber of %s failed", topic)

    async def _read_forever(self) -> None:
        backoff = 0.2
        while True:
            pubsub = self.r.pubsub()
            try:
                self._confirmed.clear()
                await pubsub.subscribe(PREFIX + "__sbserver_keepalive__")
                topics = [PREFIX + t for t in self._subs]
                for t in self._subs:
                    self._confirmed.setdefault(t, asyncio.Event())
                if topics:
                    await pubsub.subscribe(*topics)
                self._pubsub = pubsub
                self._connected.set()
                if not self._healthy:
                    log.warning("redis bus reconnected; %d topics re-subscribed", len(topics))
                self._healthy = True
                backoff = 0.2
                while True:
                    msg = await pubsub.get_message(timeout=5.0)
                    if msg is None:
                        continue
                    kind = msg.get("type")
                    if kind == "message":
                        self._dispatch(msg["channel"], msg["data"])
                    elif kind == "subscribe":
                        event = self._confirmed.get(msg["channel"].decode()[len(PREFIX) :])
                        if event is not None:
                            event.set()
            except asyncio.CancelledError:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                raise
            except (RedisError, OSError) as exc:
                if self._healthy:
                    log.warning("redis bus lost its connection (%s); reconnecting", exc)
                self._healthy = False
                self._pubsub = None
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    # presence
    async def join(self, topic: str, member: str) -> None:
        self._members.setdefault(topic, set()).add(member)
        with contextlib.suppress(RedisError):
            await self.r.zadd(PREFIX + "members:" + topic, {member: time.time() + MEMBER_TTL})

    async def leave(self, topic: str, member: str) -> None:
        members = self._members.get(topic)
        if members is not None:
            members.discard(member)
            if not members:
                del self._members[topic]
        with contextlib.suppress(RedisError):
            await self.r.zrem(PREFIX + "members:" + topic, member)

    async def presence(self, topic: str) -> int:
        try:
            return int(await self.r.zcount(PREFIX + "members:" + topic, time.time(), "+inf"))
        except RedisError:
            return len(self._members.get(topic, ()))

    async def topics(self, prefix: str, limit: int = 1000) -> dict[str, int]:
        start = len(PREFIX + "members:")
        pattern = PREFIX + "members:" + _GLOB.sub(r"\\\g<0>", prefix) + "*"
        try:
            keys: list[bytes] = []
            async for key in self.r.scan_iter(match=pattern, count=500):
                keys.append(key)
                if len(keys) >= limit:
                    break
            pipe = self.r.pipeline(transaction=False)
            now = time.time()
            for key in keys:
                pipe.zcount(key, now, "+inf")
            counts = await pipe.execute() if keys else []
        except RedisError as exc:
            raise StoreError(f"unable to list the channels: {exc}") from exc
        return {key.decode()[start:]: int(n) for key, n in zip(keys, counts, strict=True) if n}

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_EVERY)
            if not self._members:
                continue
            try:
                expires = time.time() + MEMBER_TTL
                pipe = self.r.pipeline(transaction=False)
                for topic, members in list(self._members.items()):
                    key = PREFIX + "members:" + topic
                    pipe.zadd(key, dict.fromkeys(members, expires))
                    pipe.zremrangebyscore(key, "-inf", time.time())
                await pipe.execute()
            except RedisError as exc:
                log.warning("presence refresh failed: %s", exc)
