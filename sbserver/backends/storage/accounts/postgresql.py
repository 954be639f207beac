"""Tenants and bases in the system schema ``sb``; accounts and users in each base's schema."""

from __future__ import annotations

import asyncpg

from sbserver.backends.storage.accounts.base import AccountStore
from sbserver.backends.storage.postgresql_base import MIGRATION_LOCK, PostgresBase, _count, _schema
from sbserver.types import Account, Base, Tenant, User

_USER_COLS = "id, account_id, email, token, role, created, password, reset_code"
_BASE_COLS = "pk, name, tenant_id, whitelist, active, created"


def _base(row: asyncpg.Record | None) -> Base | None:
    if row is None:
        return None
    return Base(row[0], row[1], row[2], tuple(row[3]), row[4], row[5])


def _user(row: asyncpg.Record | None) -> User | None:
    return None if row is None else User(*row)


class PostgresAccounts(PostgresBase, AccountStore):
    """The accounts contract on PostgreSQL; needs the plumbing of ``PostgresBase``."""

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
            await self._migrate_base(c, schema)

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

    async def count_users(self, base: Base) -> int:
        row = await self._fetchrow(f"SELECT COUNT(*) FROM {_schema(base.name)}.users")
        return int(row[0]) if row is not None else 0

    async def delete_user(self, base: Base, user_id: str) -> bool:
        status = await self._execute(f"DELETE FROM {_schema(base.name)}.users WHERE id = $1", user_id)
        return _count(status) > 0

    async def set_password(self, base: Base, user_id: str, password_hash: str, token: str) -> None:
        await self._execute(
            f"UPDATE {_schema(base.name)}.users SET password = $1, token = $2 WHERE id = $3",
            *(password_hash, token, user_id),
        )

    async def set_reset_code(self, base: Base, email: str, code: str) -> bool:
        status = await self._execute(
            f"UPDATE {_schema(base.name)}.users SET reset_code = $1 WHERE email = $2", code, email
        )
        return _count(status) > 0

    async def reset_password(self, base: Base, email: str, code: str, password_hash: str, token: str) -> bool:
        """Set the password and token where email and a non-empty code match, clearing the code."""
        if not code:  # an empty code would match every user who never asked for a reset
            return False
        status = await self._execute(
            f"UPDATE {_schema(base.name)}.users SET password = $1, reset_code = '', token = $4 "
            "WHERE email = $2 AND reset_code = $3",
            password_hash,
            email,
            code,
            token,
        )
        return _count(status) > 0

    # allowed origins (CORS)
    async def set_whitelist(self, base_pk: str, origins: list[str]) -> bool:
        status = await self._execute("UPDATE sb.bases SET whitelist = $1 WHERE pk = $2", list(origins), base_pk)
        return _count(status) > 0

    async def whitelist_entries(self) -> list[str]:
        rows = await self._fetch("SELECT DISTINCT unnest(whitelist) FROM sb.bases WHERE active")
        return sorted(str(row[0]) for row in rows if row[0])

    # emails sent
    async def count_email(self, base: Base, month: str) -> int:
        row = await self._fetchrow(
            "INSERT INTO sb.mail_counts (base, month, sent) VALUES ($1, $2, 1) "
            "ON CONFLICT (base, month) DO UPDATE SET sent = sb.mail_counts.sent + 1 RETURNING sent",
            base.name,
            month,
        )
        assert row is not None
        return int(row[0])

    async def emails_sent(self, base: Base, month: str) -> int:
        row = await self._fetchrow("SELECT sent FROM sb.mail_counts WHERE base = $1 AND month = $2", base.name, month)
        return int(row[0]) if row else 0

    # one's own email, roles
    async def change_email(self, base: Base, user: User, email: str, token: str, tenant_id: str = "") -> bool:
        schema = _schema(base.name)
        async with self._conn(transaction=True) as c:
            status = await c.execute(
                f"UPDATE {schema}.users SET email = $1, token = $2 WHERE id = $3 AND email = $4",
                *(email, token, user.id, user.email),
            )
            if _count(status) == 0:
                return False
            await c.execute(
                f"UPDATE {schema}.accounts SET email = $1 WHERE id = $2 AND email = $3",
                *(email, user.account_id, user.email),
            )
            if tenant_id:
                await c.execute(
                    "UPDATE sb.tenants SET email = $1 WHERE id = $2 AND email = $3", *(email, tenant_id, user.email)
                )
            return True

    async def set_role(self, base: Base, user_id: str, role: int) -> bool:
        status = await self._execute(f"UPDATE {_schema(base.name)}.users SET role = $1 WHERE id = $2", role, user_id)
        return _count(status) > 0
