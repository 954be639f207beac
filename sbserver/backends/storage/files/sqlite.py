"""File records in SQLite."""

from __future__ import annotations

from typing import Any

from sbserver.backends.storage.files.base import COLUMNS, SORTS, FileRecord, FileStore
from sbserver.backends.storage.sqlite_base import SQLiteBase
from sbserver.types import Base


class SQLiteFiles(SQLiteBase, FileStore):
    """The file records contract on SQLite; needs the plumbing of ``SQLiteBase``."""

    async def add_file(self, base: Base, record: FileRecord) -> None:
        r = record
        await self._write(
            lambda c: c.execute(
                f"INSERT INTO files (base, {COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (base.name, r.id, r.account_id, r.name, r.key, r.url, r.size, r.uploaded),
            )
        )

    async def file(self, base: Base, file_id: str) -> FileRecord | None:
        row = self._one(f"SELECT {COLUMNS} FROM files WHERE base = ? AND id = ?", (base.name, file_id))
        return FileRecord.of_row(row) if row else None

    async def files(
        self, base: Base, account_id: str | None, sort: str, desc: bool, limit: int, offset: int
    ) -> list[FileRecord]:
        column = sort if sort in SORTS else "uploaded"
        direction = "DESC" if desc else "ASC"
        where, params = (
            ("base = ? AND account_id = ?", [base.name, account_id]) if account_id else ("base = ?", [base.name])
        )
        rows = await self._all_off(
            f"SELECT {COLUMNS} FROM files WHERE {where} ORDER BY {column} {direction}, id {direction} LIMIT ? OFFSET ?",
            (*params, limit, offset),
        )
        return [FileRecord.of_row(r) for r in rows]

    async def file_usage(self, base: Base, account_id: str | None) -> tuple[int, int]:
        if account_id:
            row = await self._one_off(
                "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM files WHERE base = ? AND account_id = ?",
                (base.name, account_id),
            )
        else:
            row = await self._one_off("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM files WHERE base = ?", (base.name,))
        return int(row[0]), int(row[1])

    async def delete_file(self, base: Base, file_id: str) -> FileRecord | None:
        def delete(c: Any) -> FileRecord | None:
            row = c.execute(
                f"DELETE FROM files WHERE base = ? AND id = ? RETURNING {COLUMNS}", (base.name, file_id)
            ).fetchone()
            return FileRecord.of_row(row) if row else None

        return await self._write(delete)
