"""Documents in PostgreSQL: one table per base schema, every collection in it.

Filters, field sorts and counts are compiled to SQL (``filters.py``) over the generated ``jsonb``
column ``j``; the collection is written into those statements as a literal, so the partial
indexes of ``create_index`` (which name it in their WHERE) can serve them under any plan.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import orjson

from sbserver.backends.storage.documents.base import BATCH, DocumentStore, Mutation
from sbserver.backends.storage.documents.filters import (
    PostgresCompiler,
    index_name,
    literal,
    pg_index_statements,
    pg_statistics_statement,
)
from sbserver.backends.storage.functions.base import job_rows
from sbserver.backends.storage.functions.postgresql import INSERT_JOB, INSERT_JOBS_FROM_ARRAYS
from sbserver.backends.storage.postgresql_base import PostgresBase, _limit, _schema
from sbserver.clauses import CREATED, Clause, Sort
from sbserver.errors import Conflict
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


def _where(
    base: Base, col: str, scope: Scope, clauses: list[Clause], indexed: frozenset[str] = frozenset()
) -> tuple[str, str, list[Any]]:
    """The schema, the WHERE of a filtered read (the collection as a literal) and its parameters,
    numbered from $1; ``indexed``: the collection's indexed fields."""
    extra, params = _scope_sql(scope, 1)
    compiler = PostgresCompiler(first_param=len(params) + 1, indexed=indexed)
    where = f"col = {literal(col)}{extra}{compiler.where(clauses)}"
    return _schema(base.name), where, [*params, *compiler.params]


def _page_sql(
    base: Base,
    col: str,
    scope: Scope,
    clauses: list[Clause],
    sort: Sort,
    total: bool = False,
    indexed: frozenset[str] = frozenset(),
) -> tuple[str, list[Any]]:
    """A page of the matching documents (with ``total``, each row also carries the number of
    matches) and its parameters, LIMIT and OFFSET to follow."""
    schema, where, params = _where(base, col, scope, clauses, indexed)
    order = PostgresCompiler().order_by(sort)
    n = len(params) + 1
    if not total:
        sql = f"SELECT {_DOC_COLS} FROM {schema}.documents WHERE {where} ORDER BY {order} LIMIT ${n} OFFSET ${n + 1}"
        return sql, params
    return _counted_page(schema, col, f"{schema}.documents WHERE {where}", order, n), params


def _counted_page(schema: str, col: str, matches: str, order: str, n: int) -> str:
    """The page of ``matches`` (a FROM of rows with ``created`` and ``id``), LIMIT ``$n`` and
    OFFSET ``$n+1``, each document with the number of matches. The page's ids with that number
    and their places, then the documents: the count sees every match in the same pass, but only
    the page's documents are read twice."""
    page = (
        f"SELECT id, count(*) OVER () AS total, row_number() OVER (ORDER BY {order}) AS n "
        f"FROM {matches} ORDER BY {order} LIMIT ${n} OFFSET ${n + 1}"
    )
    cols = ", ".join(f"d.{c.strip()}" for c in _DOC_COLS.split(","))
    return (
        f"WITH p AS ({page}) SELECT {cols}, p.total FROM p JOIN {schema}.documents AS d "
        f"ON d.col = {literal(col)} AND d.id = p.id ORDER BY p.n"
    )


def _branches_sql(base: Base, col: str, scope: Scope, clause: Clause, sort: Sort) -> tuple[str, list[Any]] | None:
    """For one clause on an indexed field in creation order, the page with the number of
    matches (as ``_page_sql`` with ``total``), read as a UNION ALL of the clause's branches: each
    branch is one range of the scope's index on the field, an index scan whose conditions are
    exact, where the OR of the branches would be a bitmap scan that tests every expression again
    on every matching row. (The branches are disjoint: each holds one rank.) None when no
    index serves the clause."""
    extra, params = _scope_sql(scope, 1)
    compiler = PostgresCompiler(first_param=len(params) + 1)
    branches = compiler.branches(clause)
    if not branches:
        return None
    schema, frame = _schema(base.name), f"col = {literal(col)}{extra}"
    matches = " UNION ALL ".join(f"SELECT created, id FROM {schema}.documents WHERE {frame} AND {b}" for b in branches)
    n = len(params) + len(compiler.params) + 1
    return _counted_page(schema, col, f"({matches}) AS m", compiler.order_by(sort), n), [*params, *compiler.params]


def _filtered_sql(
    base: Base, col: str, scope: Scope, clauses: list[Clause], sort: Sort, indexed: frozenset[str]
) -> tuple[str, list[Any]]:
    """A page of the documents matching ``clauses`` with their number, LIMIT and OFFSET to follow."""
    if len(clauses) == 1 and sort.kind == CREATED and clauses[0].field in indexed:
        found = _branches_sql(base, col, scope, clauses[0], sort)
        if found is not None:
            return found
    return _page_sql(base, col, scope, clauses, sort, total=True, indexed=indexed)


