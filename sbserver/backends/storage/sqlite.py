"""The embedded store: one SQLite file, WAL, one writer thread, reads on their own connection.

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

from sbserver.backends.storage.base import Store
from sbserver.backends.storage.sqlite_writer import Writer, connect
from sbserver.errors import Conflict, StoreError
from sbserver.types import Account, Base, Tenant, User

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


class SQLiteStore(Store):
    kind = "sqlite"

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._writer: Writer | None = None
        self._read: sqlite3.Connection | None = None

    # plumbing
    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = Writer(self.path)
        self._writer.start(asyncio.get_running_loop())
        try:
            await self._write(_migrate)
            self._read = connect(self.path)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        if self._writer is not None:
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
                (base.id, base.name, base.tenant_id, "|".join(base.whitelist), int(base.active), base.created),
            )
        )

    async def base_by_pk(self, pk: str) -> Base | None:
        return _base(
            self._one("SELECT pk, name, tenant_id, whitelist, active, created FROM bases WHERE pk = ?", (pk,))
        )

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
