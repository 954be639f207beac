"""The embedded store: one SQLite file, WAL, one writer (a thread, or the event loop on one CPU),
reads on their own connection.

Layout: system tables (``tenants``, ``bases``) and per-base tables that carry a ``base`` column
holding the base name, so one file serves every app. Reads run on the event loop thread on a
dedicated connection: point lookups take tens of microseconds, less than a thread hop.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import orjson

from sbserver.backends.storage.base import Mutation, Predicate, Store, job_rows
from sbserver.backends.storage.sqlite_writer import Checkpointer, Writer, connect, one_core
from sbserver.backends.storage.text import candidates, keyword_words, words
from sbserver.errors import Conflict, StoreError
from sbserver.types import (
    Account,
    Base,
    FinishedJob,
    FunctionDef,
    FunctionRun,
    Job,
    QueuedJobs,
    Scope,
    StoredDoc,
    Task,
    TaskRun,
    Tenant,
    User,
)

T = TypeVar("T")

# Versioned migrations: index + 1 is the version. Never edit a released entry; append.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE tenants (
        id TEXT PRIMARY KEY,
        email TEXT NOT NULL UNIQUE,
        plan INTEGER NOT NULL DEFAULT 1,
        active INTEGER NOT NULL DEFAULT 1,
        created TEXT NOT NULL
    );
    CREATE TABLE bases (
        pk TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        tenant_id TEXT NOT NULL,
        whitelist TEXT NOT NULL DEFAULT 'localhost',
        active INTEGER NOT NULL DEFAULT 1,
        email_count INTEGER NOT NULL DEFAULT 0,
        created TEXT NOT NULL
    );
    CREATE INDEX bases_tenant ON bases (tenant_id, created);
    CREATE TABLE accounts (
        base TEXT NOT NULL,
        id TEXT NOT NULL,
        email TEXT NOT NULL,
        created TEXT NOT NULL,
        PRIMARY KEY (base, id)
    );
    CREATE TABLE users (
        base TEXT NOT NULL,
        id TEXT NOT NULL,
        account_id TEXT NOT NULL,
        email TEXT NOT NULL,
        password TEXT NOT NULL,
        token TEXT NOT NULL,
        role INTEGER NOT NULL,
        reset_code TEXT NOT NULL DEFAULT '',
        created TEXT NOT NULL,
        PRIMARY KEY (base, id),
        UNIQUE (base, email)
    );
    CREATE INDEX users_account ON users (base, account_id, created);
    """,
    """
    CREATE TABLE collections (
        base TEXT NOT NULL,
        name TEXT NOT NULL,
        perm TEXT NOT NULL,
        created TEXT NOT NULL,
        PRIMARY KEY (base, name)
    );
    CREATE TABLE documents (
        base TEXT NOT NULL,
        col TEXT NOT NULL,
        id TEXT NOT NULL,
        account_id TEXT NOT NULL,
        owner_id TEXT NOT NULL,
        created TEXT NOT NULL,
        data TEXT NOT NULL,
        UNIQUE (base, col, id)
    );
    CREATE INDEX documents_order ON documents (base, col, created, id);
    CREATE INDEX documents_account ON documents (base, col, account_id, created, id);
    CREATE INDEX documents_owner ON documents (base, col, owner_id, created, id);
    CREATE TABLE doc_indexes (
        base TEXT NOT NULL,
        col TEXT NOT NULL,
        field TEXT NOT NULL,
        PRIMARY KEY (base, col, field)
    );
    CREATE VIRTUAL TABLE fts USING fts5 (
        base UNINDEXED, col UNINDEXED, doc_id UNINDEXED, body, tokenize = 'unicode61 remove_diacritics 2'
    );
    CREATE TABLE fts_terms (
        base TEXT NOT NULL,
        col TEXT NOT NULL,
        term TEXT NOT NULL,
        PRIMARY KEY (base, col, term)
    ) WITHOUT ROWID;
    CREATE TABLE forms (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        base TEXT NOT NULL,
        form TEXT NOT NULL,
        data TEXT NOT NULL,
        created TEXT NOT NULL
    );
    CREATE INDEX forms_by_name ON forms (base, form, seq);
    """,
    """
    CREATE TABLE functions (
        base TEXT NOT NULL,
        id TEXT NOT NULL,
        name TEXT NOT NULL,
        trigger TEXT NOT NULL,
        code TEXT NOT NULL,
        version INTEGER NOT NULL,
        last_updated TEXT NOT NULL,
        last_run TEXT NOT NULL,
        secrets TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (base, id),
        UNIQUE (base, name)
    );
    CREATE INDEX functions_trigger ON functions (base, trigger);
    CREATE TABLE function_runs (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        base TEXT NOT NULL,
        id TEXT NOT NULL,
        function_id TEXT NOT NULL,
        version INTEGER NOT NULL,
        started TEXT NOT NULL,
        completed TEXT NOT NULL,
        success INTEGER NOT NULL,
        output TEXT NOT NULL
    );
    CREATE INDEX function_runs_by_fn ON function_runs (base, function_id, seq);
    CREATE TABLE fn_jobs (
        id TEXT PRIMARY KEY,
        base TEXT NOT NULL,
        function_id TEXT NOT NULL,
        payload TEXT NOT NULL,
        created TEXT NOT NULL,
        owner TEXT NOT NULL DEFAULT '',
        lease_until REAL NOT NULL DEFAULT 0,
        attempts INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX fn_jobs_lease ON fn_jobs (lease_until, created);
    """,
    """
    CREATE TABLE tasks (
        id TEXT PRIMARY KEY,
        base TEXT NOT NULL,
        name TEXT NOT NULL,
        type TEXT NOT NULL,
        value TEXT NOT NULL,
        meta TEXT NOT NULL,
        interval TEXT NOT NULL,
        timezone TEXT NOT NULL,
        enabled INTEGER NOT NULL,
        last TEXT NOT NULL,
        next_run REAL NOT NULL,
        anchor REAL NOT NULL,
        running_until REAL NOT NULL DEFAULT 0
    );
    CREATE INDEX tasks_by_base ON tasks (base, name);
    CREATE INDEX tasks_due ON tasks (enabled, next_run);
    CREATE TABLE task_runs (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL,
        task_id TEXT NOT NULL,
        due REAL NOT NULL,
        started TEXT NOT NULL,
        completed TEXT NOT NULL,
        outcome TEXT NOT NULL,
        error TEXT NOT NULL,
        output TEXT NOT NULL
    );
    CREATE INDEX task_runs_by_task ON task_runs (task_id, seq);
    """,
]

