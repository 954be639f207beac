"""Form submissions in PostgreSQL, in each base's schema."""

from __future__ import annotations

import orjson

from sbserver.backends.storage.forms.base import FormStore
from sbserver.backends.storage.postgresql_base import PostgresBase, _limit, _schema
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
