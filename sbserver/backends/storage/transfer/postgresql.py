"""Reading and writing transfer records in a PostgreSQL store.

The source reads in one ``REPEATABLE READ READ ONLY`` transaction: every table as of one
moment, while the server goes on writing. The sink writes in one transaction (tables through
``COPY``), holding the migration lock. An app's own indexes that enforce nothing are dropped
once its schema is made, and built over all its rows just before the commit (one sort each,
instead of a million insertions). The field indexes, built ``CONCURRENTLY`` by the store, come
after the commit, through ``PostgresStore.create_index`` (idempotent: run the same command
again if it was interrupted there).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncpg

from sbserver.backends.storage.postgresql_base import MIGRATION_LOCK, _schema
from sbserver.backends.storage.transfer.base import BATCH, Sink, TableSource
from sbserver.backends.storage.transfer.records import KINDS, Kind, TransferError, to_row

_DB_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)


async def connect(dsn: str) -> asyncpg.Connection:
    """One connection to ``dsn`` (URL or key=value); ``TransferError`` when it cannot be made."""
    from sbserver.backends.storage.postgresql import connect_args
    from sbserver.errors import StoreError

    try:
        url, kwargs = connect_args(dsn)
        return await asyncpg.connect(url, **kwargs)
    except StoreError as exc:
        raise TransferError(exc.message) from exc
    except (*_DB_ERRORS, ValueError) as exc:
        raise TransferError(f"cannot connect to PostgreSQL: {exc}") from exc


# The indexes of a schema that enforce nothing (keys and unique indexes stay, to refuse duplicates).
_SECONDARY_INDEXES = """
    SELECT i.indexname, i.indexdef FROM pg_indexes i
    WHERE i.schemaname = $1 AND i.indexdef NOT LIKE 'CREATE UNIQUE %' AND NOT EXISTS (
        SELECT 1 FROM pg_constraint k WHERE k.conindid = format('%I.%I', i.schemaname, i.indexname)::regclass
    )
    ORDER BY i.indexname
"""


def _order(kind: Kind) -> str:
    return ", ".join(c if c == "seq" else f'{c} COLLATE "C"' for c in kind.order)


class Snapshot:
    """A PostgreSQL source's connection, reading in one read-only REPEATABLE READ transaction:
    every table it reads shows the same moment. ``close`` ends it."""

    _conn: asyncpg.Connection | None = None
    _tx: Any = None

    async def _open_snapshot(self, dsn: str) -> asyncpg.Connection:
        conn = await connect(dsn)
        try:
            self._tx = conn.transaction(isolation="repeatable_read", readonly=True)
            await self._tx.start()
        except BaseException:
            await conn.close()
            raise
        return conn

    async def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                await self._tx.rollback()
            finally:
                await conn.close()

    def _c(self) -> asyncpg.Connection:
        assert self._conn is not None, "source is not open"
        return self._conn


class PostgresSource(Snapshot, TableSource):
    """Records of a PostgreSQL store, read in one snapshot."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn

    async def open(self) -> None:
        conn = await self._open_snapshot(self.dsn)
        try:
            if await conn.fetchval("SELECT to_regclass('sb.bases')") is None:
                raise TransferError("the source database holds no sbserver installation (no sb.bases table)")
        except BaseException:
            await conn.close()
            raise
        self._conn = conn

    async def _bases(self) -> list[tuple[str, str, str]]:
        rows = await self._c().fetch('SELECT pk, name, tenant_id FROM sb.bases ORDER BY name COLLATE "C"')
        return [(r[0], r[1], r[2]) for r in rows]

    def _query(self, kind: Kind, base: str | None, where: str, param: Any, cols: str = "") -> tuple[str, list[Any]]:
        cols = cols or ", ".join(kind.fields)
        if kind.per_base:
            assert base is not None
            return f"SELECT {cols} FROM {_schema(base)}.{kind.table}", []
        sql = f"SELECT {cols} FROM sb.{kind.table}"
        if where:
            return sql + " WHERE " + where.format(p="$1", sb="sb."), [param]
        return sql, []

    async def _rows(self, kind: Kind, base: str | None, where: str, param: Any) -> AsyncIterator[list[Sequence[Any]]]:
        sql, params = self._query(kind, base, where, param)
        cursor = await self._c().cursor(f"{sql} ORDER BY {_order(kind)}", *params)
        while rows := await cursor.fetch(BATCH):
            yield rows  # records iterate as tuples do

    async def _count(self, kind: Kind, base: str | None, where: str, param: Any) -> int:
        sql, params = self._query(kind, base, where, param, "COUNT(*)")
        return int(await self._c().fetchval(sql, *params))


