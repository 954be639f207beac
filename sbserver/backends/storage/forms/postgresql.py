"""Form submissions in PostgreSQL, in each base's schema."""

from __future__ import annotations

import orjson

from sbserver.backends.storage.forms.base import FormStore, Submission
from sbserver.backends.storage.postgresql_base import PostgresBase, _count, _limit, _schema
from sbserver.types import Base


class PostgresForms(PostgresBase, FormStore):
    """The form submissions contract on PostgreSQL; needs the plumbing of ``PostgresBase``."""

    # forms
    async def add_form(self, base: Base, form: str, data: dict[str, str], created: str) -> None:
        await self._execute(
            f"INSERT INTO {_schema(base.name)}.forms (form, data, created) VALUES ($1, $2, $3)",
            form,
            orjson.dumps(data).decode(),
            created,
        )

    async def forms(self, base: Base, form: str | None, limit: int) -> list[dict[str, str]]:
        schema = _schema(base.name)
        if form:
            rows = await self._fetch(
                f"SELECT data FROM {schema}.forms WHERE form = $1 ORDER BY seq DESC LIMIT $2",
                form,
                _limit(limit),
            )
        else:
            rows = await self._fetch(f"SELECT data FROM {schema}.forms ORDER BY seq DESC LIMIT $1", _limit(limit))
        return [orjson.loads(r[0]) for r in rows]

    async def form_names(self, base: Base) -> list[tuple[str, int]]:
        rows = await self._fetch(f"SELECT form, COUNT(*) FROM {_schema(base.name)}.forms GROUP BY form ORDER BY form")
        return [(r[0], int(r[1])) for r in rows]

    async def form_entries(self, base: Base, form: str, limit: int, offset: int) -> list[Submission]:
        rows = await self._fetch(
            f"SELECT seq, form, data, created FROM {_schema(base.name)}.forms WHERE form = $1 "
            "ORDER BY seq DESC LIMIT $2 OFFSET $3",
            form,
            _limit(limit),
            offset,
        )
        return [Submission(int(r[0]), r[1], orjson.loads(r[2]), r[3]) for r in rows]

    async def form_entry(self, base: Base, seq: int) -> Submission | None:
        row = await self._fetchrow(
            f"SELECT seq, form, data, created FROM {_schema(base.name)}.forms WHERE seq = $1", seq
        )
        return Submission(int(row[0]), row[1], orjson.loads(row[2]), row[3]) if row else None

    async def delete_form_entry(self, base: Base, seq: int) -> bool:
        return _count(await self._execute(f"DELETE FROM {_schema(base.name)}.forms WHERE seq = $1", seq)) > 0
