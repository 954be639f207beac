"""What every SQLite domain mixin relies on: the plumbing ``SQLiteStore`` provides.

Writes go through the one writer (``_write``, a transaction per call); reads run on the reader
connection on the event loop (``_one``, ``_all``: point lookups and index walks, cheaper than a
thread hop), or with a time budget there and then on a small pool of reader threads
(``_all_off``, ``_one_off``: filtered and sorted reads and counts, whose cost depends on the data,
so that one never stalls the loop). Errors come out
translated: ``Conflict`` or ``StoreError``.
"""

from __future__ import annotations

import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")


class SQLiteBase(ABC):
    """The connection plumbing and shared state of ``SQLiteStore``, as its mixins see them."""

    _collections: set[tuple[str, str]]  # (base, collection) known to be recorded
    _indexed: dict[tuple[str, str], frozenset[str]]  # (base, collection) -> its indexed fields
    _rowids: Any  # ``documents.sqlite.Rowids``: where new documents go in the table

    @abstractmethod
    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` in one write transaction on the writer and return its result."""

    @abstractmethod
    def _one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """The first row a read returns, or None."""

    @abstractmethod
    def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Every row a read returns."""

    @abstractmethod
    async def _all_off(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Every row a read returns: on the loop within a budget, else on a reader thread."""

    @abstractmethod
    async def _one_off(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """The first row a read returns (or None): on the loop within a budget, else on a reader thread."""
