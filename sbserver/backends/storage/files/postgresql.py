"""File records in PostgreSQL, in each base's schema."""

from __future__ import annotations

from sbserver.backends.storage.files.base import COLUMNS, SORTS, FileRecord, FileStore
from sbserver.backends.storage.postgresql_base import PostgresBase, _schema
from sbserver.types import Base


class PostgresFiles(PostgresBase, FileStore):
    """The file records contract on PostgreSQL; needs the plumbing of ``PostgresBase``."""

    async def add_file(self, base: Base, record: FileRecord) -> None:
        r = record
        await self._execute(
            f"INSERT INTO {_schema(base.name)}.files ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            r.id,
            r.account_id,
            r.name,
            r.key,
            r.url,
            r.size,
            r.uploaded,
        )

    async def file(self, base: Base, file_id: str) -> FileRecord | None:
        row = await self._fetchrow(f"SELECT {COLUMNS} FROM {_schema(base.name)}.files WHERE id = $1", file_id)
        return FileRecord.of_row(row) if row else None

    async def files(
        self, base: Base, account_id: str | None, sort: str, desc: bool, limit: int, offset: int
    ) -> list[FileRecord]:
        column = sort if sort in SORTS else "uploaded"
        direction = "DESC" if desc else "ASC"
        table = f"{_schema(base.name)}.files"
        order = f"ORDER BY {column} {direction}, id {direction}"
        if account_id:
            rows = await self._fetch(
                f"SELECT {COLUMNS} FROM {table} WHERE account_id = $1 {order} LIMIT $2 OFFSET $3",
                account_id,
                limit,
                offset,
            )
        else:
            rows = await self._fetch(f"SELECT {COLUMNS} FROM {table} {order} LIMIT $1 OFFSET $2", limit, offset)
        return [FileRecord.of_row(r) for r in rows]

    async def file_usage(self, base: Base, account_id: str | None) -> tuple[int, int]:
        table = f"{_schema(base.name)}.files"
        if account_id:
            row = await self._fetchrow(
                f"SELECT COUNT(*), COALESCE(SUM(size), 0) FROM {table} WHERE account_id = $1", account_id
            )
        else:
            row = await self._fetchrow(f"SELECT COUNT(*), COALESCE(SUM(size), 0) FROM {table}")
        assert row is not None
        return int(row[0]), int(row[1])

    async def delete_file(self, base: Base, file_id: str) -> FileRecord | None:
        row = await self._fetchrow(f"DELETE FROM {_schema(base.name)}.files WHERE id = $1 RETURNING {COLUMNS}", file_id)
        return FileRecord.of_row(row) if row else None
