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
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import lru_cache
from typing import Any

import asyncpg
import orjson

from sbserver.backends.storage.base import Mutation, Predicate, Store, job_rows
from sbserver.backends.storage.text import candidates, keyword_words, words
from sbserver.errors import BadRequest, Conflict, StoreError
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
]

# Per-base migrations, run inside the base's schema; ``{s}`` is replaced by the quoted schema.
BASE_MIGRATIONS: list[str] = [
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
]

# Every migration (and base creation) holds this transaction-scoped advisory lock, so several
# server processes starting at once apply each migration exactly once.
MIGRATION_LOCK = 0x5B5E_2F00_0001

_USER_COLS = "id, account_id, email, token, role, created, password, reset_code"
_BASE_COLS = "pk, name, tenant_id, whitelist, active, created"
_DOC_COLS = "id, account_id, owner_id, created, data"
_FN_COLS = "id, name, trigger, code, version, last_updated, last_run, secrets"
_RUN_COLS = "id, function_id, version, started, completed, success, output"
_JOB_COLS = "id, base, function_id, payload, created, attempts"
_TASK_COLS = "id, base, name, type, value, meta, interval, timezone, enabled, last, next_run, anchor, running_until"
_TASK_RUN_COLS = "id, task_id, due, started, completed, outcome, error, output"

_NAME = re.compile(r"[A-Za-z0-9_]{1,63}")  # 63: PostgreSQL silently truncates longer identifiers
_RESERVED = frozenset({"sb", "public", "information_schema"})

# Errors meaning "the database refused or is unreachable"; anything else is a bug and propagates.
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


def _schema(name: str) -> str:
    """The quoted schema of a base; ``StoreError`` for a name that cannot be one."""
    if not _NAME.fullmatch(name) or name in _RESERVED or name.startswith("pg_"):
        raise StoreError(
            f"invalid base name {name[:80]!r}: use 1 to 63 characters of A-Z a-z 0-9 _ "
            "(not sb, public, information_schema or pg_*)"
        )
    return f'"{name}"'  # the regex leaves nothing to escape


def _count(status: str) -> int:
    """Rows touched, from a command status such as ``UPDATE 1``."""
    return int(status.rsplit(" ", 1)[-1])


def _base(row: asyncpg.Record | None) -> Base | None:
    if row is None:
        return None
    return Base(row[0], row[1], row[2], tuple(row[3]), row[4], row[5])


def _user(row: asyncpg.Record | None) -> User | None:
    return None if row is None else User(*row)


def _doc(row: asyncpg.Record) -> StoredDoc:
    return StoredDoc(row[0], row[1], row[2], row[3], orjson.loads(row[4]))


def _fn(row: asyncpg.Record) -> FunctionDef:
    return FunctionDef(*row)


def _run(row: asyncpg.Record) -> FunctionRun:
    return FunctionRun(row[0], row[1], row[2], row[3], row[4], row[5], orjson.loads(row[6]))


def _job(row: asyncpg.Record) -> Job:
    return Job(row[0], row[1], row[2], orjson.loads(row[3]), row[4], row[5])


@lru_cache(maxsize=256)
def _finish_statement(schema: str) -> str:
    """Runs of one app recorded in one statement: remove their finished jobs ($1, may be empty),
    record the runs ($2-$8, column by column, in order), set each function's last run ($9, $10)
    and trim its history. Used for every run a function records (finished jobs, web runs, tasks).
    Every part sees the table as it was before the statement, so the trim keeps, of the runs
    already there, the newest ``keep`` minus the number being added ($9, $11)."""
    return (
        "WITH gone AS (DELETE FROM sb.fn_jobs WHERE id = ANY($1::text[])), "
        f"added AS (INSERT INTO {schema}.function_runs ({_RUN_COLS}) "
        "SELECT id, fid, version, started, completed, success, output FROM unnest("
        "$2::text[], $3::text[], $4::int[], $5::text[], $6::text[], $7::bool[], $8::text[]) "
        "WITH ORDINALITY AS r(id, fid, version, started, completed, success, output, n) ORDER BY n), "
        f"latest AS (UPDATE {schema}.functions f SET last_run = v.t "
        "FROM unnest($9::text[], $10::text[]) AS v(id, t) WHERE f.id = v.id) "
        f"DELETE FROM {schema}.function_runs r USING unnest($9::text[], $11::int[]) AS k(fid, off) "
        f"WHERE r.function_id = k.fid AND r.seq <= (SELECT seq FROM {schema}.function_runs "
        "WHERE function_id = k.fid ORDER BY seq DESC LIMIT 1 OFFSET k.off)"
    )


