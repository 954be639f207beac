"""Form submissions in SQLite."""

from __future__ import annotations

import orjson

from sbserver.backends.storage.forms.base import FormStore
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
