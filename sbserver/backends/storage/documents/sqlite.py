"""Documents in SQLite: one table for every base and collection.

Filters, field sorts and filtered counts are compiled to SQL (``filters.py``) and read on a
reader thread; the base and collection are written into those statements as literals, so the
partial indexes of ``create_index`` (which name them in their WHERE) can serve them.
"""

from __future__ import annotations

import sqlite3
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from typing import Any

import orjson

from sbserver.backends.storage.documents.base import BATCH, DocumentStore, Mutation
from sbserver.backends.storage.documents.filters import (
    SQLiteCompiler,
    index_name,
    literal,
    nul_free_json,
    sqlite_index_statements,
)
from sbserver.backends.storage.functions.base import job_rows
from sbserver.backends.storage.functions.sqlite import INSERT_JOB
from sbserver.backends.storage.sqlite_base import SQLiteBase
from sbserver.clauses import CREATED, FIELD, Clause, Sort
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


def _scope_sql(scope: Scope) -> tuple[str, tuple[str, ...]]:
    """Extra WHERE terms for a scope; values as parameters."""
    if scope.owner_id is not None:
        return " AND owner_id = ? AND account_id = ?", (scope.owner_id, scope.account_id or "")
    if scope.account_id is not None:
        return " AND account_id = ?", (scope.account_id,)
    return "", ()


def _scope_kind(scope: Scope) -> str:
    """Which of a field's indexes serves a scope: owner, account or every row (``SCOPES``)."""
    return "o" if scope.owner_id is not None else "a" if scope.account_id is not None else "r"


def _frame(base: Base, col: str, scope: Scope) -> tuple[str, list[Any]]:
    """The base, collection (as literals, so partial indexes apply) and scope terms of a WHERE,
    the scope's parameters numbered (?1, ?2) so that sub-selects can name them again."""
    frame = f"base = {literal(base.name)} AND col = {literal(col)}"
    if scope.owner_id is not None:
        return frame + " AND owner_id = ?1 AND account_id = ?2", [scope.owner_id, scope.account_id or ""]
    if scope.account_id is not None:
        return frame + " AND account_id = ?1", [scope.account_id]
    return frame, []


def _where(
    base: Base, col: str, scope: Scope, clauses: list[Clause], indexed: frozenset[str] = frozenset()
) -> tuple[str, list[Any], bool]:
    """The WHERE of a filtered read (base and collection as literals, so partial indexes
    apply), its parameters, and whether an index serves a clause. The scope's parameters are
    numbered (?1, ?2) so that sub-selects can name them again."""
    frame, params = _frame(base, col, scope)
    kind = _scope_kind(scope)
    indexes = {field: index_name(base.name, col, field, kind) for field in indexed}
    compiler = SQLiteCompiler()
    where = frame + compiler.where_indexed(clauses, indexes, frame)
    return where, [*params, *compiler.params], compiler.served


# With a clause read through an index (``rowid IN`` its matches), the rows are looked up by rowid:
# left to itself SQLite walks the whole scope's index and tests each rowid against the list.
_SERVED = " NOT INDEXED"


def _page_sql(
    base: Base, col: str, scope: Scope, clauses: list[Clause], sort: Sort, indexed: frozenset[str]
) -> tuple[str, list[Any]]:
    """A page of the matching documents and its parameters, LIMIT and OFFSET to follow."""
    where, params, served = _where(base, col, scope, clauses, indexed)
    order = SQLiteCompiler().order_by(sort)
    hint = _SERVED if served else ""
    field = ".".join(sort.path)
    if sort.kind == FIELD and field in indexed and not served:
        # Walk the field's index in order (without statistics SQLite would rather sort the
        # scope); an index serving a filter clause is left to the planner instead.
        hint = f' INDEXED BY "{index_name(base.name, col, field, _scope_kind(scope))}"'
    return f"SELECT {_DOC_COLS} FROM documents{hint} WHERE {where} ORDER BY {order} LIMIT ? OFFSET ?", params