def _finish_arguments(runs: list[tuple[Base, FunctionRun]], keep: int) -> list[list[Any]]:
    """Parameters $2 to $11 of ``_finish_statement``. Of a function's runs in the batch only the
    newest ``keep`` are written: the trim would remove the others at once."""
    keep = max(keep, 0)
    outputs = [orjson.dumps(r.output).decode() for _, r in runs]  # fails before any write
    last: dict[str, str] = {}
    added: dict[str, int] = {}
    for _, r in runs:
        last[r.function_id] = max(last.get(r.function_id, ""), r.completed)
        added[r.function_id] = added.get(r.function_id, 0) + 1
    skip = {f: n - keep for f, n in added.items() if n > keep}
    kept: list[tuple[FunctionRun, str]] = []
    for (_, r), output in zip(runs, outputs, strict=True):
        if skip.get(r.function_id, 0) > 0:
            skip[r.function_id] -= 1
            continue
        kept.append((r, output))
    return [
        [r.id for r, _ in kept],
        [r.function_id for r, _ in kept],
        [r.version for r, _ in kept],
        [r.started for r, _ in kept],
        [r.completed for r, _ in kept],
        [r.success for r, _ in kept],
        [output for _, output in kept],
        list(last),
        list(last.values()),
        [max(keep - added[f], 0) for f in last],
    ]


def _task(row: asyncpg.Record) -> Task:
    return Task(*row)


def _task_run(row: asyncpg.Record) -> TaskRun:
    return TaskRun(row[0], row[1], row[2], row[3], row[4], row[5], row[6], orjson.loads(row[7]))


async def _insert_task_run(c: asyncpg.Connection, run: TaskRun, keep: int) -> None:
    """Record a task run and keep the task's newest ``keep`` runs; the caller holds the transaction."""
    await c.execute(
        f"INSERT INTO sb.task_runs ({_TASK_RUN_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        *(run.id, run.task_id, run.due, run.started, run.completed, run.outcome, run.error),
        orjson.dumps(run.output).decode(),
    )
    await c.execute(
        "DELETE FROM sb.task_runs WHERE task_id = $1 AND seq <= ("
        "SELECT seq FROM sb.task_runs WHERE task_id = $1 ORDER BY seq DESC LIMIT 1 OFFSET $2)",
        run.task_id,
        max(keep, 0),  # SQLite reads a negative OFFSET as 0; PostgreSQL refuses it
    )


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


def _limit(n: int) -> int | None:
    """SQLite reads a negative LIMIT as "no limit"; PostgreSQL wants NULL for that."""
    return None if n < 0 else n


def ts_query(groups: list[list[str]]) -> str:
    """A tsquery: every group must match; inside a group the first word as a prefix, or any fuzzy
    candidate exactly. Words are letters and digits only, so no tsquery syntax can get through."""
    return " & ".join("(" + " | ".join([f"{g[0]}:*", *g[1:]]) + ")" for g in groups)


async def _migrate(conn: asyncpg.Connection, table: str, scripts: list[str], schema: str = "") -> None:
    """Apply the scripts not yet recorded in ``table``; the caller holds the lock and a transaction."""
    await conn.execute(
        f"CREATE TABLE IF NOT EXISTS {table} (version INTEGER PRIMARY KEY, applied TIMESTAMPTZ NOT NULL DEFAULT now())"
    )
    current = await conn.fetchval(f"SELECT COALESCE(MAX(version), 0) FROM {table}")
    # A database newer than this code (current > len(scripts)) is left alone, as SQLite does:
    # an older server may still run during a rolling upgrade.
    for version, script in enumerate(scripts, start=1):
        if version > current:
            await conn.execute(script.replace("{s}", schema))
            await conn.execute(f"INSERT INTO {table} (version) VALUES ($1)", version)


