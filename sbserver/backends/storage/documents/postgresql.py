"""Documents in PostgreSQL: one table per base schema, every collection in it."""

from __future__ import annotations

import asyncpg
import orjson

from sbserver.backends.storage.documents.base import DocumentStore, Mutation, Predicate
from sbserver.backends.storage.functions.base import job_rows
from sbserver.backends.storage.functions.postgresql import INSERT_JOB, INSERT_JOBS_FROM_ARRAYS
from sbserver.backends.storage.postgresql_base import PostgresBase, _limit, _schema
from sbserver.types import Base, QueuedJobs, Scope, StoredDoc

_DOC_COLS = "id, account_id, owner_id, created, data"


def _doc(row: asyncpg.Record) -> StoredDoc:
    return StoredDoc(row[0], row[1], row[2], row[3], orjson.loads(row[4]))


def _scope_sql(scope: Scope, first: int) -> tuple[str, tuple[str, ...]]:
    """Extra WHERE terms for a scope, numbering its parameters from ``$first`` (as SQLite's)."""
    if scope.owner_id is not None:
        return f" AND owner_id = ${first} AND account_id = ${first + 1}", (
            scope.owner_id,
            scope.account_id or "",
        )
    if scope.account_id is not None:
        return f" AND account_id = ${first}", (scope.account_id,)
    return "", ()