_USER_COLS = "id, account_id, email, token, role, created, password, reset_code"


def _user(row: Sequence[Any] | None) -> User | None:
    if row is None:
        return None
    return User(*row)


def _base(row: Sequence[Any] | None) -> Base | None:
    if row is None:
        return None
    pk, name, tenant_id, whitelist, active, created = row
    return Base(pk, name, tenant_id, tuple(whitelist.split("|")) if whitelist else (), bool(active), created)


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


_FN_COLS = "id, name, trigger, code, version, last_updated, last_run, secrets"
_RUN_COLS = "id, function_id, version, started, completed, success, output"


def _fn(row: Sequence[Any]) -> FunctionDef:
    return FunctionDef(*row)


def _run(row: Sequence[Any]) -> FunctionRun:
    return FunctionRun(row[0], row[1], row[2], row[3], row[4], bool(row[5]), orjson.loads(row[6]))


def _insert_runs(c: sqlite3.Connection, runs: list[tuple[Base, FunctionRun]], keep: int) -> None:
    """Record runs, set each function's last run and keep its newest ``keep`` runs."""
    c.executemany(
        f"INSERT INTO function_runs (base, {_RUN_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                b.name,
                r.id,
                r.function_id,
                r.version,
                r.started,
                r.completed,
                int(r.success),
                orjson.dumps(r.output).decode(),
            )
            for b, r in runs
        ],
    )
    last: dict[tuple[str, str], str] = {}
    for b, r in runs:
        key = (b.name, r.function_id)
        last[key] = max(last.get(key, ""), r.completed)
    c.executemany(
        "UPDATE functions SET last_run = ? WHERE base = ? AND id = ?", [(t, b, f) for (b, f), t in last.items()]
    )
    c.executemany(
        "DELETE FROM function_runs WHERE base = ? AND function_id = ? AND seq <= ("
        "SELECT seq FROM function_runs WHERE base = ? AND function_id = ? ORDER BY seq DESC LIMIT 1 OFFSET ?)",
        [(b, f, b, f, keep) for b, f in last],
    )