class PostgresSink(Sink):
    """Writes records into a PostgreSQL store (its system schema created when absent)."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._conn: asyncpg.Connection | None = None
        self._tx: Any = None
        self._indexes: list[tuple[str, str, str]] = []  # (base name, collection, field) to build
        self._deferred: list[str] = []  # CREATE INDEX statements run just before the commit

    async def open(self) -> None:
        from sbserver.backends.storage.postgresql import PostgresStore
        from sbserver.errors import StoreError

        store = PostgresStore(self.dsn)
        try:
            await store.open()  # the system schema and its migrations
        except StoreError as exc:
            raise TransferError(exc.message) from exc
        finally:
            await store.close()
        self._conn = await connect(self.dsn)

    async def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            if self._tx is not None:
                await self.rollback()
            await conn.close()

    def _c(self) -> asyncpg.Connection:
        assert self._conn is not None, "sink is not open"
        return self._conn

    async def is_empty(self) -> bool:
        c = self._c()
        return int(await c.fetchval("SELECT (SELECT COUNT(*) FROM sb.tenants) + (SELECT COUNT(*) FROM sb.bases)")) == 0

    async def begin(self, wipe: bool = False) -> None:
        from sbserver.backends.storage.postgresql import SYSTEM_MIGRATIONS, _migrate

        c = self._c()
        self._tx = c.transaction()
        await self._tx.start()
        await c.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        if wipe:  # DDL is transactional: a failed restore leaves the old installation as it was
            for (name,) in await c.fetch("SELECT name FROM sb.bases"):
                await c.execute(f"DROP SCHEMA IF EXISTS {_schema(name)} CASCADE")
            await c.execute("DROP SCHEMA sb CASCADE")
            await c.execute("CREATE SCHEMA sb")
            await _migrate(c, "sb.migrations", SYSTEM_MIGRATIONS)

    async def write(self, kind: Kind, records: Sequence[dict[str, Any]]) -> None:
        c = self._c()
        try:
            if kind.name == "tenant":
                await self._tenants(c, kind, records)
            elif kind.name == "base":
                self._deferred += await self._bases(c, kind, records)
            elif kind.per_base:
                by_base: dict[str, list[list[Any]]] = {}
                for rec in records:
                    by_base.setdefault(rec["base"], []).append(to_row(kind, rec))
                for base, rows in by_base.items():
                    await c.copy_records_to_table(
                        kind.table, records=rows, columns=list(kind.fields), schema_name=_schema(base)[1:-1]
                    )
                if kind.name == "doc_index":
                    self._indexes += [(r["base"], r["col"], r["field"]) for r in records]
            else:
                rows = [to_row(kind, rec) for rec in records]
                await c.copy_records_to_table(kind.table, records=rows, columns=list(kind.fields), schema_name="sb")
        except asyncpg.UniqueViolationError as exc:
            raise TransferError(f"a {kind.name} record already exists in the target ({exc.detail or exc}): nothing was written") from exc  # fmt: skip
        except asyncpg.UndefinedTableError as exc:
            raise TransferError(f"{kind.name} records name an app that is not in the stream ({exc}): nothing was written") from exc  # fmt: skip
        except _DB_ERRORS as exc:
            raise TransferError(f"cannot write {kind.name} records: {exc}") from exc

    @staticmethod
    async def _tenants(c: asyncpg.Connection, kind: Kind, records: Sequence[dict[str, Any]]) -> None:
        for rec in records:
            email = await c.fetchval("SELECT email FROM sb.tenants WHERE id = $1", rec["id"])
            if email is None:
                await c.execute(
                    f"INSERT INTO sb.tenants ({', '.join(kind.fields)}) VALUES ($1, $2, $3, $4, $5)", *to_row(kind, rec)
                )
            elif email != rec["email"]:
                raise TransferError(
                    f"tenant {rec['id']} exists in the target with another email ({email}): nothing was written"
                )

    @staticmethod
    async def _bases(c: asyncpg.Connection, kind: Kind, records: Sequence[dict[str, Any]]) -> list[str]:
        """Creates the bases and their schemas; returns the statements of the indexes left
        out until the commit."""
        from sbserver.backends.storage.postgresql import BASE_MIGRATIONS, _migrate
        from sbserver.errors import StoreError

        deferred: list[str] = []
        for rec in records:
            try:
                schema = _schema(rec["name"])
            except StoreError as exc:
                raise TransferError(exc.message) from exc
            await c.execute(
                f"INSERT INTO sb.bases ({', '.join(kind.fields)}) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                *to_row(kind, rec),
            )
            try:
                await c.execute(f"CREATE SCHEMA {schema}")
            except asyncpg.DuplicateSchemaError:
                raise TransferError(f"schema {rec['name']} already exists in the target: nothing was written") from None
            await _migrate(c, f"{schema}.migrations", BASE_MIGRATIONS, schema)
            # Its tables are new and empty: an index built once over all their rows (one sort)
            # costs a fraction of keeping it up to date row by row. Keys stay, to refuse duplicates.
            rows = await c.fetch(_SECONDARY_INDEXES, schema[1:-1])
            for name, statement in rows:
                await c.execute(f'DROP INDEX {schema}."{name}"')
                deferred.append(statement)
        return deferred

    async def commit(self) -> None:
        from sbserver.backends.storage.postgresql import PostgresStore

        c = self._c()
        try:
            for statement in self._deferred:
                await c.execute(statement)
        except _DB_ERRORS as exc:
            raise TransferError(f"cannot build the indexes: {exc}") from exc
        self._deferred = []
        await self._tx.commit()
        self._tx = None
        if not self._indexes:
            return
        store = PostgresStore(self.dsn)
        await store.open()
        try:
            for name, col, field in self._indexes:
                pk = await self._c().fetchval("SELECT pk FROM sb.bases WHERE name = $1", name)
                base = await store.base_by_pk(pk)
                assert base is not None
                await store.create_index(base, col, field)
        finally:
            await store.close()
        self._indexes = []

    async def rollback(self) -> None:
        if self._tx is not None:
            tx, self._tx = self._tx, None
            try:
                await tx.rollback()
            except _DB_ERRORS:
                pass  # the connection is gone: nothing was committed
        self._indexes = []
        self._deferred = []


__all__ = ["KINDS", "PostgresSink", "PostgresSource", "connect"]
