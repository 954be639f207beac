"""The embedded store: one SQLite file, WAL, one writer (a thread, or the event loop on one CPU),
reads on their own connection.

Layout: system tables (``tenants``, ``bases``) and per-base tables that carry a ``base`` column
holding the base name, so one file serves every app. Reads run on the event loop thread on a
dedicated connection: point lookups take tens of microseconds, less than a thread hop. Reads whose
cost depends on the data (filters, field sorts, counts) get ``INLINE_BUDGET`` there; one that
needs longer is interrupted and runs again on one of ``READERS`` threads with a connection each,
where it gives up after ``READ_TIMEOUT`` seconds.
"""

from __future__ import annotations

import asyncio
import math
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from sbserver.backends.storage.accounts.sqlite import SQLiteAccounts
from sbserver.backends.storage.base import Store
from sbserver.backends.storage.documents.sqlite import Rowids, SQLiteDocuments
from sbserver.backends.storage.files.sqlite import SQLiteFiles
from sbserver.backends.storage.forms.sqlite import SQLiteForms
from sbserver.backends.storage.functions.sqlite import SQLiteFunctions
from sbserver.backends.storage.oauth.sqlite import SQLiteOAuth
from sbserver.backends.storage.search.sqlite import SQLiteSearch, fts_query
from sbserver.backends.storage.sqlite_base import T
from sbserver.backends.storage.sqlite_writer import BatchSizes, Checkpointer, Writer, connect, one_core
from sbserver.backends.storage.tasks.sqlite import SQLiteTasks
from sbserver.errors import Conflict, StoreError

READERS = 2  # reader threads for filtered reads (SQLite releases the GIL while it steps)
READ_TIMEOUT = 30.0  # seconds a filtered read may run before it is interrupted
INLINE_BUDGET = 0.02  # seconds a data-dependent read may hold the event loop before it moves to a thread


class QueryTimeout(StoreError):
    status = 503
    internal = False  # the message is ours and says what to change


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
    # Filters read documents through SQLite's JSON functions, which end a string at U+0000: a
    # document whose JSON holds one is read from ``safe``, the same JSON with U+FFFD instead
    # (set by the store on every write; NULL for every other document).
    # Owner-scoped reads (a user's own documents: the common case) match owner and account: both
    # in the owner index, so counting a user's documents reads that index alone.
    """
    ALTER TABLE documents ADD COLUMN safe TEXT;
    UPDATE documents SET safe = replace(data, '\\u0000', '\\ufffd') WHERE instr(data, '\\u0000') > 0;
    DROP INDEX documents_owner;
    CREATE INDEX documents_owner ON documents (base, col, owner_id, account_id, created, id);
    """,
    # An app's own limits on its functions (JSON of name to value; services/functions.py)
    """
    CREATE TABLE fn_limits (base TEXT PRIMARY KEY, limits TEXT NOT NULL);
    """,
    # Uploaded files' records (upstream's sb_files); the bytes live with the file provider
    """
    CREATE TABLE files (
        base TEXT NOT NULL,
        id TEXT NOT NULL,
        account_id TEXT NOT NULL,
        name TEXT NOT NULL,
        key TEXT NOT NULL,
        url TEXT NOT NULL,
        size INTEGER NOT NULL,
        uploaded TEXT NOT NULL,
        PRIMARY KEY (base, id)
    );
    CREATE INDEX files_uploaded ON files (base, account_id, uploaded, id);
    CREATE INDEX files_size ON files (base, account_id, size, id);
    CREATE INDEX files_all ON files (base, uploaded, id);
    """,
    # Emails each app sent per calendar month (UTC, "YYYY-MM"): /sudo/sendmail and sendMail
    """
    CREATE TABLE mail_counts (
        base TEXT NOT NULL, month TEXT NOT NULL, sent INTEGER NOT NULL, PRIMARY KEY (base, month)
    );
    """,
    # OAuth sign-in providers of each app; client_secret is sealed with APP_SECRET (services/oauth.py)
    """
    CREATE TABLE oauth_providers (
        base TEXT NOT NULL,
        provider TEXT NOT NULL,
        client_id TEXT NOT NULL,
        client_secret TEXT NOT NULL,
        options TEXT NOT NULL,
        updated TEXT NOT NULL,
        PRIMARY KEY (base, provider)
    );
    """,
    # The admin's function queue page (http/ui/queue.py): a failed run of an event keeps the job's
    # payload ('' when not kept) so it can be run again; failed runs newest first (run ids are
    # time-ordered) and one app's queued jobs by state are read from their own indexes.
    """
    ALTER TABLE function_runs ADD COLUMN input TEXT NOT NULL DEFAULT '';
    CREATE INDEX function_runs_failed ON function_runs (base, id) WHERE success = 0;
    CREATE INDEX fn_jobs_by_base ON fn_jobs (base, lease_until, created);
    """,
]


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


