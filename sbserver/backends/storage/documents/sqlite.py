"""Documents in SQLite: one table for every base and collection."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import orjson

from sbserver.backends.storage.documents.base import DocumentStore, Mutation, Predicate
from sbserver.backends.storage.functions.base import job_rows
from sbserver.backends.storage.functions.sqlite import INSERT_JOB
from sbserver.backends.storage.sqlite_base import SQLiteBase
from sbserver.types import Base, QueuedJobs, Scope, StoredDoc

_DOC_COLS = "id, account_id, owner_id, created, data"


def _doc(row: Sequence[Any]) -> StoredDoc:
    return StoredDoc(row[0], row[1], row[2], row[3], orjson.loads(row[4]))


def _find(c: sqlite3.Connection, base: Base, col: str, doc_id: str, scope: Scope) -> StoredDoc | None:
    """One document of the scope, on whichever connection (reader, or the writer inside a tx)."""
    extra, params = _scope_sql(scope)
    row = c.execute(
        f"SELECT {_DOC_COLS} FROM documents WHERE base = ? AND col = ? AND id = ?{extra}",
        (base.name, col, doc_id, *params),
    ).fetchone()
    return None if row is None else _doc(row)


def _scan(c: sqlite3.Connection, base: Base, col: str, scope: Scope) -> list[StoredDoc]:
    """Every document of the scope in creation order."""
    extra, params = _scope_sql(scope)
    rows = c.execute(
        f"SELECT {_DOC_COLS} FROM documents WHERE base = ? AND col = ?{extra} ORDER BY created, id",
        (base.name, col, *params),
    ).fetchall()
    return [_doc(r) for r in rows]


def _scope_sql(scope: Scope) -> tuple[str, tuple[str, ...]]:
    """Extra WHERE terms for a scope; values as parameters."""
    if scope.owner_id is not None:
        return " AND owner_id = ? AND account_id = ?", (scope.owner_id, scope.account_id or "")
    if scope.account_id is not None:
        return " AND account_id = ?", (scope.account_id,)
    return "", ()


class SQLiteDocuments(SQLiteBase, DocumentStore):
    """The documents contract on SQLite; needs the plumbing of ``SQLiteBase``."""

    # documents
    async def insert_documents(
        self, base: Base, col: str, docs: list[StoredDoc], perm: str, queue: QueuedJobs | None = None
    ) -> None:
        rows = [
            (base.name, col, d.id, d.account_id, d.owner_id, d.created, orjson.dumps(d.data).decode()) for d in docs
        ]
        jobs = job_rows(queue.jobs, queue.owner, queue.lease_until) if queue else []
        created = docs[0].created if docs else ""
        key = (base.name, col)
        known = key in self._collections  # collections are never dropped: once seen, it exists

        def tx(c: sqlite3.Connection) -> None:
            if not known:
                c.execute(
                    "INSERT OR IGNORE INTO collections (base, name, perm, created) VALUES (?, ?, ?, ?)",
                    (base.name, col, perm, created),
                )
            c.executemany(
                "INSERT INTO documents (base, col, id, account_id, owner_id, created, data) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            if jobs:
                c.executemany(INSERT_JOB, jobs)

        await self._write(tx)
        self._collections.add(key)

    async def get_document(self, base: Base, col: str, doc_id: str, scope: Scope) -> StoredDoc | None:
        extra, params = _scope_sql(scope)
        row = self._one(
            f"SELECT {_DOC_COLS} FROM documents WHERE base = ? AND col = ? AND id = ?{extra}",
            (base.name, col, doc_id, *params),
        )
        return None if row is None else _doc(row)

    async def get_documents(self, base: Base, col: str, ids: list[str], scope: Scope) -> list[StoredDoc]:
        if not ids:
            return []
        extra, params = _scope_sql(scope)
        marks = ",".join("?" * len(ids))
        rows = self._all(
            f"SELECT {_DOC_COLS} FROM documents WHERE base = ? AND col = ? AND id IN ({marks}){extra} "
            "ORDER BY created, id",
            (base.name, col, *ids, *params),
        )
        return [_doc(r) for r in rows]

    async def list_documents(
        self, base: Base, col: str, scope: Scope, desc: bool, limit: int, offset: int
    ) -> tuple[list[StoredDoc], int]:
        extra, params = _scope_sql(scope)
        order = "DESC" if desc else "ASC"
        rows = self._all(
            f"SELECT {_DOC_COLS} FROM documents WHERE base = ? AND col = ?{extra} "
            f"ORDER BY created {order}, id {order} LIMIT ? OFFSET ?",
            (base.name, col, *params, limit, offset),
        )
        if offset == 0 and len(rows) < limit:
            total = len(rows)
        else:
            total = await self.count_documents(base, col, scope)
        return [_doc(r) for r in rows], total

    async def count_documents(self, base: Base, col: str, scope: Scope) -> int:
        extra, params = _scope_sql(scope)
        row = self._one(f"SELECT COUNT(*) FROM documents WHERE base = ? AND col = ?{extra}", (base.name, col, *params))
        return int(row[0])

    async def scan_documents(self, base: Base, col: str, scope: Scope) -> list[StoredDoc]:
        extra, params = _scope_sql(scope)
        rows = self._all(
            f"SELECT {_DOC_COLS} FROM documents WHERE base = ? AND col = ?{extra} ORDER BY created, id",
            (base.name, col, *params),
        )
        return [_doc(r) for r in rows]

    @staticmethod
    def _apply(c: sqlite3.Connection, base: Base, col: str, docs: list[StoredDoc], mutate: Mutation) -> list[StoredDoc]:
        changed = []
        for doc in docs:
            new = mutate(doc)
            if new is None:
                continue
            c.execute(
                "UPDATE documents SET data = ? WHERE base = ? AND col = ? AND id = ?",
                (orjson.dumps(new).decode(), base.name, col, doc.id),
            )
            doc.data = new
            changed.append(doc)
        return changed

    async def update_document(
        self, base: Base, col: str, doc_id: str, scope: Scope, mutate: Mutation
    ) -> StoredDoc | None:
        def tx(c: sqlite3.Connection) -> StoredDoc | None:
            doc = _find(c, base, col, doc_id, scope)
            if doc is not None:
                self._apply(c, base, col, [doc], mutate)
            return doc

        return await self._write(tx)

    async def update_documents(
        self, base: Base, col: str, scope: Scope, match: Predicate, mutate: Mutation
    ) -> list[StoredDoc]:
        def tx(c: sqlite3.Connection) -> list[StoredDoc]:
            docs = [d for d in _scan(c, base, col, scope) if match(d.data)]
            return self._apply(c, base, col, docs, mutate)

        return await self._write(tx)

    async def delete_document(self, base: Base, col: str, doc_id: str, scope: Scope) -> StoredDoc | None:
        def tx(c: sqlite3.Connection) -> StoredDoc | None:
            doc = _find(c, base, col, doc_id, scope)
            if doc is not None:
                c.execute("DELETE FROM documents WHERE base = ? AND col = ? AND id = ?", (base.name, col, doc_id))
                c.execute("DELETE FROM fts WHERE base = ? AND col = ? AND doc_id = ?", (base.name, col, doc_id))
            return doc

        return await self._write(tx)

    async def delete_documents(self, base: Base, col: str, scope: Scope, match: Predicate) -> list[StoredDoc]:
        def tx(c: sqlite3.Connection) -> list[StoredDoc]:
            docs = [d for d in _scan(c, base, col, scope) if match(d.data)]
            ids = [d.id for d in docs]
            for i in range(0, len(ids), 500):
                chunk = ids[i : i + 500]
                marks = ",".join("?" * len(chunk))
                c.execute(
                    f"DELETE FROM documents WHERE base = ? AND col = ? AND id IN ({marks})",
                    (base.name, col, *chunk),
                )
                c.execute(
                    f"DELETE FROM fts WHERE base = ? AND col = ? AND doc_id IN ({marks})",
                    (base.name, col, *chunk),
                )
            return docs

        return await self._write(tx)

    async def collections(self, base: Base) -> dict[str, str]:
        rows = self._all("SELECT name, perm FROM collections WHERE base = ? ORDER BY name", (base.name,))
        return {name: perm for name, perm in rows}

    async def create_index(self, base: Base, col: str, field: str) -> None:
        # Filters are evaluated in Python over the scope's rows, so an expression index would not
        # be used; the request is recorded so that it is idempotent and visible.
        await self._write(
            lambda c: c.execute(
                "INSERT OR IGNORE INTO doc_indexes (base, col, field) VALUES (?, ?, ?)",
                (base.name, col, field),
            )
        )
