"""The PostgreSQL store: an asyncpg pool, a system schema ``sb``, and one schema per base.

Layout: ``sb.migrations``, ``sb.tenants`` and ``sb.bases`` hold the installation; every base gets
a schema named after the base (``"<name>".accounts``, ``"<name>".users``, ``"<name>".migrations``),
as upstream StaticBackend does. Timestamps are stored as the text the caller gave, so values read
back are identical to the SQLite store's. SQL values always travel as parameters; identifiers
(base names) only through ``_schema``, which validates and quotes them.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from sbserver.backends.storage.accounts.postgresql import PostgresAccounts
from sbserver.backends.storage.base import Store
from sbserver.backends.storage.documents.postgresql import PostgresDocuments, Upkeep, index_statistics
from sbserver.backends.storage.files.postgresql import PostgresFiles
from sbserver.backends.storage.forms.postgresql import PostgresForms
from sbserver.backends.storage.functions.postgresql import PostgresFunctions
from sbserver.backends.storage.oauth.postgresql import PostgresOAuth
from sbserver.backends.storage.postgresql_base import MIGRATION_LOCK, _schema
from sbserver.backends.storage.search.postgresql import PostgresSearch, ts_query
from sbserver.backends.storage.tasks.postgresql import PostgresTasks
from sbserver.errors import BadRequest, Conflict, StoreError
from sbserver.lru import ExpiringLRU

Migration = str | Callable[[asyncpg.Connection, str], Awaitable[None]]

# Versioned migrations: index + 1 is the version. Never edit a released entry; append.
# Text columns that are sorted on use COLLATE "C" so ordering is bytewise, like SQLite's.
SYSTEM_MIGRATIONS: list[str] = [
    """
    CREATE TABLE sb.tenants (
        id TEXT PRIMARY KEY,
        email TEXT NOT NULL UNIQUE,
        plan INTEGER NOT NULL DEFAULT 1,
        active BOOLEAN NOT NULL DEFAULT TRUE,
        created TEXT COLLATE "C" NOT NULL
    );
    CREATE TABLE sb.bases (
        pk TEXT COLLATE "C" PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        tenant_id TEXT NOT NULL,
        whitelist TEXT[] NOT NULL DEFAULT ARRAY['localhost'],
        active BOOLEAN NOT NULL DEFAULT TRUE,
        email_count INTEGER NOT NULL DEFAULT 0,
        created TEXT COLLATE "C" NOT NULL
    );
    CREATE INDEX bases_tenant ON sb.bases (tenant_id, created);
    """,
    # The durable queue of function runs, shared by every process of the installation: a job is
    # claimed by one owner until its lease expires (``lease_until``, Unix seconds).
    """
    CREATE TABLE sb.fn_jobs (
        id TEXT COLLATE "C" PRIMARY KEY,
        base TEXT NOT NULL,
        function_id TEXT NOT NULL,
        payload TEXT NOT NULL,
        created TEXT COLLATE "C" NOT NULL,
        owner TEXT NOT NULL DEFAULT '',
        lease_until DOUBLE PRECISION NOT NULL DEFAULT 0,
        attempts INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX fn_jobs_lease ON sb.fn_jobs (lease_until, created);
    """,
    # Scheduled tasks of every base and their run history, shared by every process: a tick is
    # taken by a compare-and-set on ``next_run``; ``running_until`` (Unix seconds) is the hold
    # of the run in progress. ``output`` is orjson text, as function runs' output.
    """
    CREATE TABLE sb.tasks (
        id TEXT COLLATE "C" PRIMARY KEY,
        base TEXT COLLATE "C" NOT NULL,
        name TEXT COLLATE "C" NOT NULL,
        type TEXT NOT NULL,
        value TEXT NOT NULL,
        meta TEXT NOT NULL,
        interval TEXT NOT NULL,
        timezone TEXT NOT NULL,
        enabled BOOLEAN NOT NULL,
        last TEXT NOT NULL,
        next_run DOUBLE PRECISION NOT NULL,
        anchor DOUBLE PRECISION NOT NULL,
        running_until DOUBLE PRECISION NOT NULL DEFAULT 0
    );
    CREATE INDEX tasks_by_base ON sb.tasks (base, name);
    CREATE INDEX tasks_due ON sb.tasks (enabled, next_run);
    CREATE TABLE sb.task_runs (
        seq BIGSERIAL PRIMARY KEY,
        id TEXT COLLATE "C" NOT NULL,
        task_id TEXT COLLATE "C" NOT NULL,
        due DOUBLE PRECISION NOT NULL,
        started TEXT NOT NULL,
        completed TEXT NOT NULL,
        outcome TEXT NOT NULL,
        error TEXT NOT NULL,
        output TEXT NOT NULL
    );
    CREATE INDEX task_runs_by_task ON sb.task_runs (task_id, seq);
    """,
    # A document's JSON as filters read it: jsonb cannot hold U+0000, so each "\u0000" escape
    # (one preceded by an even run of backslashes) reads as U+FFFD.
    r"""
    CREATE FUNCTION sb.doc_json(t text) RETURNS jsonb LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
        SELECT CASE WHEN strpos(t, '\u0000') = 0 THEN t::jsonb
        ELSE regexp_replace(t, '(?<!\\)((?:\\\\)*)\\u0000', '\1\\ufffd', 'g')::jsonb END
    $$;
    """,
    # An app's own limits on its functions (JSON of name to value; services/functions.py)
    """
    CREATE TABLE sb.fn_limits (base TEXT PRIMARY KEY, limits TEXT NOT NULL);
    """,
    # Emails each app sent per calendar month (UTC, "YYYY-MM"): /sudo/sendmail and sendMail
    """
    CREATE TABLE sb.mail_counts (
        base TEXT NOT NULL, month TEXT NOT NULL, sent INTEGER NOT NULL, PRIMARY KEY (base, month)
    );
    """,
    # One app's queued jobs by state, for its admin's function queue page (http/ui/queue.py)
    """
    CREATE INDEX fn_jobs_by_base ON sb.fn_jobs (base, lease_until, created);
    """,
]

# Per-base migrations, run inside the base's schema; ``{s}`` is replaced by the quoted schema.
BASE_MIGRATIONS: list[Migration] = [
    """
    CREATE TABLE {s}.accounts (
        id TEXT COLLATE "C" PRIMARY KEY,
        email TEXT NOT NULL,
        created TEXT COLLATE "C" NOT NULL
    );
    CREATE TABLE {s}.users (
        id TEXT COLLATE "C" PRIMARY KEY,
        account_id TEXT NOT NULL,
        email TEXT NOT NULL UNIQUE,
        password TEXT NOT NULL,
        token TEXT NOT NULL,
        role INTEGER NOT NULL,
        reset_code TEXT NOT NULL DEFAULT '',
        created TEXT COLLATE "C" NOT NULL
    );
    CREATE INDEX users_account ON {s}.users (account_id, created);
    """,
    # Documents of every collection in one table; ``data`` is orjson text (not jsonb) so values
    # read back byte-identical to the SQLite store's (key order, number formatting).
    """
    CREATE TABLE {s}.collections (
        name TEXT COLLATE "C" PRIMARY KEY,
        perm TEXT NOT NULL,
        created TEXT COLLATE "C" NOT NULL
    );
    CREATE TABLE {s}.documents (
        col TEXT COLLATE "C" NOT NULL,
        id TEXT COLLATE "C" NOT NULL,
        account_id TEXT COLLATE "C" NOT NULL,
        owner_id TEXT COLLATE "C" NOT NULL,
        created TEXT COLLATE "C" NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY (col, id)
    );
    CREATE INDEX documents_order ON {s}.documents (col, created, id);
    CREATE INDEX documents_account ON {s}.documents (col, account_id, created, id);
    CREATE INDEX documents_owner ON {s}.documents (col, owner_id, created, id);
    CREATE TABLE {s}.doc_indexes (
        col TEXT COLLATE "C" NOT NULL,
        field TEXT COLLATE "C" NOT NULL,
        PRIMARY KEY (col, field)
    );
    CREATE TABLE {s}.fts (
        col TEXT COLLATE "C" NOT NULL,
        doc_id TEXT COLLATE "C" NOT NULL,
        body TEXT NOT NULL,
        tsv TSVECTOR GENERATED ALWAYS AS (to_tsvector('simple', body)) STORED,
        PRIMARY KEY (col, doc_id)
    );
    CREATE INDEX fts_tsv ON {s}.fts USING GIN (tsv);
    CREATE TABLE {s}.fts_terms (
        col TEXT COLLATE "C" NOT NULL,
        term TEXT COLLATE "C" NOT NULL,
        PRIMARY KEY (col, term)
    );
    CREATE TABLE {s}.forms (
        seq BIGSERIAL PRIMARY KEY,
        form TEXT COLLATE "C" NOT NULL,
        data TEXT NOT NULL,
        created TEXT COLLATE "C" NOT NULL
    );
    CREATE INDEX forms_by_name ON {s}.forms (form, seq);
    """,
    # Server-side functions and their run history; ``output`` is orjson text, as ``data`` above.
    """
    CREATE TABLE {s}.functions (
        id TEXT COLLATE "C" PRIMARY KEY,
        name TEXT COLLATE "C" NOT NULL UNIQUE,
        trigger TEXT COLLATE "C" NOT NULL,
        code TEXT NOT NULL,
        version INTEGER NOT NULL,
        last_updated TEXT NOT NULL,
        last_run TEXT NOT NULL,
        secrets TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX functions_trigger ON {s}.functions (trigger);
    CREATE TABLE {s}.function_runs (
        seq BIGSERIAL PRIMARY KEY,
        id TEXT NOT NULL,
        function_id TEXT COLLATE "C" NOT NULL,
        version INTEGER NOT NULL,
        started TEXT NOT NULL,
        completed TEXT NOT NULL,
        success BOOLEAN NOT NULL,
        output TEXT NOT NULL
    );
    CREATE INDEX function_runs_by_fn ON {s}.function_runs (function_id, seq);
    """,
    # Filters read documents as jsonb (``j``, kept in step with ``data`` by the database);
    # owner-scoped reads match owner and account, both in the index so counts read it alone
    # (once vacuumed: the visibility map must say so, hence vacuum and analyze after 2% new rows
    # rather than 20%, which also keeps the statistics of field indexes current).
    """
    ALTER TABLE {s}.documents ADD COLUMN j JSONB GENERATED ALWAYS AS (sb.doc_json(data)) STORED;
    DROP INDEX {s}.documents_owner;
    CREATE INDEX documents_owner ON {s}.documents (col, owner_id, account_id, created, id);
    ALTER TABLE {s}.documents SET (autovacuum_vacuum_insert_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02);
    """,
    # Uploaded files' records (upstream's sb_files); the bytes live with the file provider
    """
    CREATE TABLE {s}.files (
        id TEXT COLLATE "C" PRIMARY KEY,
        account_id TEXT COLLATE "C" NOT NULL,
        name TEXT NOT NULL,
        key TEXT NOT NULL,
        url TEXT NOT NULL,
        size BIGINT NOT NULL,
        uploaded TEXT COLLATE "C" NOT NULL
    );
    CREATE INDEX files_uploaded ON {s}.files (account_id, uploaded, id);
    CREATE INDEX files_size ON {s}.files (account_id, size, id);
    CREATE INDEX files_all ON {s}.files (uploaded, id);
    """,
    # OAuth sign-in providers of the app; client_secret is sealed with APP_SECRET (services/oauth.py)
    """
    CREATE TABLE {s}.oauth_providers (
        provider TEXT COLLATE "C" PRIMARY KEY,
        client_id TEXT NOT NULL,
        client_secret TEXT NOT NULL,
        options TEXT NOT NULL,
        updated TEXT NOT NULL
    );
    """,
    # A failed run of an event keeps the job's payload ('' when not kept) so the admin's function
    # queue page (http/ui/queue.py) can run it again; failed runs are listed newest first (run
    # ids are time-ordered) from their own index.
    """
    ALTER TABLE {s}.function_runs ADD COLUMN input TEXT NOT NULL DEFAULT '';
    CREATE INDEX function_runs_failed ON {s}.function_runs ((id COLLATE "C")) WHERE NOT success;
    """,
    # Statistics on the expressions of the field indexes made before ``create_index`` made them.
    index_statistics,
]


# Errors meaning "the database refused or is unreachable"; anything else is a bug and propagates.
INDEXED_TTL = 10.0  # seconds a collection's list of indexed fields is kept
_DB_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError, OSError)

# libpq key/value DSN keys we understand, and the asyncpg.connect argument each one becomes.
_DSN_KEYS = {
    "host": "host",
    "hostaddr": "host",
    "port": "port",
    "user": "user",
    "password": "password",
    "dbname": "database",
    "sslmode": "ssl",
    "connect_timeout": "timeout",
    "passfile": "passfile",
}
_KV_PAIR = re.compile(r"\s*(\w+)\s*=\s*('(?:[^'\\]|\\.)*'|(?:[^\s'\\]|\\.)*)")


def connect_args(dsn: str) -> tuple[str | None, dict[str, Any]]:
    """Split a DSN into asyncpg's ``(dsn, kwargs)``: URLs pass through, libpq key/value is parsed.

    Raises ``StoreError`` on a key/value string it cannot read or a key it does not support.
    """
    dsn = dsn.strip()
    if not dsn or dsn.startswith(("postgresql://", "postgres://")):
        return dsn or None, {}  # empty: asyncpg falls back to the PG* environment variables
    kwargs: dict[str, Any] = {}
    pos = 0
    while pos < len(dsn):
        m = _KV_PAIR.match(dsn, pos)
        if m is None or m.end() == pos:
            raise StoreError(f"invalid database DSN near {dsn[pos : pos + 20]!r}: expected key=value")
        key, raw = m.group(1), m.group(2)
        pos = m.end()
        if raw.startswith("'"):
            raw = raw[1:-1]
        value = re.sub(r"\\(.)", r"\1", raw)
        if key == "application_name":
            kwargs.setdefault("server_settings", {})["application_name"] = value
        elif key in _DSN_KEYS:
            arg = _DSN_KEYS[key]
            try:
                kwargs[arg] = float(value) if arg == "timeout" else int(value) if arg == "port" else value
            except ValueError:
                raise StoreError(f"invalid database DSN: {key}={value!r} is not a number") from None
        else:
            raise StoreError(
                f"unsupported key {key!r} in database DSN (supported: {', '.join(sorted(_DSN_KEYS))}, "
                "application_name); or use a postgresql:// URL"
            )
        if pos < len(dsn) and not dsn[pos].isspace():
            raise StoreError(f"invalid database DSN near {dsn[pos : pos + 20]!r}: expected a space")
    return None, kwargs


async def _migrate(conn: asyncpg.Connection, table: str, scripts: Sequence[Migration], schema: str = "") -> None:
    """Apply the scripts not yet recorded in ``table``; the caller holds the lock and a transaction.
    A script is SQL (``{s}`` stands for the schema) or a coroutine function of the connection
    and the schema."""
    await conn.execute(
        f"CREATE TABLE IF NOT EXISTS {table} (version INTEGER PRIMARY KEY, applied TIMESTAMPTZ NOT NULL DEFAULT now())"
    )
    current = await conn.fetchval(f"SELECT COALESCE(MAX(version), 0) FROM {table}")
    # A database newer than this code (current > len(scripts)) is left alone, as SQLite does:
    # an older server may still run during a rolling upgrade.
    for version, script in enumerate(scripts, start=1):
        if version > current:
            if isinstance(script, str):
                await conn.execute(script.replace("{s}", schema))
            else:
                await script(conn, schema)
            await conn.execute(f"INSERT INTO {table} (version) VALUES ($1)", version)


class PostgresStore(
    PostgresAccounts,
    PostgresDocuments,
    PostgresSearch,
    PostgresForms,
    PostgresFiles,
    PostgresOAuth,
    PostgresFunctions,
    PostgresTasks,
    Store,
):
    kind = "pg"

    def __init__(self, dsn: str, synchronous_commit: bool = True) -> None:
        self.dsn = dsn
        self.synchronous_commit = synchronous_commit
        self._pool: asyncpg.Pool | None = None
        self._known: set[tuple[str, str]] = set()  # (base, collection) already registered
        self._upkeep: Upkeep | None = None  # set at open when the server's autovacuum is off
        # another process may add an index: a collection's list is read again after a while
        self._indexed: ExpiringLRU[tuple[str, str], frozenset[str]] = ExpiringLRU(4096, INDEXED_TTL)

    # plumbing
    async def open(self) -> None:
        """Create the pool, then apply system migrations and every base's pending migrations."""
        url, kwargs = connect_args(self.dsn)
        try:
            if not self.synchronous_commit:  # like SQLite's WAL + synchronous=NORMAL: no fsync per commit
                kwargs.setdefault("server_settings", {})["synchronous_commit"] = "off"
            self._pool = await asyncpg.create_pool(url, min_size=1, max_size=10, **kwargs)
        except _DB_ERRORS as exc:
            raise StoreError(f"database error: cannot connect: {exc}") from exc
        try:
            async with self._conn(transaction=True) as c:
                await c.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
                await c.execute("CREATE SCHEMA IF NOT EXISTS sb")
                await _migrate(c, "sb.migrations", SYSTEM_MIGRATIONS)
                for (name,) in await c.fetch("SELECT name FROM sb.bases ORDER BY name"):
                    schema = _schema(name)
                    await _migrate(c, f"{schema}.migrations", BASE_MIGRATIONS, schema)
            if await self._fetchrow("SELECT 1 WHERE current_setting('autovacuum') = 'off'") is not None:
                self._upkeep = Upkeep(self._execute)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Close the pool; ``Pool.close`` waits for connections in use to be released."""
        if self._upkeep is not None:
            await self._upkeep.stop()
            self._upkeep = None
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    @asynccontextmanager
    async def _conn(self, transaction: bool = False) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection (in a transaction if asked), with database errors translated."""
        if self._pool is None:
            raise StoreError("database error: store is not open")
        try:
            async with self._pool.acquire() as conn:
                if transaction:
                    async with conn.transaction():
                        yield conn
                else:
                    yield conn
        # DuplicateSchemaError: a schema of that name exists without a row in sb.bases.
        except (asyncpg.UniqueViolationError, asyncpg.DuplicateSchemaError) as exc:
            raise Conflict("already exists") from exc
        # A NUL character cannot be stored in PostgreSQL text; it is bad input, not a server fault.
        except (asyncpg.CharacterNotInRepertoireError, asyncpg.UntranslatableCharacterError) as exc:
            raise BadRequest("invalid input: text may not contain NUL characters") from exc
        except _DB_ERRORS as exc:
            raise StoreError(f"database error: {exc}") from exc

    async def _execute(self, sql: str, *args: Any) -> str:
        async with self._conn() as c:
            return await c.execute(sql, *args)

    async def _fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None:
        async with self._conn() as c:
            return await c.fetchrow(sql, *args)

    async def _fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        async with self._conn() as c:
            return await c.fetch(sql, *args)

    async def ping(self) -> bool:
        """True when ``SELECT 1`` answers within 5 seconds; never raises."""
        if self._pool is None:
            return False
        try:
            async with asyncio.timeout(5):
                return await self._pool.fetchval("SELECT 1") == 1
        except Exception:  # any failure, whatever its kind, means "not healthy"
            return False

    async def _migrate_base(self, c: asyncpg.Connection, schema: str) -> None:
        await _migrate(c, f"{schema}.migrations", BASE_MIGRATIONS, schema)


__all__ = ["BASE_MIGRATIONS", "MIGRATION_LOCK", "SYSTEM_MIGRATIONS", "PostgresStore", "connect_args", "ts_query"]
