"""Data stores: SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sbserver.backends.storage.base import Store

if TYPE_CHECKING:
    from sbserver.settings import Settings


def create_store(settings: Settings) -> Store:
    """The store the settings ask for (not yet opened)."""
    if settings.data_store == "pg":
        from sbserver.backends.storage.postgresql import PostgresStore

        return PostgresStore(settings.database_url, synchronous_commit=settings.pg_synchronous_commit)
    from sbserver.backends.storage.sqlite import SQLiteStore

    return SQLiteStore(settings.sqlite_path, writer=settings.sqlite_writer)


__all__ = ["Store", "create_store"]
