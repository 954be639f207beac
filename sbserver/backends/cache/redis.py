"""Redis cache: shared by every server process."""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from sbserver.backends.cache.base import Cache
from sbserver.errors import StoreError

MAX_CONNECTIONS = 100
POOL_WAIT_SECONDS = 10.0
# RPUSH only while the list is shorter than ARGV[2]: 1 when added, 0 when full.
_PUSH_BOUNDED = """
if redis.call('LLEN', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('RPUSH', KEYS[1], ARGV[1])
return 1
"""


class RedisCache(Cache):
    def __init__(self, url: str) -> None:
        self.url = url
        self._r: aioredis.Redis | None = None

    async def open(self) -> None:
        # A blocking pool: a burst of more concurrent calls than connections waits for one (redis-py's
        # default pool raises "Too many connections" past 100, which a login storm would turn into 500s).
        pool = aioredis.BlockingConnectionPool.from_url(
            self.url,
            max_connections=MAX_CONNECTIONS,
            timeout=POOL_WAIT_SECONDS,
            decode_responses=True,
            health_check_interval=15,
        )
        self._r = aioredis.Redis.from_pool(pool)
        try:
            await self._r.ping()
        except RedisError as exc:
            raise StoreError(f"cannot reach Redis at {self.url}: {exc}") from exc

    async def close(self) -> None:
        if self._r is not None:
            await self._r.aclose()
            self._r = None

    @property
    def r(self) -> aioredis.Redis:
        assert self._r is not None, "cache is not open"
        return self._r

    async def get(self, key: str) -> str | None:
        try:
            value = await self.r.get(key)
            return None if value is None else str(value)
        except RedisError as exc:
            raise StoreError(f"cache error: {exc}") from exc

    async def set(self, key: str, value: str, ttl: float | None = None) -> None:
        try:
            await self.r.set(key, value, px=int(ttl * 1000) if ttl else None)
        except RedisError as exc:
            raise StoreError(f"cache error: {exc}") from exc

    async def delete(self, key: str) -> None:
        try:
            await self.r.delete(key)
        except RedisError as exc:
            raise StoreError(f"cache error: {exc}") from exc

    async def take(self, key: str) -> str | None:
        try:
            value = await self.r.getdel(key)
            return None if value is None else str(value)
        except RedisError as exc:
            raise StoreError(f"cache error: {exc}") from exc

    async def incr(self, key: str, ttl: float) -> int:
        """INCR and PEXPIRE NX in one MULTI: one round trip, and no counter left without expiry."""
        try:
            pipe = self.r.pipeline(transaction=True)
            pipe.incr(key)
            pipe.pexpire(key, int(ttl * 1000), nx=True)
            value, _ = await pipe.execute()
            return int(value)
        except RedisError as exc:
            raise StoreError(f"cache error: {exc}") from exc

    async def add(self, key: str, amount: int) -> int:
        try:
            return int(await self.r.incrby(key, amount))
        except ResponseError as exc:
            if "not an integer" in str(exc):
                raise ValueError("the value is not an integer") from exc
            raise StoreError(f"cache error: {exc}") from exc
        except RedisError as exc:
            raise StoreError(f"cache error: {exc}") from exc

    async def push(self, key: str, value: str, limit: int | None = None) -> bool:
        try:
            if limit is None:
                await self.r.rpush(key, value)
                return True
            # one script: no other client's push lands between the length check and ours
            added = await self.r.eval(_PUSH_BOUNDED, 1, key, value, str(limit))
            return bool(int(added))
        except RedisError as exc:
            raise StoreError(f"cache error: {exc}") from exc

    async def pop(self, key: str) -> str | None:
        try:
            value = await self.r.lpop(key)
            return None if value is None else str(value)
        except RedisError as exc:
            raise StoreError(f"cache error: {exc}") from exc

    async def length(self, key: str) -> int:
        try:
            return int(await self.r.llen(key))
        except RedisError as exc:
            raise StoreError(f"cache error: {exc}") from exc
