"""Key/value cache and queues: in-process (embedded default) and Redis (several processes)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sbserver.backends.cache.base import Cache

if TYPE_CHECKING:
    from sbserver.settings import Settings


def create_cache(settings: Settings) -> Cache:
    if settings.redis_url:
        from sbserver.backends.cache.redis import RedisCache

        return RedisCache(settings.redis_url)
    from sbserver.backends.cache.memory import MemoryCache

    return MemoryCache()


__all__ = ["Cache", "create_cache"]