INSERT_JOB = (
    "INSERT INTO sb.fn_jobs (id, base, function_id, payload, created, owner, lease_until, attempts) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
)
# The same rows given column by column, as arrays in parameters $7 to $14 (after a document's six)
INSERT_JOBS_FROM_ARRAYS = (
    "INSERT INTO sb.fn_jobs (id, base, function_id, payload, created, owner, lease_until, attempts) "
    "SELECT * FROM unnest($7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], "
    "$13::float8[], $14::int[])"
)


class PostgresStore(Store):
    kind = "pg"

    def __init__(self, dsn: str, synchronous_commit: bool = True) -> None:
        self.dsn = dsn
        self.synchronous_commit = synchronous_commit
        self._pool: asyncpg.Pool | None = None
        self._known: set[tuple[str, str]] = set()  # (base, collection) already registered

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
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Close the pool; ``Pool.close`` waits for connections in use to be released."""
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

    # tenants and bases
    async def create_tenant(self, tenant: Tenant) -> None:
        await self._execute(
            "INSERT INTO sb.tenants (id, email, plan, active, created) VALUES ($1, $2, $3, $4, $5)",
            *(tenant.id, tenant.email, tenant.plan, tenant.active, tenant.created),
        )

    async def tenant_by_email(self, email: str) -> Tenant | None:
        row = await self._fetchrow("SELECT id, email, plan, active, created FROM sb.tenants WHERE email = $1", email)
        return None if row is None else Tenant(row[0], row[1], row[2], row[3], row[4])

    async def create_base(self, base: Base) -> None:
        """Insert the row, create the schema and apply its migrations in one transaction."""
        schema = _schema(base.name)
        async with self._conn(transaction=True) as c:
            # The lock keeps this from interleaving with a migration run by a starting server.
            await c.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
            # The row goes first so a taken pk or name is a unique violation, hence Conflict.
            await c.execute(
                f"INSERT INTO sb.bases ({_BASE_COLS}) VALUES ($1, $2, $3, $4, $5, $6)",
                *(base.id, base.name, base.tenant_id, list(base.whitelist), base.active, base.created),
            )
            await c.execute(f"CREATE SCHEMA {schema}")
            await _migrate(c, f"{schema}.migrations", BASE_MIGRATIONS, schema)

    async def base_by_pk(self, pk: str) -> Base | None:
        return _base(await self._fetchrow(f"SELECT {_BASE_COLS} FROM sb.bases WHERE pk = $1", pk))

    async def bases_of_tenant(self, tenant_id: str) -> list[Base]:
        rows = await self._fetch(
            f"SELECT {_BASE_COLS} FROM sb.bases WHERE tenant_id = $1 ORDER BY created, pk", tenant_id
        )
        return [b for b in map(_base, rows) if b is not None]

    # accounts and users
    @staticmethod
    async def _insert_user(c: asyncpg.Connection, schema: str, u: User) -> None:
        await c.execute(
            f"INSERT INTO {schema}.users ({_USER_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            *(u.id, u.account_id, u.email, u.token, u.role, u.created, u.password, u.reset_code),
        )

    async def create_account_with_user(self, base: Base, account: Account, user: User) -> None:
        schema = _schema(base.name)
        async with self._conn(transaction=True) as c:
            await c.execute(
                f"INSERT INTO {schema}.accounts (id, email, created) VALUES ($1, $2, $3)",
                *(account.id, account.email, account.created),
            )
            await self._insert_user(c, schema, user)

    async def create_user(self, base: Base, user: User) -> None:
        schema = _schema(base.name)
        async with self._conn() as c:
            await self._insert_user(c, schema, user)

    async def user_by_email(self, base: Base, email: str) -> User | None:
        sql = f"SELECT {_USER_COLS} FROM {_schema(base.name)}.users WHERE email = $1"
        return _user(await self._fetchrow(sql, email))

    async def user_by_id(self, base: Base, user_id: str) -> User | None:
        sql = f"SELECT {_USER_COLS} FROM {_schema(base.name)}.users WHERE id = $1"
        return _user(await self._fetchrow(sql, user_id))

    async def root_user(self, base: Base) -> User | None:
        sql = f"SELECT {_USER_COLS} FROM {_schema(base.name)}.users WHERE role >= 100 ORDER BY created, id LIMIT 1"
        return _user(await self._fetchrow(sql))

    async def users_of_account(self, base: Base, account_id: str) -> list[User]:
        sql = f"SELECT {_USER_COLS} FROM {_schema(base.name)}.users WHERE account_id = $1 ORDER BY created, id"
        return [User(*r) for r in await self._fetch(sql, account_id)]

    async def accounts(self, base: Base) -> list[Account]:
        sql = f"SELECT id, email, created FROM {_schema(base.name)}.accounts ORDER BY created, id"
        return [Account(*r) for r in await self._fetch(sql)]

    async def delete_user(self, base: Base, user_id: str) -> bool:
        status = await self._execute(f"DELETE FROM {_schema(base.name)}.users WHERE id = $1", user_id)
        return _count(status) > 0

    async def set_password(self, base: Base, user_id: str, password_hash: str) -> None:
        await self._execute(
            f"UPDATE {_schema(base.name)}.users SET password = $1 WHERE id = $2", password_hash, user_id
        )

    async def set_reset_code(self, base: Base, email: str, code: str) -> bool:
        status = await self._execute(
            f"UPDATE {_schema(base.name)}.users SET reset_code = $1 WHERE email = $2", code, email
        )
        return _count(status) > 0

    async def reset_password(self, base: Base, email: str, code: str, password_hash: str) -> bool:
        """Set the password where email and a non-empty code match, clearing the code."""
        if not code:  # an empty code would match every user who never asked for a reset
            return False
        status = await self._execute(
            f"UPDATE {_schema(base.name)}.users SET password = $1, reset_code = '' "
            "WHERE email = $2 AND reset_code = $3",
            password_hash,
            email,
            code,
        )
        return _count(status) > 0

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

    # full-text search
    async def index_text(self, base: Base, col: str, doc_id: str, text: str) -> None:
        text = text.replace("\x00", " ")  # PostgreSQL text cannot hold NUL; it separates words anyway
        schema = _schema(base.name)
        async with self._conn(transaction=True) as c:
            await c.execute(
                f"INSERT INTO {schema}.fts (col, doc_id, body) VALUES ($1, $2, $3) "
                "ON CONFLICT (col, doc_id) DO UPDATE SET body = EXCLUDED.body",
                col,
                doc_id,
                text,
            )
            await c.execute(
                f"INSERT INTO {schema}.fts_terms (col, term) SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING",
                col,
                sorted(set(words(text))),
            )

    async def search_text(self, base: Base, col: str, keywords: list[str], limit: int) -> list[str]:
        schema = _schema(base.name)
        groups = []
        for word in keyword_words(keywords):
            vocab = await self._fetch(
                f"SELECT term FROM {schema}.fts_terms WHERE col = $1 AND length(term) BETWEEN $2 AND $3",
                col,
                len(word) - 1,
                len(word) + 1,
            )
            groups.append([word, *candidates(word, [r[0] for r in vocab])])
        if not groups:
            return []
        rows = await self._fetch(
            f"SELECT doc_id FROM {schema}.fts, to_tsquery('simple', $2) AS q "
            "WHERE col = $1 AND tsv @@ q ORDER BY ts_rank(tsv, q) DESC, doc_id LIMIT $3",
            col,
            ts_query(groups),
            _limit(limit),
        )
        return [r[0] for r in rows]

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

    # server-side functions
    async def create_function(self, base: Base, fn: FunctionDef) -> None:
        await self._execute(
            f"INSERT INTO {_schema(base.name)}.functions ({_FN_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            *(fn.id, fn.name, fn.trigger, fn.code, fn.version, fn.last_updated, fn.last_run, fn.secrets),
        )

    async def update_function(
        self, base: Base, fn_id: str, code: str, trigger: str, secrets: str | None, updated: str
    ) -> FunctionDef | None:
        row = await self._fetchrow(
            f"UPDATE {_schema(base.name)}.functions SET code = $1, trigger = $2, secrets = COALESCE($3::text, secrets), "
            f"version = version + 1, last_updated = $4 WHERE id = $5 RETURNING {_FN_COLS}",
            *(code, trigger, secrets, updated, fn_id),
        )
        return None if row is None else _fn(row)

    async def delete_function(self, base: Base, name: str) -> bool:
        schema = _schema(base.name)
        async with self._conn(transaction=True) as c:
            fn_id = await c.fetchval(f"DELETE FROM {schema}.functions WHERE name = $1 RETURNING id", name)
            if fn_id is None:
                return False
            await c.execute(f"DELETE FROM {schema}.function_runs WHERE function_id = $1", fn_id)
            return True

    async def function_by_name(self, base: Base, name: str) -> FunctionDef | None:
        row = await self._fetchrow(f"SELECT {_FN_COLS} FROM {_schema(base.name)}.functions WHERE name = $1", name)
        return None if row is None else _fn(row)

    async def functions(self, base: Base) -> list[FunctionDef]:
        return [
            _fn(r) for r in await self._fetch(f"SELECT {_FN_COLS} FROM {_schema(base.name)}.functions ORDER BY name")
        ]

    async def functions_for(self, base: Base, triggers: list[str]) -> list[FunctionDef]:
        if not triggers:
            return []
        rows = await self._fetch(
            f"SELECT {_FN_COLS} FROM {_schema(base.name)}.functions WHERE trigger = ANY($1::text[]) ORDER BY name",
            list(triggers),
        )
        return [_fn(r) for r in rows]

    async def add_run(self, base: Base, run: FunctionRun, keep: int) -> None:
        await self._execute(_finish_statement(_schema(base.name)), [], *_finish_arguments([(base, run)], keep))

    async def runs(self, base: Base, fn_id: str, limit: int) -> list[FunctionRun]:
        rows = await self._fetch(
            f"SELECT {_RUN_COLS} FROM {_schema(base.name)}.function_runs WHERE function_id = $1 "
            'ORDER BY started COLLATE "C" DESC, seq DESC LIMIT $2',
            fn_id,
            _limit(limit),
        )
        return [_run(r) for r in reversed(rows)]

    # the durable queue of function runs (installation-wide, in the system schema)
    async def enqueue_jobs(self, jobs: list[Job], owner: str, lease_until: float) -> None:
        if not jobs:
            return
        rows = job_rows(jobs, owner, lease_until)
        async with self._conn(transaction=True) as c:
            await c.executemany(INSERT_JOB, rows)

    async def claim_jobs(self, owner: str, now: float, lease_until: float, limit: int) -> list[Job]:
        """One statement: SKIP LOCKED lets concurrent claimers take disjoint jobs without waiting,
        and a job another claimer leased meanwhile fails the re-checked ``lease_until < now``."""
        rows = await self._fetch(
            "UPDATE sb.fn_jobs SET owner = $1, lease_until = $2, attempts = attempts + 1 "
            "WHERE id IN (SELECT id FROM sb.fn_jobs WHERE lease_until < $3 "
            "ORDER BY created, id LIMIT $4 FOR UPDATE SKIP LOCKED) "
            f"RETURNING {_JOB_COLS}",
            owner,
            lease_until,
            now,
            _limit(limit),
        )
        jobs = [_job(r) for r in rows]
        jobs.sort(key=lambda j: (j.created, j.id))  # RETURNING has no order; "C" collation is code-point order
        return jobs

    async def extend_leases(self, owner: str, job_ids: list[str], lease_until: float) -> None:
        if job_ids:
            await self._execute(
                "UPDATE sb.fn_jobs SET lease_until = $1 WHERE id = ANY($2::text[]) AND owner = $3",
                lease_until,
                job_ids,
                owner,
            )

    async def finish_jobs(self, finished: list[FinishedJob], keep: int) -> None:
        if not finished:
            return
        ids = [f.job_id for f in finished]
        by_schema: dict[str, list[tuple[Base, FunctionRun]]] = {}
        for f in finished:
            if f.base is not None and f.run is not None:
                by_schema.setdefault(_schema(f.base.name), []).append((f.base, f.run))
        if not by_schema:
            await self._execute("DELETE FROM sb.fn_jobs WHERE id = ANY($1::text[])", ids)
            return
        arguments = {schema: _finish_arguments(group, keep) for schema, group in by_schema.items()}
        if len(arguments) == 1:  # the usual batch, one app's runs: one statement
            [(schema, args)] = arguments.items()
            await self._execute(_finish_statement(schema), ids, *args)
            return
        async with self._conn(transaction=True) as c:
            for schema, args in arguments.items():
                await c.execute(_finish_statement(schema), ids, *args)
                ids = []  # removed by the first

    # scheduled tasks (installation-wide, in the system schema)
    async def create_task(self, task: Task) -> None:
        await self._execute(
            f"INSERT INTO sb.tasks ({_TASK_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            *(task.id, task.base, task.name, task.type, task.value, task.meta, task.interval, task.timezone),
            *(task.enabled, task.last, task.next_run, task.anchor, task.running_until),
        )

    async def update_task(self, task: Task) -> bool:
        status = await self._execute(
            "UPDATE sb.tasks SET name = $1, type = $2, value = $3, meta = $4, interval = $5, timezone = $6, "
            "enabled = $7, next_run = $8 WHERE id = $9 AND base = $10",
            *(task.name, task.type, task.value, task.meta, task.interval, task.timezone, task.enabled),
            *(task.next_run, task.id, task.base),
        )
        return _count(status) > 0

    async def delete_task(self, base: Base, task_id: str) -> bool:
        async with self._conn(transaction=True) as c:
            status = await c.execute("DELETE FROM sb.tasks WHERE id = $1 AND base = $2", task_id, base.name)
            if not _count(status):
                return False
            await c.execute("DELETE FROM sb.task_runs WHERE task_id = $1", task_id)
            return True

    async def task(self, base: Base, task_id: str) -> Task | None:
        row = await self._fetchrow(f"SELECT {_TASK_COLS} FROM sb.tasks WHERE id = $1 AND base = $2", task_id, base.name)
        return None if row is None else _task(row)

    async def tasks(self, base: Base) -> list[Task]:
        rows = await self._fetch(f"SELECT {_TASK_COLS} FROM sb.tasks WHERE base = $1 ORDER BY name, id", base.name)
        return [_task(r) for r in rows]

    async def due_tasks(self, now: float, limit: int) -> list[Task]:
        rows = await self._fetch(
            f"SELECT {_TASK_COLS} FROM sb.tasks WHERE enabled AND next_run <= $1 ORDER BY next_run, id LIMIT $2",
            now,
            _limit(limit),
        )
        return [_task(r) for r in rows]

    async def next_due(self) -> float | None:
        row = await self._fetchrow("SELECT MIN(next_run) FROM sb.tasks WHERE enabled")
        return None if row is None or row[0] is None else float(row[0])

    async def claim_task(
        self, task_id: str, due: float, next_run: float, last: str, running_until: float, now: float
    ) -> bool:
        """One conditional UPDATE: a concurrent claimer of the same tick waits for the row lock,
        then re-checks the condition against the committed row, where ``next_run`` has moved on."""
        status = await self._execute(
            "UPDATE sb.tasks SET next_run = $1, last = $2, running_until = $3 "
            "WHERE id = $4 AND next_run = $5 AND enabled AND running_until <= $6",
            *(next_run, last, running_until, task_id, due, now),
        )
        return _count(status) > 0

    async def skip_task(self, task_id: str, due: float, next_run: float, run: TaskRun, keep: int) -> bool:
        async with self._conn(transaction=True) as c:
            status = await c.execute(
                "UPDATE sb.tasks SET next_run = $1 WHERE id = $2 AND next_run = $3 AND enabled",
                next_run,
                task_id,
                due,
            )
            if not _count(status):
                return False
            await _insert_task_run(c, run, keep)
            return True

    async def finish_task(self, task_id: str, run: TaskRun, keep: int) -> None:
        async with self._conn(transaction=True) as c:
            # The UPDATE locks the row, so a concurrent delete_task waits and then removes this run too.
            status = await c.execute("UPDATE sb.tasks SET running_until = 0 WHERE id = $1", task_id)
            if _count(status):
                await _insert_task_run(c, run, keep)

    async def task_runs(self, task_id: str, limit: int) -> list[TaskRun]:
        rows = await self._fetch(
            f"SELECT {_TASK_RUN_COLS} FROM sb.task_runs WHERE task_id = $1 ORDER BY seq DESC LIMIT $2",
            task_id,
            _limit(limit),
        )
        return [_task_run(r) for r in reversed(rows)]
