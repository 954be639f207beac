"""What every PostgreSQL domain mixin relies on: the plumbing ``PostgresStore`` provides, and the
helpers several domains share (schema names, command statuses, limits).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from contextlib import AbstractAsyncContextManager
from typing import Any

import asyncpg

from sbserver.errors import StoreError

# Every migration (and base creation) holds this transaction-scoped advisory lock, so several
# server processes starting at once apply each migration exactly once.
MIGRATION_LOCK = 0x5B5E_2F00_0001

_NAME = re.compile(r"[A-Za-z0-9_]{1,63}")  # 63: PostgreSQL silently truncates longer identifiers
_RESERVED = frozenset({"sb", "public", "information_schema"})


def _schema(name: str) -> str:
    """The quoted schema of a base; ``StoreError`` for a name that cannot be one."""
    if not _NAME.fullmatch(name) or name in _RESERVED or name.startswith("pg_"):
        raise StoreError(
            f"invalid base name {name[:80]!r}: use 1 to 63 characters of A-Z a-z 0-9 _ "
            "(not sb, public, information_schema or pg_*)"
        )
    return f'"{name}"'  # the regex leaves nothing to escape


def _count(status: str) -> int:
    """Rows touched, from a command status such as ``UPDATE 1``."""
    return int(status.rsplit(" ", 1)[-1])


def _limit(n: int) -> int | None:
    """SQLite reads a negative LIMIT as "no limit"; PostgreSQL wants NULL for that."""
    return None if n < 0 else n


class PostgresBase(ABC):
    """The pool plumbing and shared state of ``PostgresStore``, as its mixins see them."""

    _known: set[tuple[str, str]]  # (base, collection) already registered
    _upkeep: Any  # documents.postgresql.Upkeep, or None when PostgreSQL's autovacuum runs
    _indexed: Any  # lru.ExpiringLRU: (base, collection) -> its indexed fields, read again now and then

    @abstractmethod
    def _conn(self, transaction: bool = False) -> AbstractAsyncContextManager[asyncpg.Connection]:
        """A pooled connection (in a transaction if asked), with database errors translated."""

    @abstractmethod
    async def _execute(self, sql: str, *args: Any) -> str:
        """Run one statement; its command status."""

    @abstractmethod
    async def _fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None:
        """The first row of one statement, or None."""

    @abstractmethod
    async def _fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        """Every row of one statement."""

    @abstractmethod
    async def _migrate_base(self, c: asyncpg.Connection, schema: str) -> None:
        """Apply a base's pending migrations in its schema; the caller holds the lock and a transaction."""