def _batches(
    c: sqlite3.Connection, base: Base, col: str, scope: Scope, clauses: list[Clause], indexed: frozenset[str]
) -> Iterator[list[StoredDoc]]:
    """The matching documents, ``BATCH`` at a time in creation order, on the writer inside its
    transaction (each batch starts after the last one read, so writes between batches are safe)."""
    where, params, served = _where(base, col, scope, clauses, indexed)
    hint = _SERVED if served else ""
    sql = (
        f"SELECT {_DOC_COLS} FROM documents{hint} WHERE {where} AND (created, id) > (?, ?) "
        f"ORDER BY created, id LIMIT {BATCH}"
    )
    last = ("", "")
    while True:
        rows = c.execute(sql, (*params, *last)).fetchall()
        if rows:
            yield [_doc(r) for r in rows]
        if len(rows) < BATCH:
            return
        last = (rows[-1][3], rows[-1][0])


def run_key(base: str, col: str, perm: str, doc: StoredDoc) -> tuple[str, str, str]:
    """Whose documents a new document's run keeps together (``Rowids``): those that its
    collection's readers read through one scope (the digits as ``services/permissions.py``
    reads them): the whole collection, in time order, when everyone reads it; else the
    account's documents when the account reads them; else the owner's."""
    if col.startswith("pub_") or len(perm) != 3 or not perm.isdigit() or int(perm[2]) & 4:
        return base, col, ""
    if int(perm[1]) & 4:
        return base, col, "a:" + doc.account_id
    return base, col, "o:" + doc.owner_id