_TASK_COLS = "id, base, name, type, value, meta, interval, timezone, enabled, last, next_run, anchor, running_until"
_TASK_RUN_COLS = "id, task_id, due, started, completed, outcome, error, output"


def _task(row: Sequence[Any]) -> Task:
    return Task(*row[:8], bool(row[8]), *row[9:])  # type: ignore[call-arg,misc,unused-ignore]


def _task_run(row: Sequence[Any]) -> TaskRun:
    return TaskRun(*row[:7], orjson.loads(row[7]))  # type: ignore[call-arg,misc,unused-ignore]


def _insert_task_run(c: sqlite3.Connection, run: TaskRun, keep: int) -> None:
    c.execute(
        f"INSERT INTO task_runs ({_TASK_RUN_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            run.id,
            run.task_id,
            run.due,
            run.started,
            run.completed,
            run.outcome,
            run.error,
            orjson.dumps(run.output).decode(),
        ),
    )
    c.execute(
        "DELETE FROM task_runs WHERE task_id = ? AND seq <= ("
        "SELECT seq FROM task_runs WHERE task_id = ? ORDER BY seq DESC LIMIT 1 OFFSET ?)",
        (run.task_id, run.task_id, max(keep, 0)),
    )


def fts_query(groups: list[list[str]]) -> str:
    """An FTS5 query: every group must match; inside a group the first word as a prefix, or any
    fuzzy candidate exactly. Terms are quoted word characters only, so no FTS syntax gets through."""
    parts = []
    for group in groups:
        head, *rest = group
        alternatives = [f'"{head}"*'] + [f'"{t}"' for t in rest]
        parts.append("(" + " OR ".join(alternatives) + ")")
    return " AND ".join(parts)


def _migrate(conn: sqlite3.Connection) -> int:
    conn.execute("CREATE TABLE IF NOT EXISTS sb_migrations (version INTEGER PRIMARY KEY, applied TEXT)")
    current = conn.execute("SELECT COALESCE(MAX(version), 0) FROM sb_migrations").fetchone()[0]
    for version, script in enumerate(MIGRATIONS, start=1):
        if version <= current:
            continue
        for statement in script.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute("INSERT INTO sb_migrations VALUES (?, datetime('now'))", (version,))
    return len(MIGRATIONS)


