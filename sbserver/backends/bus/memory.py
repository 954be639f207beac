"""In-process bus: a dict of topic -> subscribers, delivered synchronously in publish order."""

from __future__ import annotations

import logging
from collections.abc import Callable

from sbserver.backends.bus.base import Bus, Delivery

log = logging.getLogger("sbserver.bus")


class MemoryBus(Bus):
    def __init__(self) -> None:
        self._subs: dict[str, list[Delivery]] = {}
        self._members: dict[str, set[str]] = {}

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        self._subs.clear()
        self._members.clear()

    def deliver(self, topic: str, payload: bytes) -> None:
        for fn in list(self._subs.get(topic, ())):
            try:
                fn(payload)
            except Exception:  # a broken subscriber must not starve the others
                log.exception("subscriber of %s failed", topic)

    async def publish(self, topic: str, payload: bytes) -> None:
        self.deliver(topic, payload)

    def may_reach(self, topic: str) -> bool:
        return topic in self._subs  # this process is the only one

    async def subscribe(self, topic: str, deliver: Delivery) -> Callable[[], None]:
        self._subs.setdefault(topic, []).append(deliver)

        def unsubscribe() -> None:
            subs = self._subs.get(topic)
            if subs and deliver in subs:
                subs.remove(deliver)
                if not subs:
                    del self._subs[topic]

        return unsubscribe

    async def join(self, topic: str, member: str) -> None:
        self._members.setdefault(topic, set()).add(member)

    async def leave(self, topic: str, member: str) -> None:
        members = self._members.get(topic)
        if members is not None:
            members.discard(member)
            if not members:
                del self._members[topic]

    async def presence(self, topic: str) -> int:
        return len(self._members.get(topic, ()))

    async def topics(self, prefix: str, limit: int = 1000) -> dict[str, int]:
        found: dict[str, int] = {}
        for topic, members in self._members.items():
            if len(found) >= limit:
                break
            if topic.startswith(prefix) and members:
                found[topic] = len(members)
        return found