class PostgresDocuments(PostgresBase, DocumentStore):
    """The documents contract on PostgreSQL; needs the plumbing of ``PostgresBase``."""

    # documents
    async def insert_documents(
        self, base: Base, col: str, docs: list[StoredDoc], perm: str, queue: QueuedJobs | None = None
    ) -> None:
        schema = _schema(base.name)
        rows = [(col, d.id, d.account_id, d.owner_id, d.created, orjson.dumps(d.data).decode()) for d in docs]
        created = docs[0].created if docs else ""
        insert = f"INSERT INTO {schema}.documents (col, {_DOC_COLS}) VALUES ($1, $2, $3, $4, $5, $6)"
        jobs = job_rows(queue.jobs, queue.owner, queue.lease_until) if queue else []
        if (base.name, col) in self._known and len(rows) == 1:  # the hot path: one statement, one round trip
            if not jobs:
                await self._execute(insert, *rows[0])
            else:  # the document and its function jobs, atomic as any one statement
                await self._execute(
                    f"WITH doc AS ({insert}) {INSERT_JOBS_FROM_ARRAYS}", *rows[0], *zip(*jobs, strict=True)
                )
            return
        async with self._conn(transaction=True) as c:
            await c.execute(
                f"INSERT INTO {schema}.collections (name, perm, created) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                col,
                perm,
                created,
            )
            if rows:
                await c.executemany(insert, rows)
            if jobs:
                await c.executemany(INSERT_JOB, jobs)
        self._known.add((base.name, col))

    async def get_document(self, base: Base, col: str, doc_id: str, scope: Scope) -> StoredDoc | None:
        extra, params = _scope_sql(scope, 3)
        row = await self._fetchrow(
            f"SELECT {_DOC_COLS} FROM {_schema(base.name)}.documents WHERE col = $1 AND id = $2{extra}",
            col,
            doc_id,
            *params,
        )
        return None if row is None else _doc(row)

    async def get_documents(self, base: Base, col: str, ids: list[str], scope: Scope) -> list[StoredDoc]:
        if not ids:
            return []
        extra, params = _scope_sql(scope, 3)
        rows = await self._fetch(
            f"SELECT {_DOC_COLS} FROM {_schema(base.name)}.documents "
            f"WHERE col = $1 AND id = ANY($2::text[]){extra} ORDER BY created, id",
            col,
            list(ids),
            *params,
        )
        return [_doc(r) for r in rows]

    async def list_documents(
        self, base: Base, col: str, scope: Scope, desc: bool, limit: int, offset: int
    ) -> tuple[list[StoredDoc], int]:
        extra, params = _scope_sql(scope, 2)
        order = "DESC" if desc else "ASC"
        n = 2 + len(params)
        rows = await self._fetch(
            f"SELECT {_DOC_COLS} FROM {_schema(base.name)}.documents WHERE col = $1{extra} "
            f"ORDER BY created {order}, id {order} LIMIT ${n} OFFSET ${n + 1}",
            col,
            *params,
            _limit(limit),
            max(offset, 0),  # SQLite reads a negative OFFSET as 0; PostgreSQL refuses it
        )
        if offset == 0 and len(rows) < limit:
            total = len(rows)
        else:
            total = await self.count_documents(base, col, scope)
        return [_doc(r) for r in rows], total

    async def count_documents(self, base: Base, col: str, scope: Scope) -> int:
        extra, params = _scope_sql(scope, 2)
        row = await self._fetchrow(
            f"SELECT COUNT(*) FROM {_schema(base.name)}.documents WHERE col = $1{extra}", col, *params
        )
        assert row is not None
        return int(row[0])

    async def scan_documents(self, base: Base, col: str, scope: Scope) -> list[StoredDoc]:
        extra, params = _scope_sql(scope, 2)
        rows = await self._fetch(
            f"SELECT {_DOC_COLS} FROM {_schema(base.name)}.documents WHERE col = $1{extra} ORDER BY created, id",
            col,
            *params,
        )
        return [_doc(r) for r in rows]

    @staticmethod
    async def _apply(
        c: asyncpg.Connection, schema: str, col: str, docs: list[StoredDoc], mutate: Mutation
    ) -> list[StoredDoc]:
        """Mutate locked documents and write the changed ones; the caller holds the transaction."""
        changed = []
        for doc in docs:
            new = mutate(doc)
            if new is None:
                continue
            await c.execute(
                f"UPDATE {schema}.documents SET data = $1 WHERE col = $2 AND id = $3",
                orjson.dumps(new).decode(),
                col,
                doc.id,
            )
            doc.data = new
            changed.append(doc)
        return changed

    async def update_document(
        self, base: Base, col: str, doc_id: str, scope: Scope, mutate: Mutation
    ) -> StoredDoc | None:
        schema = _schema(base.name)
        extra, params = _scope_sql(scope, 3)
        async with self._conn(transaction=True) as c:
            # FOR UPDATE: a concurrent writer waits here, then reads the row this one wrote.
            row = await c.fetchrow(
                f"SELECT {_DOC_COLS} FROM {schema}.documents WHERE col = $1 AND id = $2{extra} FOR UPDATE",
                col,
                doc_id,
                *params,
            )
            if row is None:
                return None
            doc = _doc(row)
            await self._apply(c, schema, col, [doc], mutate)
            return doc

    async def _locked_scope(self, c: asyncpg.Connection, schema: str, col: str, scope: Scope) -> list[StoredDoc]:
        """Every document of the scope, in creation order, locked until the transaction ends."""
        extra, params = _scope_sql(scope, 2)
        rows = await c.fetch(
            f"SELECT {_DOC_COLS} FROM {schema}.documents WHERE col = $1{extra} ORDER BY created, id FOR UPDATE",
            col,
            *params,
        )
        return [_doc(r) for r in rows]

    async def update_documents(
        self, base: Base, col: str, scope: Scope, match: Predicate, mutate: Mutation
    ) -> list[StoredDoc]:
        schema = _schema(base.name)
        async with self._conn(transaction=True) as c:
            docs = [d for d in await self._locked_scope(c, schema, col, scope) if match(d.data)]
            return await self._apply(c, schema, col, docs, mutate)

    async def delete_document(self, base: Base, col: str, doc_id: str, scope: Scope) -> StoredDoc | None:
        schema = _schema(base.name)
        extra, params = _scope_sql(scope, 3)
        async with self._conn(transaction=True) as c:
            row = await c.fetchrow(
                f"DELETE FROM {schema}.documents WHERE col = $1 AND id = $2{extra} RETURNING {_DOC_COLS}",
                col,
                doc_id,
                *params,
            )
            if row is None:
                return None
            await c.execute(f"DELETE FROM {schema}.fts WHERE col = $1 AND doc_id = $2", col, doc_id)
            return _doc(row)

    async def delete_documents(self, base: Base, col: str, scope: Scope, match: Predicate) -> list[StoredDoc]:
        schema = _schema(base.name)
        async with self._conn(transaction=True) as c:
            docs = [d for d in await self._locked_scope(c, schema, col, scope) if match(d.data)]
            if docs:
                ids = [d.id for d in docs]
                await c.execute(f"DELETE FROM {schema}.documents WHERE col = $1 AND id = ANY($2::text[])", col, ids)
                await c.execute(f"DELETE FROM {schema}.fts WHERE col = $1 AND doc_id = ANY($2::text[])", col, ids)
            return docs

    async def collections(self, base: Base) -> dict[str, str]:
        rows = await self._fetch(f"SELECT name, perm FROM {_schema(base.name)}.collections ORDER BY name")
        return {name: perm for name, perm in rows}

    async def create_index(self, base: Base, col: str, field: str) -> None:
        # Filters are evaluated in Python over the scope's rows, so an expression index would not
        # be used; the request is recorded so that it is idempotent and visible (as in SQLite).
        await self._execute(
            f"INSERT INTO {_schema(base.name)}.doc_indexes (col, field) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            col,
            field,
        )
