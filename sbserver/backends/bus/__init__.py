"""Pub/sub buses: in-process (the embedded default) and Redis (several processes)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sbserver.backends.bus.base import Bus, Delivery

if TYPE_CHECKING:
    from sbserver.settings import Settings


def create_bus(settings: Settings) -> Bus:
    if settings.redis_url:
        from sbserver.backends.bus.redis import RedisBus

        return RedisBus(settings.redis_url)
    from sbserver.backends.bus.memory import MemoryBus

    return MemoryBus()


__all__ = ["Bus", "Delivery", "create_bus"]