INSERT_JOB = (
    "INSERT INTO fn_jobs (id, base, function_id, payload, created, owner, lease_until, attempts) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)


class SQLiteStore(Store):
    kind = "sqlite"

    def __init__(self, path: Path | str, writer: str = "auto") -> None:
        """``writer``: thread, inline (on the event loop) or auto (inline on a one-CPU process)."""
        self.path = Path(path)
        self.inline_writer = writer == "inline" or (writer == "auto" and one_core())
        self._collections: set[tuple[str, str]] = set()  # (base, collection) known to be recorded
        self._writer: Writer | None = None
        self._read: sqlite3.Connection | None = None
        self._checkpointer: Checkpointer | None = None

    # plumbing
    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = Writer(self.path, inline=self.inline_writer)
        self._writer.start(asyncio.get_running_loop())
        try:
            await self._write(_migrate)
            self._read = connect(self.path)
            self._checkpointer = Checkpointer(self.path)
            self._checkpointer.start()
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        if self._checkpointer is not None:
            await asyncio.to_thread(self._checkpointer.stop)
            self._checkpointer = None
        if self._writer is not None:
            if self._writer.inline:
                await self._writer.checkpoint_done()
                self._writer.stop()  # on the loop, between two batches
            else:
                await asyncio.to_thread(self._writer.stop)
            self._writer = None
        if self._read is not None:
            self._read.close()
            self._read = None

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        assert self._writer is not None, "store is not open"
        try:
            return await self._writer.submit(fn)
        except sqlite3.IntegrityError as exc:
            if "UNIQUE" in str(exc) or "PRIMARY KEY" in str(exc):
                raise Conflict("already exists") from exc
            raise StoreError(f"database error: {exc}") from exc
        except sqlite3.Error as exc:
            raise StoreError(f"database error: {exc}") from exc

    def _one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        assert self._read is not None, "store is not open"
        try:
            return self._read.execute(sql, params).fetchone()
        except sqlite3.Error as exc:
            raise StoreError(f"database error: {exc}") from exc

    def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        assert self._read is not None, "store is not open"
        try:
            return self._read.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"database error: {exc}") from exc

    async def ping(self) -> bool:
        if self._read is None:
            return False
        try:
            return self._one("SELECT 1") == (1,)
        except StoreError:
            return False

    # tenants and bases
    async def create_tenant(self, tenant: Tenant) -> None:
        await self._write(
            lambda c: c.execute(
                "INSERT INTO tenants (id, email, plan, active, created) VALUES (?, ?, ?, ?, ?)",
                (tenant.id, tenant.email, tenant.plan, int(tenant.active), tenant.created),
            )
        )

    async def tenant_by_email(self, email: str) -> Tenant | None:
        row = self._one("SELECT id, email, plan, active, created FROM tenants WHERE email = ?", (email,))
        if row is None:
            return None
        return Tenant(row[0], row[1], row[2], bool(row[3]), row[4])

    async def create_base(self, base: Base) -> None:
        await self._write(
            lambda c: c.execute(
                "INSERT INTO bases (pk, name, tenant_id, whitelist, active, created) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    base.id,
                    base.name,
                    base.tenant_id,
                    "|".join(base.whitelist),
                    int(base.active),
                    base.created,
                ),
            )
        )

    async def base_by_pk(self, pk: str) -> Base | None:
        return _base(self._one("SELECT pk, name, tenant_id, whitelist, active, created FROM bases WHERE pk = ?", (pk,)))

    async def bases_of_tenant(self, tenant_id: str) -> list[Base]:
        rows = self._all(
            "SELECT pk, name, tenant_id, whitelist, active, created FROM bases WHERE tenant_id = ? "
            "ORDER BY created, pk",
            (tenant_id,),
        )
        return [b for b in map(_base, rows) if b is not None]

    # accounts and users
    @staticmethod
    def _insert_user(c: sqlite3.Connection, base: Base, u: User) -> None:
        c.execute(
            f"INSERT INTO users (base, {_USER_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (base.name, u.id, u.account_id, u.email, u.token, u.role, u.created, u.password, u.reset_code),
        )

    async def create_account_with_user(self, base: Base, account: Account, user: User) -> None:
        def tx(c: sqlite3.Connection) -> None:
            c.execute(
                "INSERT INTO accounts (base, id, email, created) VALUES (?, ?, ?, ?)",
                (base.name, account.id, account.email, account.created),
            )
            self._insert_user(c, base, user)

        await self._write(tx)

    async def create_user(self, base: Base, user: User) -> None:
        await self._write(lambda c: self._insert_user(c, base, user))

    async def user_by_email(self, base: Base, email: str) -> User | None:
        return _user(self._one(f"SELECT {_USER_COLS} FROM users WHERE base = ? AND email = ?", (base.name, email)))

    async def user_by_id(self, base: Base, user_id: str) -> User | None:
        return _user(self._one(f"SELECT {_USER_COLS} FROM users WHERE base = ? AND id = ?", (base.name, user_id)))

    async def root_user(self, base: Base) -> User | None:
        return _user(
            self._one(
                f"SELECT {_USER_COLS} FROM users WHERE base = ? AND role >= 100 ORDER BY created, id LIMIT 1",
                (base.name,),
            )
        )

    async def users_of_account(self, base: Base, account_id: str) -> list[User]:
        rows = self._all(
            f"SELECT {_USER_COLS} FROM users WHERE base = ? AND account_id = ? ORDER BY created, id",
            (base.name, account_id),
        )
        return [User(*r) for r in rows]

    async def accounts(self, base: Base) -> list[Account]:
        rows = self._all("SELECT id, email, created FROM accounts WHERE base = ? ORDER BY created, id", (base.name,))
        return [Account(*r) for r in rows]

    async def delete_user(self, base: Base, user_id: str) -> bool:
        cur = await self._write(
            lambda c: c.execute("DELETE FROM users WHERE base = ? AND id = ?", (base.name, user_id))
        )
        return cur.rowcount > 0

    async def set_password(self, base: Base, user_id: str, password_hash: str) -> None:
        await self._write(
            lambda c: c.execute(
                "UPDATE users SET password = ? WHERE base = ? AND id = ?", (password_hash, base.name, user_id)
            )
        )

    async def set_reset_code(self, base: Base, email: str, code: str) -> bool:
        cur = await self._write(
            lambda c: c.execute(
                "UPDATE users SET reset_code = ? WHERE base = ? AND email = ?", (code, base.name, email)
            )
        )
        return cur.rowcount > 0

    async def reset_password(self, base: Base, email: str, code: str, password_hash: str) -> bool:
        if not code:
            return False
        cur = await self._write(
            lambda c: c.execute(
                "UPDATE users SET password = ?, reset_code = '' WHERE base = ? AND email = ? AND reset_code = ?",
                (password_hash, base.name, email, code),
            )
        )
        return cur.rowcount > 0

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

    # full-text search
    async def index_text(self, base: Base, col: str, doc_id: str, text: str) -> None:
        terms = [(base.name, col, t) for t in set(words(text))]

        def tx(c: sqlite3.Connection) -> None:
            c.execute("DELETE FROM fts WHERE base = ? AND col = ? AND doc_id = ?", (base.name, col, doc_id))
            c.execute("INSERT INTO fts (base, col, doc_id, body) VALUES (?, ?, ?, ?)", (base.name, col, doc_id, text))
            c.executemany("INSERT OR IGNORE INTO fts_terms (base, col, term) VALUES (?, ?, ?)", terms)

        await self._write(tx)

    async def search_text(self, base: Base, col: str, keywords: list[str], limit: int) -> list[str]:
        groups = []
        for word in keyword_words(keywords):
            vocab = [
                r[0]
                for r in self._all(
                    "SELECT term FROM fts_terms WHERE base = ? AND col = ? AND length(term) BETWEEN ? AND ?",
                    (base.name, col, len(word) - 1, len(word) + 1),
                )
            ]
            groups.append([word, *candidates(word, vocab)])
        if not groups:
            return []
        rows = self._all(
            "SELECT doc_id FROM fts WHERE fts MATCH ? AND base = ? AND col = ? ORDER BY bm25(fts) LIMIT ?",
            (f"body : ({fts_query(groups)})", base.name, col, limit),
        )
        return [r[0] for r in rows]

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

    # server-side functions
    async def create_function(self, base: Base, fn: FunctionDef) -> None:
        await self._write(
            lambda c: c.execute(
                f"INSERT INTO functions (base, {_FN_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (base.name, fn.id, fn.name, fn.trigger, fn.code, fn.version, fn.last_updated, fn.last_run, fn.secrets),
            )
        )

    async def update_function(
        self, base: Base, fn_id: str, code: str, trigger: str, secrets: str | None, updated: str
    ) -> FunctionDef | None:
        def tx(c: sqlite3.Connection) -> FunctionDef | None:
            cur = c.execute(
                "UPDATE functions SET code = ?, trigger = ?, secrets = COALESCE(?, secrets), version = version + 1, "
                "last_updated = ? WHERE base = ? AND id = ?",
                (code, trigger, secrets, updated, base.name, fn_id),
            )
            if not cur.rowcount:
                return None
            row = c.execute(
                f"SELECT {_FN_COLS} FROM functions WHERE base = ? AND id = ?", (base.name, fn_id)
            ).fetchone()
            return _fn(row)

        return await self._write(tx)

    async def delete_function(self, base: Base, name: str) -> bool:
        def tx(c: sqlite3.Connection) -> bool:
            row = c.execute("SELECT id FROM functions WHERE base = ? AND name = ?", (base.name, name)).fetchone()
            if row is None:
                return False
            c.execute("DELETE FROM functions WHERE base = ? AND id = ?", (base.name, row[0]))
            c.execute("DELETE FROM function_runs WHERE base = ? AND function_id = ?", (base.name, row[0]))
            return True

        return await self._write(tx)

    async def function_by_name(self, base: Base, name: str) -> FunctionDef | None:
        row = self._one(f"SELECT {_FN_COLS} FROM functions WHERE base = ? AND name = ?", (base.name, name))
        return None if row is None else _fn(row)

    async def functions(self, base: Base) -> list[FunctionDef]:
        return [
            _fn(r) for r in self._all(f"SELECT {_FN_COLS} FROM functions WHERE base = ? ORDER BY name", (base.name,))
        ]

    async def functions_for(self, base: Base, triggers: list[str]) -> list[FunctionDef]:
        if not triggers:
            return []
        marks = ",".join("?" * len(triggers))
        rows = self._all(
            f"SELECT {_FN_COLS} FROM functions WHERE base = ? AND trigger IN ({marks}) ORDER BY name",
            (base.name, *triggers),
        )
        return [_fn(r) for r in rows]

    async def add_run(self, base: Base, run: FunctionRun, keep: int) -> None:
        await self._write(lambda c: _insert_runs(c, [(base, run)], keep))

    async def runs(self, base: Base, fn_id: str, limit: int) -> list[FunctionRun]:
        rows = self._all(
            f"SELECT {_RUN_COLS} FROM function_runs WHERE base = ? AND function_id = ? "
            "ORDER BY started DESC, seq DESC LIMIT ?",
            (base.name, fn_id, limit),
        )
        return [_run(r) for r in reversed(rows)]

    # the durable queue of function runs
    async def enqueue_jobs(self, jobs: list[Job], owner: str, lease_until: float) -> None:
        rows = job_rows(jobs, owner, lease_until)
        await self._write(lambda c: c.executemany(INSERT_JOB, rows))

    async def claim_jobs(self, owner: str, now: float, lease_until: float, limit: int) -> list[Job]:
        def tx(c: sqlite3.Connection) -> list[Job]:
            rows = c.execute(
                "SELECT id, base, function_id, payload, created, attempts FROM fn_jobs WHERE lease_until < ? "
                "ORDER BY created, id LIMIT ?",
                (now, limit),
            ).fetchall()
            jobs = [Job(r[0], r[1], r[2], orjson.loads(r[3]), r[4], r[5] + 1) for r in rows]
            c.executemany(
                "UPDATE fn_jobs SET owner = ?, lease_until = ?, attempts = attempts + 1 WHERE id = ?",
                [(owner, lease_until, j.id) for j in jobs],
            )
            return jobs

        return await self._write(tx)

    async def extend_leases(self, owner: str, job_ids: list[str], lease_until: float) -> None:
        await self._write(
            lambda c: c.executemany(
                "UPDATE fn_jobs SET lease_until = ? WHERE id = ? AND owner = ?",
                [(lease_until, job_id, owner) for job_id in job_ids],
            )
        )

    async def finish_jobs(self, finished: list[FinishedJob], keep: int) -> None:
        runs = [(f.base, f.run) for f in finished if f.base is not None and f.run is not None]

        def tx(c: sqlite3.Connection) -> None:
            c.executemany("DELETE FROM fn_jobs WHERE id = ?", [(f.job_id,) for f in finished])
            if runs:
                _insert_runs(c, runs, keep)

        if finished:
            await self._write(tx)

    # scheduled tasks
    async def create_task(self, task: Task) -> None:
        await self._write(
            lambda c: c.execute(
                f"INSERT INTO tasks ({_TASK_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    task.id,
                    task.base,
                    task.name,
                    task.type,
                    task.value,
                    task.meta,
                    task.interval,
                    task.timezone,
                    int(task.enabled),
                    task.last,
                    task.next_run,
                    task.anchor,
                    task.running_until,
                ),
            )
        )

    async def update_task(self, task: Task) -> bool:
        cur = await self._write(
            lambda c: c.execute(
                "UPDATE tasks SET name = ?, type = ?, value = ?, meta = ?, interval = ?, timezone = ?, enabled = ?, "
                "next_run = ? WHERE id = ? AND base = ?",
                (
                    task.name,
                    task.type,
                    task.value,
                    task.meta,
                    task.interval,
                    task.timezone,
                    int(task.enabled),
                    task.next_run,
                    task.id,
                    task.base,
                ),
            )
        )
        return cur.rowcount > 0

    async def delete_task(self, base: Base, task_id: str) -> bool:
        def tx(c: sqlite3.Connection) -> bool:
            cur = c.execute("DELETE FROM tasks WHERE id = ? AND base = ?", (task_id, base.name))
            if cur.rowcount:
                c.execute("DELETE FROM task_runs WHERE task_id = ?", (task_id,))
            return cur.rowcount > 0

        return await self._write(tx)

    async def task(self, base: Base, task_id: str) -> Task | None:
        row = self._one(f"SELECT {_TASK_COLS} FROM tasks WHERE id = ? AND base = ?", (task_id, base.name))
        return None if row is None else _task(row)

    async def tasks(self, base: Base) -> list[Task]:
        return [
            _task(r)
            for r in self._all(f"SELECT {_TASK_COLS} FROM tasks WHERE base = ? ORDER BY name, id", (base.name,))
        ]

    async def due_tasks(self, now: float, limit: int) -> list[Task]:
        rows = self._all(
            f"SELECT {_TASK_COLS} FROM tasks WHERE enabled = 1 AND next_run <= ? ORDER BY next_run, id LIMIT ?",
            (now, limit),
        )
        return [_task(r) for r in rows]

    async def next_due(self) -> float | None:
        row = self._one("SELECT MIN(next_run) FROM tasks WHERE enabled = 1")
        return None if row is None or row[0] is None else float(row[0])

    async def claim_task(
        self, task_id: str, due: float, next_run: float, last: str, running_until: float, now: float
    ) -> bool:
        cur = await self._write(
            lambda c: c.execute(
                "UPDATE tasks SET next_run = ?, last = ?, running_until = ? "
                "WHERE id = ? AND next_run = ? AND enabled = 1 AND running_until <= ?",
                (next_run, last, running_until, task_id, due, now),
            )
        )
        return cur.rowcount > 0

    async def skip_task(self, task_id: str, due: float, next_run: float, run: TaskRun, keep: int) -> bool:
        def tx(c: sqlite3.Connection) -> bool:
            cur = c.execute(
                "UPDATE tasks SET next_run = ? WHERE id = ? AND next_run = ? AND enabled = 1", (next_run, task_id, due)
            )
            if cur.rowcount:
                _insert_task_run(c, run, keep)
            return cur.rowcount > 0

        return await self._write(tx)

    async def finish_task(self, task_id: str, run: TaskRun, keep: int) -> None:
        def tx(c: sqlite3.Connection) -> None:
            c.execute("UPDATE tasks SET running_until = 0 WHERE id = ?", (task_id,))
            if c.execute("SELECT 1 FROM tasks WHERE id = ?", (task_id,)).fetchone():
                _insert_task_run(c, run, keep)

        await self._write(tx)

    async def task_runs(self, task_id: str, limit: int) -> list[TaskRun]:
        rows = self._all(
            f"SELECT {_TASK_RUN_COLS} FROM task_runs WHERE task_id = ? ORDER BY seq DESC LIMIT ?", (task_id, limit)
        )
        return [_task_run(r) for r in reversed(rows)]
