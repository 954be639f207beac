"""Form submissions in SQLite."""

from __future__ import annotations

import orjson

from sbserver.backends.storage.forms.base import FormStore, Submission
from sbserver.backends.storage.sqlite_base import SQLiteBase
from sbserver.types import Base


class SQLiteForms(SQLiteBase, FormStore):
    """The form submissions contract on SQLite; needs the plumbing of ``SQLiteBase``."""

    # forms
    async def add_form(self, base: Base, form: str, data: dict[str, str], created: str) -> None:
        await self._write(
            lambda c: c.execute(
                "INSERT INTO forms (base, form, data, created) VALUES (?, ?, ?, ?)",
                (base.name, form, orjson.dumps(data).decode(), created),
            )
        )

    async def forms(self, base: Base, form: str | None, limit: int) -> list[dict[str, str]]:
        if form:
            rows = self._all(
                "SELECT data FROM forms WHERE base = ? AND form = ? ORDER BY seq DESC LIMIT ?",
                (base.name, form, limit),
            )
        else:
            rows = self._all("SELECT data FROM forms WHERE base = ? ORDER BY seq DESC LIMIT ?", (base.name, limit))
        return [orjson.loads(r[0]) for r in rows]

    async def form_names(self, base: Base) -> list[tuple[str, int]]:
        rows = await self._all_off(
            "SELECT form, COUNT(*) FROM forms WHERE base = ? GROUP BY form ORDER BY form", (base.name,)
        )
        return [(r[0], int(r[1])) for r in rows]

    async def form_entries(self, base: Base, form: str, limit: int, offset: int) -> list[Submission]:
        rows = await self._all_off(
            "SELECT seq, form, data, created FROM forms WHERE base = ? AND form = ? ORDER BY seq DESC LIMIT ? OFFSET ?",
            (base.name, form, limit, offset),
        )
        return [Submission(int(r[0]), r[1], orjson.loads(r[2]), r[3]) for r in rows]

    async def form_entry(self, base: Base, seq: int) -> Submission | None:
        row = self._one("SELECT seq, form, data, created FROM forms WHERE base = ? AND seq = ?", (base.name, seq))
        return Submission(int(row[0]), row[1], orjson.loads(row[2]), row[3]) if row else None

    async def delete_form_entry(self, base: Base, seq: int) -> bool:
        return await self._write(
            lambda c: c.execute("DELETE FROM forms WHERE base = ? AND seq = ?", (base.name, seq)).rowcount > 0
        )