async def analyze_fields(c: asyncpg.Connection, schema: str, fields: list[str]) -> None:
    """Statistics on the expressions of indexed fields (``pg_statistics_statement``; none
    before PostgreSQL 14), filled by an ANALYZE of the base's documents (a sample)."""
    if c.get_server_version().major >= 14:
        for field in fields:
            await c.execute(pg_statistics_statement(schema, field))
    await c.execute(f"ANALYZE {schema}.documents")


async def index_statistics(c: asyncpg.Connection, schema: str) -> None:
    """Migration: ``analyze_fields`` for the fields a base indexed before it."""
    fields = sorted({r[0] for r in await c.fetch(f"SELECT field FROM {schema}.doc_indexes")})
    if fields:
        await analyze_fields(c, schema, fields)


log = logging.getLogger("sbserver.store")


class Upkeep:
    """What autovacuum would do for document tables, for a server where it is off: after every
    ``EVERY`` documents this process inserts into a base, ``VACUUM (ANALYZE)`` its documents in
    the background. Without it the planner keeps the statistics of an empty table (field indexes
    go unused) and counting a user's documents visits every row (the visibility map stays empty).
    """

    EVERY = 10_000

    def __init__(self, execute: Callable[[str], Awaitable[str]]) -> None:
        self.execute = execute
        self.grown: dict[str, int] = {}
        self.running: dict[str, asyncio.Task[None]] = {}

    def inserted(self, base: str, n: int) -> None:
        self.grown[base] = self.grown.get(base, 0) + n
        if self.grown[base] >= self.EVERY and base not in self.running:
            self.grown[base] = 0
            self.running[base] = asyncio.get_running_loop().create_task(self._vacuum(base))

    async def _vacuum(self, base: str) -> None:
        try:
            await self.execute(f"VACUUM (ANALYZE) {_schema(base)}.documents")
        except Exception as exc:  # upkeep only: the next batch of inserts tries again
            log.warning("vacuum of %s documents failed: %s", base, exc)
        finally:
            self.running.pop(base, None)

    async def stop(self) -> None:
        for task in list(self.running.values()):
            task.cancel()
        await asyncio.gather(*self.running.values(), return_exceptions=True)


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
        if self._upkeep is not None:
            self._upkeep.inserted(base.name, len(rows))
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

    async def query_documents(
        self, base: Base, col: str, scope: Scope, clauses: list[Clause], sort: Sort, limit: int, offset: int
    ) -> tuple[list[StoredDoc], int]:
        if not clauses and sort.kind == CREATED:
            return await self.list_documents(base, col, scope, sort.desc, limit, offset)
        if not clauses:  # the page alone, then a count (an index walk, unlike the filtered one)
            sql, params = _page_sql(base, col, scope, clauses, sort)
            rows = await self._fetch(sql, *params, _limit(limit), max(offset, 0))
            if offset <= 0 and (limit < 0 or len(rows) < limit):
                return [_doc(r) for r in rows], len(rows)
            return [_doc(r) for r in rows], await self.count_documents(base, col, scope, clauses)
        # One pass over the matching rows gives the page and the total.
        sql, params = _filtered_sql(base, col, scope, clauses, sort, await self._indexed_fields(base, col))
        rows = await self._fetch(sql, *params, _limit(limit), max(offset, 0))
        if rows:
            return [_doc(r) for r in rows], int(rows[0][5])
        total = 0 if offset <= 0 else await self.count_documents(base, col, scope, clauses)
        return [], total

    async def count_documents(self, base: Base, col: str, scope: Scope, clauses: list[Clause] | None = None) -> int:
        indexed = await self._indexed_fields(base, col) if clauses else frozenset()
        schema, where, params = _where(base, col, scope, clauses or [], indexed)
        row = await self._fetchrow(f"SELECT COUNT(*) FROM {schema}.documents WHERE {where}", *params)
        assert row is not None
        return int(row[0])

    async def explain_query(
        self, base: Base, col: str, scope: Scope, clauses: list[Clause], sort: Sort, count: bool = False
    ) -> str:
        indexed = await self._indexed_fields(base, col)
        if count:
            schema, where, params = _where(base, col, scope, clauses, indexed)
            rows = await self._fetch(f"EXPLAIN SELECT COUNT(*) FROM {schema}.documents WHERE {where}", *params)
        else:
            if clauses:
                sql, params = _filtered_sql(base, col, scope, clauses, sort, indexed)
            else:
                sql, params = _page_sql(base, col, scope, clauses, sort)
            rows = await self._fetch(f"EXPLAIN {sql}", *params, 20, 0)
        return "\n".join(r[0] for r in rows)

    @staticmethod
    async def _apply(
        c: asyncpg.Connection, schema: str, col: str, docs: list[StoredDoc], mutate: Mutation
    ) -> list[StoredDoc]:
        """Mutate locked documents and write the changed ones; the caller holds the transaction."""
        changed = []
        for doc in docs:
            new = mutate(doc)
            if new is not None:
                doc.data = new
                changed.append(doc)
        if changed:
            await c.executemany(
                f"UPDATE {schema}.documents SET data = $1 WHERE col = $2 AND id = $3",
                [(orjson.dumps(d.data).decode(), col, d.id) for d in changed],
            )
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

    async def update_documents(
        self, base: Base, col: str, scope: Scope, clauses: list[Clause], mutate: Mutation
    ) -> list[StoredDoc]:
        schema, where, params = _where(base, col, scope, clauses, await self._indexed_fields(base, col))
        n = len(params) + 1
        # Batches in creation order, each locked (a concurrent writer waits, then this one reads
        # its result). A locked row that no longer matches is skipped, so a short batch does not
        # mean the end: only an empty one does.
        select = (
            f"SELECT {_DOC_COLS} FROM {schema}.documents WHERE {where} AND (created, id) > (${n}, ${n + 1}) "
            f"ORDER BY created, id LIMIT {BATCH} FOR UPDATE"
        )
        changed: list[StoredDoc] = []
        async with self._conn(transaction=True) as c:
            last = ("", "")
            while rows := await c.fetch(select, *params, *last):
                changed += await self._apply(c, schema, col, [_doc(r) for r in rows], mutate)
                last = (rows[-1][3], rows[-1][0])
        return changed

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

    async def delete_documents(self, base: Base, col: str, scope: Scope, clauses: list[Clause]) -> list[StoredDoc]:
        schema, where, params = _where(base, col, scope, clauses, await self._indexed_fields(base, col))
        delete = (
            f"DELETE FROM {schema}.documents WHERE (col, id) IN (SELECT col, id FROM {schema}.documents "
            f"WHERE {where} ORDER BY created, id LIMIT {BATCH} FOR UPDATE) RETURNING {_DOC_COLS}"
        )
        deleted: list[StoredDoc] = []
        async with self._conn(transaction=True) as c:
            while rows := await c.fetch(delete, *params):
                docs = sorted((_doc(r) for r in rows), key=lambda d: (d.created, d.id))
                ids = [d.id for d in docs]
                await c.execute(f"DELETE FROM {schema}.fts WHERE col = $1 AND doc_id = ANY($2::text[])", col, ids)
                deleted += docs
        return deleted

    async def collections(self, base: Base) -> dict[str, str]:
        rows = await self._fetch(f"SELECT name, perm FROM {_schema(base.name)}.collections ORDER BY name")
        return {name: perm for name, perm in rows}

    async def create_index(self, base: Base, col: str, field: str) -> None:
        schema = _schema(base.name)
        for scope, statement in zip("oar", pg_index_statements(schema, col, field, base.name), strict=True):
            name = index_name(base.name, col, field, scope)
            # A concurrent build that failed leaves an invalid index behind: drop it and build again.
            row = await self._fetchrow(
                "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2",
                base.name,
                name,
            )
            if row is not None and row[0]:
                continue
            if row is not None:
                await self._execute(f'DROP INDEX CONCURRENTLY IF EXISTS {schema}."{name}"')
            try:  # CONCURRENTLY: writes go on while it builds
                await self._execute(statement)
            except Conflict:
                pass  # another process built it at the same moment
        await self._execute(
            f"INSERT INTO {schema}.doc_indexes (col, field) VALUES ($1, $2) ON CONFLICT DO NOTHING", col, field
        )
        async with self._conn() as c:
            await analyze_fields(c, schema, [field])
        self._indexed.pop((base.name, col))

    async def _indexed_fields(self, base: Base, col: str) -> frozenset[str]:
        """The collection's indexed fields, kept for ``INDEXED_TTL`` seconds (another process
        may add one; until this one reads the list again, its queries only test more per row)."""
        key = (base.name, col)
        fields = self._indexed.get(key)
        if fields is None:
            fields = frozenset(await self.indexes(base, col))
            self._indexed.put(key, fields)
        return fields

    async def indexes(self, base: Base, col: str) -> list[str]:
        rows = await self._fetch(
            f"SELECT field FROM {_schema(base.name)}.doc_indexes WHERE col = $1 ORDER BY field", col
        )
        return [r[0] for r in rows]
