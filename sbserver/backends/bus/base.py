"""The bus contract: topics carry opaque byte payloads to every subscriber, in publish order.

Presence is kept beside the topics: a member is one connection joined to a topic, counted
across every process that shares the bus. A process that dies stops refreshing its members
and they age out.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

Delivery = Callable[[bytes], None]


class Bus(ABC):
    @abstractmethod
    async def open(self) -> None:
        """Connect (a no-op in process)."""

    @abstractmethod
    async def close(self) -> None:
        """Drop every subscription and connection."""

    @abstractmethod
    async def publish(self, topic: str, payload: bytes) -> None:
        """Deliver the payload to every current subscriber of the topic, on every process."""

    def may_reach(self, topic: str) -> bool:
        """False only when a publish on the topic is sure to reach nobody (nothing subscribes
        anywhere), so the publisher can skip building the message."""
        return True

    @abstractmethod
    async def subscribe(self, topic: str, deliver: Delivery) -> Callable[[], None]:
        """Call ``deliver`` for each payload on the topic from now on (it must not block);
        returns the function that ends the subscription."""

    @abstractmethod
    async def join(self, topic: str, member: str) -> None:
        """Count ``member`` as present on the topic."""

    @abstractmethod
    async def leave(self, topic: str, member: str) -> None:
        """Stop counting ``member`` on the topic."""

    @abstractmethod
    async def presence(self, topic: str) -> int:
        """How many members the topic has across all processes."""

    @abstractmethod
    async def topics(self, prefix: str, limit: int = 1000) -> dict[str, int]:
        """The topics starting with ``prefix`` that have members now, each with its count across
        all processes (at most ``limit`` topics)."""

    @property
    def healthy(self) -> bool:
        """False while the bus is cut off from its server (Redis down)."""
        return True
