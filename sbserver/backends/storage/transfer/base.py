"""The two ends of a transfer: a ``Source`` streams records out of one consistent snapshot; a
``Sink`` writes them in one transaction (all or nothing)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from typing import Any

from sbserver.backends.storage.transfer.records import BASE_KINDS, BY_NAME, SYSTEM_KINDS, Kind, TransferError, from_rows

BATCH = 2000  # records per batch read or written

# The rows of a system table that belong to one app: ``{p}`` is the parameter (the app's tenant
# id, pk or name, see ``_app_param``), ``{sb}`` the system schema prefix.
_APP_WHERE = {
    "tenant": "id = {p}",
    "base": "pk = {p}",
    "task_run": "task_id IN (SELECT id FROM {sb}tasks WHERE base = {p})",
}


class Source(ABC):
    """Records of an installation (or of one app), read in one snapshot between ``open`` and ``close``."""

    @abstractmethod
    async def open(self) -> None:
        """Connect and start the snapshot; ``TransferError`` when the source cannot be read."""

    @abstractmethod
    async def close(self) -> None:
        """End the snapshot and disconnect."""

    @abstractmethod
    async def counts(self, app: str | None = None) -> dict[str, int]:
        """Records per kind that ``records(app)`` yields."""

    @abstractmethod
    def records(self, app: str | None = None) -> AsyncIterator[list[dict[str, Any]]]:
        """Every record, in batches of one kind, tenants and bases first; ``app`` (a public key)
        limits it to that app and its tenant."""


class Sink(ABC):
    """Where records are written: ``begin``, ``write``... then ``commit`` (or ``rollback``)."""

    @abstractmethod
    async def open(self) -> None:
        """Connect (creating the store and its tables if needed)."""

    @abstractmethod
    async def close(self) -> None:
        """Disconnect; an open transaction is rolled back."""

    @abstractmethod
    async def is_empty(self) -> bool:
        """True when the target holds no tenant and no app."""

    @abstractmethod
    async def begin(self, wipe: bool = False) -> None:
        """Start the transaction; ``wipe`` first deletes everything the target holds."""

    @abstractmethod
    async def write(self, kind: Kind, records: Sequence[dict[str, Any]]) -> None:
        """Write records of one kind; ``TransferError`` on a conflict (the caller rolls back)."""

    @abstractmethod
    async def commit(self) -> None:
        """Make everything written visible, then finish what cannot run in a transaction."""

    @abstractmethod
    async def rollback(self) -> None:
        """Forget everything written since ``begin``."""


class TableSource(Source):
    """A source over sbserver's own tables: the stores differ only in how they read one table."""

    @abstractmethod
    async def _bases(self) -> list[tuple[str, str, str]]:
        """(pk, name, tenant id) of every base, by name."""

    @abstractmethod
    def _rows(self, kind: Kind, base: str | None, where: str, param: Any) -> AsyncIterator[list[Sequence[Any]]]:
        """Batches of ``kind.fields`` rows in ``kind.order``: of base ``base``'s table for a
        per-base kind, else of the system table (filtered by ``where`` with ``param`` if set)."""

    @abstractmethod
    async def _count(self, kind: Kind, base: str | None, where: str, param: Any) -> int:
        """How many rows ``_rows`` would yield."""

    async def _selected(self, app: str | None) -> list[tuple[str, str, str]]:
        bases = await self._bases()
        if app is None:
            return bases
        chosen = [b for b in bases if b[0] == app]
        if not chosen:
            raise TransferError(f"no app with public key {app!r} in the source")
        return chosen

    @staticmethod
    def _filter(kind: Kind, app: tuple[str, str, str] | None) -> tuple[str, Any]:
        if app is None:
            return "", None
        pk, name, tenant = app
        param = {"tenant": tenant, "base": pk}.get(kind.name, name)
        return _APP_WHERE.get(kind.name, "base = {p}"), param

    async def counts(self, app: str | None = None) -> dict[str, int]:
        bases = await self._selected(app)
        one = bases[0] if app is not None else None
        counts = {k.name: await self._count(k, None, *self._filter(k, one)) for k in SYSTEM_KINDS}
        for kind in BASE_KINDS:
            counts[kind.name] = sum([await self._count(kind, b[1], "", None) for b in bases])
        return {k: counts[k] for k in BY_NAME}

    async def records(self, app: str | None = None) -> AsyncIterator[list[dict[str, Any]]]:
        bases = await self._selected(app)
        one = bases[0] if app is not None else None
        head, tail = SYSTEM_KINDS[:2], SYSTEM_KINDS[2:]  # tenants and bases, then the rest
        for kind in head:
            async for rows in self._rows(kind, None, *self._filter(kind, one)):
                yield from_rows(kind, rows)
        for _, name, _ in bases:
            for kind in BASE_KINDS:
                async for rows in self._rows(kind, name, "", None):
                    yield from_rows(kind, rows, name)
        for kind in tail:
            async for rows in self._rows(kind, None, *self._filter(kind, one)):
                yield from_rows(kind, rows)
