"""The internal event bus: database changes, published only after their write has committed.

Handlers are called synchronously in publish order, so each subscriber sees the events of a
collection in commit order; a handler that has real work to do queues it and returns at once.
The realtime broker and the function triggers subscribe here. A handler may return a future
that resolves once the event is durable on its side (function jobs written to the store); the
writer answers its caller only after those (``settled``), so an acknowledged write's function
runs survive a crash of the process.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sbserver.types import Identity

log = logging.getLogger("sbserver.events")

DB_CREATED = "db_created"
DB_UPDATED = "db_updated"
DB_DELETED = "db_deleted"


@dataclass(frozen=True, slots=True)
class DbEvent:
    type: str  # db_created | db_updated | db_deleted
    base: str  # base name
    collection: str  # as the client named it, suffix included
    doc_id: str
    account_id: str
    owner_id: str
    document: dict[str, Any] | None  # the full document after the write; None for deletes
    actor: Identity
    queued: bool = False  # its function jobs were written with the write itself

    @property
    def channel(self) -> str:
        return f"db-{self.collection}"


Handler = Callable[[DbEvent], "asyncio.Future[None] | None"]


class EventBus:
    def __init__(self) -> None:
        self._handlers: list[Handler] = []

    def subscribe(self, handler: Handler) -> Callable[[], None]:
        """Call ``handler`` for every event from now on; returns the function that stops it."""
        self._handlers.append(handler)

        def unsubscribe() -> None:
            if handler in self._handlers:
                self._handlers.remove(handler)

        return unsubscribe

    def publish(self, event: DbEvent) -> list[asyncio.Future[None]]:
        """Hand ``event`` to every subscriber; returns what to wait for before acknowledging it."""
        pending: list[asyncio.Future[None]] = []
        for handler in list(self._handlers):
            try:
                durable = handler(event)
            except Exception:  # one broken subscriber must not stop the others or the write
                log.exception("event handler failed for %s on %s", event.type, event.channel)
                continue
            if durable is not None:
                pending.append(durable)
        return pending


async def settled(pending: list[asyncio.Future[None]]) -> None:
    """Wait until the subscribers made these events durable. Each future is this write's own
    (a cancelled writer cancels only its own; the dispatcher skips futures already done)."""
    for durable in pending:
        await durable