class Rowids:
    """The rowids of new documents, chosen to keep together the documents that one reader's
    scan reads: each key of ``run_key`` takes runs of ``RUN`` consecutive rowids, aligned, above
    every row's and every run handed out before. Users who write at the same time would
    otherwise interleave their rows, and a scan of one user's documents (a filter no index
    serves) would read a page of the table for nearly every document.

    Used on the writer only, inside its transactions. A slot already taken (by another
    process's transaction, or after a rolled-back one of this process's, whose run another may
    then have taken) is never written over: the run is dropped and a new one taken."""

    RUN = 64
    KEEP = 20_000  # runs remembered (the least recently used is forgotten: a new run next time)

    def __init__(self) -> None:
        self.runs: OrderedDict[tuple[str, str, str], list[int]] = OrderedDict()
        self.high = 0  # the end of the last run handed out

    def take(self, c: sqlite3.Connection, key: tuple[str, str, str]) -> int:
        run = self.runs.get(key) or [0, 0]
        free = run[0] < run[1]
        if free and c.execute("SELECT 1 FROM documents WHERE rowid = ?", (run[0],)).fetchone() is None:
            self.runs.move_to_end(key)
            run[0] += 1
            return run[0] - 1
        top = c.execute("SELECT max(rowid) FROM documents").fetchone()[0] or 0
        start = -(-max(top + 1, self.high) // self.RUN) * self.RUN  # rounded up to a multiple of RUN
        self.high = start + self.RUN
        self.runs[key] = [start + 1, self.high]
        self.runs.move_to_end(key)
        while len(self.runs) > self.KEEP:
            self.runs.popitem(last=False)
        return start


class SQLiteDocuments(SQLiteBase, DocumentStore):
    """The documents contract on SQLite; needs the plumbing of ``SQLiteBase``."""

    # documents
    async def insert_documents(
        self, base: Base, col: str, docs: list[StoredDoc], perm: str, queue: QueuedJobs | None = None
    ) -> None:
        rows = []
        for d in docs:
            text = orjson.dumps(d.data).decode()
            rows.append([base.name, col, d.id, d.account_id, d.owner_id, d.created, text, nul_free_json(text, d.data)])
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
            for row, d in zip(rows, docs, strict=True):
                row.append(self._rowids.take(c, run_key(base.name, col, perm, d)))
            c.executemany(
                "INSERT INTO documents (base, col, id, account_id, owner_id, created, data, safe, rowid) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
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

    async def query_documents(
        self, base: Base, col: str, scope: Scope, clauses: list[Clause], sort: Sort, limit: int, offset: int
    ) -> tuple[list[StoredDoc], int]:
        if not clauses and sort.kind == CREATED:  # an index walk: stays on the loop
            return await self.list_documents(base, col, scope, sort.desc, limit, offset)
        indexed = self._indexed_fields(base, col)
        if len(clauses) == 1 and sort.kind == CREATED and clauses[0].field in indexed:
            found = await self._through_index(base, col, scope, clauses[0], sort.desc, limit, offset)
            if found is not None:
                return found
        # The page, then (unless the page holds every match) a count. One pass giving both
        # (a window's count over the page query) keeps every match in a temporary table and, in
        # descending order, walks the index backwards for all of them, where the page stops
        # after its last document: 1.6 ms against 0.3 + 1.0 ms for a user's 20 newest of 100
        # matches among 2,500 (bench/README.md).
        sql, params = _page_sql(base, col, scope, clauses, sort, indexed)
        rows = await self._all_off(sql, (*params, limit, offset))
        if offset <= 0 and (limit < 0 or len(rows) < limit):
            return [_doc(r) for r in rows], len(rows)
        return [_doc(r) for r in rows], await self.count_documents(base, col, scope, clauses)

    async def _through_index(
        self, base: Base, col: str, scope: Scope, clause: Clause, desc: bool, limit: int, offset: int
    ) -> tuple[list[StoredDoc], int] | None:
        """A filter of one clause on an indexed field, in creation order, from the index alone:
        each branch of the clause is a range of the index whose entries are in creation order,
        so the page is the first entries of each branch merged and the total their count; only
        the page's documents are read. None when the clause is not one an index serves."""
        compiler = SQLiteCompiler()
        branches = compiler.branches(clause)
        # Each branch's parameters: its ``?`` in order (names and paths in it hold none).
        counts = [b.count("?") for b in branches or []]
        if not branches or limit < 0 or sum(counts) != len(compiler.params):
            return None
        frame, frame_params = _frame(base, col, scope)
        name = index_name(base.name, col, clause.field, _scope_kind(scope))
        order = "created DESC, id DESC" if desc else "created, id"
        want = limit + max(offset, 0)
        total = 0
        keys: list[tuple[str, str, int]] = []
        start = 0
        for branch, n in zip(branches, counts, strict=True):
            params = [*frame_params, *compiler.params[start : start + n]]
            start += n
            where = f'FROM documents INDEXED BY "{name}" WHERE {frame} AND {branch}'
            total += int((await self._one_off(f"SELECT count(*) {where}", params))[0])
            keys += await self._all_off(f"SELECT created, id, rowid {where} ORDER BY {order} LIMIT ?", (*params, want))
        keys.sort(reverse=desc)
        page = [k[2] for k in keys[max(offset, 0) : want]]
        if not page:
            return [], total
        rows = self._all(f"SELECT rowid, {_DOC_COLS} FROM documents WHERE rowid IN ({','.join('?' * len(page))})", page)
        by_rowid = {r[0]: _doc(r[1:]) for r in rows}
        return [by_rowid[r] for r in page if r in by_rowid], total

    async def count_documents(self, base: Base, col: str, scope: Scope, clauses: list[Clause] | None = None) -> int:
        where, params, served = _where(base, col, scope, clauses or [], self._indexed_fields(base, col))
        sql = f"SELECT COUNT(*) FROM documents{_SERVED if served else ''} WHERE {where}"
        row = await self._one_off(sql, params)
        return int(row[0])

    async def explain_query(
        self, base: Base, col: str, scope: Scope, clauses: list[Clause], sort: Sort, count: bool = False
    ) -> str:
        indexed = self._indexed_fields(base, col)
        if count:
            where, params, served = _where(base, col, scope, clauses, indexed)
            sql = f"SELECT COUNT(*) FROM documents{_SERVED if served else ''} WHERE {where}"
            rows = await self._all_off(f"EXPLAIN QUERY PLAN {sql}", params)
        else:
            sql, params = _page_sql(base, col, scope, clauses, sort, indexed)
            rows = await self._all_off(f"EXPLAIN QUERY PLAN {sql}", (*params, 20, 0))
        return "\n".join(str(r[-1]) for r in rows)

    @staticmethod
    def _apply(c: sqlite3.Connection, base: Base, col: str, docs: list[StoredDoc], mutate: Mutation) -> list[StoredDoc]:
        changed = []
        for doc in docs:
            new = mutate(doc)
            if new is None:
                continue
            text = orjson.dumps(new).decode()
            c.execute(
                "UPDATE documents SET data = ?, safe = ? WHERE base = ? AND col = ? AND id = ?",
                (text, nul_free_json(text, new), base.name, col, doc.id),
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
        self, base: Base, col: str, scope: Scope, clauses: list[Clause], mutate: Mutation
    ) -> list[StoredDoc]:
        indexed = self._indexed_fields(base, col)

        def tx(c: sqlite3.Connection) -> list[StoredDoc]:
            changed = []
            for docs in _batches(c, base, col, scope, clauses, indexed):
                changed += self._apply(c, base, col, docs, mutate)
            return changed

        return await self._write(tx)

    async def delete_document(self, base: Base, col: str, doc_id: str, scope: Scope) -> StoredDoc | None:
        def tx(c: sqlite3.Connection) -> StoredDoc | None:
            doc = _find(c, base, col, doc_id, scope)
            if doc is not None:
                c.execute("DELETE FROM documents WHERE base = ? AND col = ? AND id = ?", (base.name, col, doc_id))
                c.execute("DELETE FROM fts WHERE base = ? AND col = ? AND doc_id = ?", (base.name, col, doc_id))
            return doc

        return await self._write(tx)

    async def delete_documents(self, base: Base, col: str, scope: Scope, clauses: list[Clause]) -> list[StoredDoc]:
        indexed = self._indexed_fields(base, col)

        def tx(c: sqlite3.Connection) -> list[StoredDoc]:
            deleted = []
            for docs in _batches(c, base, col, scope, clauses, indexed):
                ids = [d.id for d in docs]
                marks = ",".join("?" * len(ids))
                c.execute(
                    f"DELETE FROM documents WHERE base = ? AND col = ? AND id IN ({marks})", (base.name, col, *ids)
                )
                c.execute(f"DELETE FROM fts WHERE base = ? AND col = ? AND doc_id IN ({marks})", (base.name, col, *ids))
                deleted += docs
            return deleted

        return await self._write(tx)

    async def collections(self, base: Base) -> dict[str, str]:
        rows = self._all("SELECT name, perm FROM collections WHERE base = ? ORDER BY name", (base.name,))
        return {name: perm for name, perm in rows}

    def _indexed_fields(self, base: Base, col: str) -> frozenset[str]:
        """The indexed fields of a collection (read once, then kept: only this process adds any)."""
        key = (base.name, col)
        fields = self._indexed.get(key)
        if fields is None:
            rows = self._all("SELECT field FROM doc_indexes WHERE base = ? AND col = ?", key)
            fields = self._indexed[key] = frozenset(r[0] for r in rows)
        return fields

    async def create_index(self, base: Base, col: str, field: str) -> None:
        statements = sqlite_index_statements(base.name, col, field)

        def tx(c: sqlite3.Connection) -> None:
            for statement in statements:
                c.execute(statement)
            c.execute("INSERT OR IGNORE INTO doc_indexes (base, col, field) VALUES (?, ?, ?)", (base.name, col, field))

        await self._write(tx)
        self._indexed[(base.name, col)] = self._indexed_fields(base, col) | {field}

    async def indexes(self, base: Base, col: str) -> list[str]:
        return sorted(self._indexed_fields(base, col))