class SQLiteStore(
    SQLiteAccounts,
    SQLiteDocuments,
    SQLiteSearch,
    SQLiteForms,
    SQLiteFiles,
    SQLiteOAuth,
    SQLiteFunctions,
    SQLiteTasks,
    Store,
):
    kind = "sqlite"

    def __init__(self, path: Path | str, writer: str = "auto") -> None:
        """``writer``: thread, inline (on the event loop) or auto (inline on a one-CPU process)."""
        self.path = Path(path)
        self.inline_writer = writer == "inline" or (writer == "auto" and one_core())
        self._collections: set[tuple[str, str]] = set()  # (base, collection) known to be recorded
        self._indexed: dict[tuple[str, str], frozenset[str]] = {}
        self._rowids = Rowids()
        self._writer: Writer | None = None
        self.write_batches = BatchSizes()  # read by /metrics
        self._read: sqlite3.Connection | None = None
        self._read_deadline = math.inf  # of the inline read under way, if it has a budget
        self._checkpointer: Checkpointer | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._local = threading.local()  # each reader thread's connection
        self._readers: list[sqlite3.Connection] = []

    # plumbing
    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = Writer(self.path, inline=self.inline_writer, sizes=self.write_batches)
        self._writer.start(asyncio.get_running_loop())
        try:
            await self._write(_migrate)
            self._read = connect(self.path)
            # Inline reads of data-dependent cost stop at their budget (then run on a thread).
            self._read.set_progress_handler(lambda: int(time.monotonic() > self._read_deadline), 10_000)
            self._pool = ThreadPoolExecutor(READERS, thread_name_prefix="sb-read")
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
        if self._pool is not None:
            await asyncio.to_thread(self._pool.shutdown)
            self._pool = None
        for conn in self._readers:
            conn.close()
        self._readers.clear()
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

    def _reader(self) -> sqlite3.Connection:
        """This reader thread's connection, opened on first use; it interrupts a statement
        that runs past its deadline."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path)
            local = self._local
            conn.set_progress_handler(lambda: int(time.monotonic() > local.deadline), 20_000)
            self._local.conn = conn
            self._readers.append(conn)
        self._local.deadline = time.monotonic() + READ_TIMEOUT
        return conn

    def _fetch_off(self, sql: str, params: Sequence[Any], one: bool) -> Any:
        cur = self._reader().execute(sql, params)
        return cur.fetchone() if one else cur.fetchall()

    def _try_inline(self, sql: str, params: Sequence[Any], one: bool) -> tuple[bool, Any]:
        """Run a read on the loop's connection within ``INLINE_BUDGET``: (True, rows), or
        (False, None) when it ran out (SQLite interrupts it; it has changed nothing)."""
        assert self._read is not None, "store is not open"
        self._read_deadline = time.monotonic() + INLINE_BUDGET
        try:
            cur = self._read.execute(sql, params)
            return True, cur.fetchone() if one else cur.fetchall()
        except sqlite3.OperationalError as exc:
            if "interrupted" in str(exc):
                return False, None
            raise StoreError(f"database error: {exc}") from exc
        except sqlite3.Error as exc:
            raise StoreError(f"database error: {exc}") from exc
        finally:
            self._read_deadline = math.inf

    async def _off(self, sql: str, params: Sequence[Any], one: bool) -> Any:
        # Most such reads are short: on the loop they cost no thread hop and no wait for the GIL
        # (which a busy loop holds for up to its switch interval). Past the budget, the read starts
        # over on a reader thread, so no read holds the loop longer than the budget.
        done, rows = self._try_inline(sql, params, one)
        if done:
            return rows
        assert self._pool is not None, "store is not open"
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, self._fetch_off, sql, params, one)
        except sqlite3.OperationalError as exc:
            if "interrupted" in str(exc):
                raise QueryTimeout(
                    f"the query ran longer than {READ_TIMEOUT:g} s: add an index or narrow the filter"
                ) from exc
            raise StoreError(f"database error: {exc}") from exc
        except sqlite3.Error as exc:
            raise StoreError(f"database error: {exc}") from exc

    async def _all_off(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        rows: list[Any] = await self._off(sql, params, one=False)
        return rows

    async def _one_off(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return await self._off(sql, params, one=True)

    async def ping(self) -> bool:
        if self._read is None:
            return False
        try:
            return self._one("SELECT 1") == (1,)
        except StoreError:
            return False


__all__ = ["MIGRATIONS", "SQLiteStore", "fts_query"]
