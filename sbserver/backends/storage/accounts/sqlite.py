"""Tenants, bases, accounts and users in SQLite (per-base rows carry the base name)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from sbserver.backends.storage.accounts.base import AccountStore
from sbserver.backends.storage.sqlite_base import SQLiteBase
from sbserver.types import Account, Base, Tenant, User

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


class SQLiteAccounts(SQLiteBase, AccountStore):
    """The accounts contract on SQLite; needs the plumbing of ``SQLiteBase``."""

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

    async def count_users(self, base: Base) -> int:
        row = await self._one_off("SELECT COUNT(*) FROM users WHERE base = ?", (base.name,))
        return int(row[0])

    async def delete_user(self, base: Base, user_id: str) -> bool:
        cur = await self._write(
            lambda c: c.execute("DELETE FROM users WHERE base = ? AND id = ?", (base.name, user_id))
        )
        return cur.rowcount > 0

    async def set_password(self, base: Base, user_id: str, password_hash: str, token: str) -> None:
        await self._write(
            lambda c: c.execute(
                "UPDATE users SET password = ?, token = ? WHERE base = ? AND id = ?",
                (password_hash, token, base.name, user_id),
            )
        )

    async def set_reset_code(self, base: Base, email: str, code: str) -> bool:
        cur = await self._write(
            lambda c: c.execute(
                "UPDATE users SET reset_code = ? WHERE base = ? AND email = ?", (code, base.name, email)
            )
        )
        return cur.rowcount > 0

    async def reset_password(self, base: Base, email: str, code: str, password_hash: str, token: str) -> bool:
        if not code:
            return False
        cur = await self._write(
            lambda c: c.execute(
                "UPDATE users SET password = ?, reset_code = '', token = ? "
                "WHERE base = ? AND email = ? AND reset_code = ?",
                (password_hash, token, base.name, email, code),
            )
        )
        return cur.rowcount > 0

    # allowed origins (CORS); stored |-joined, as upstream does
    async def set_whitelist(self, base_pk: str, origins: list[str]) -> bool:
        joined = "|".join(origins)
        cur = await self._write(lambda c: c.execute("UPDATE bases SET whitelist = ? WHERE pk = ?", (joined, base_pk)))
        return cur.rowcount > 0

    async def whitelist_entries(self) -> list[str]:
        rows = self._all("SELECT DISTINCT whitelist FROM bases WHERE active = 1")
        return sorted({entry for (joined,) in rows for entry in joined.split("|") if entry})

    # emails sent
    async def count_email(self, base: Base, month: str) -> int:
        row = await self._write(
            lambda c: c.execute(
                "INSERT INTO mail_counts (base, month, sent) VALUES (?, ?, 1) "
                "ON CONFLICT (base, month) DO UPDATE SET sent = sent + 1 RETURNING sent",
                (base.name, month),
            ).fetchone()
        )
        return int(row[0])

    async def emails_sent(self, base: Base, month: str) -> int:
        row = self._one("SELECT sent FROM mail_counts WHERE base = ? AND month = ?", (base.name, month))
        return int(row[0]) if row else 0

    # one's own email, roles
    async def change_email(self, base: Base, user: User, email: str, token: str, tenant_id: str = "") -> bool:
        def tx(c: sqlite3.Connection) -> bool:
            cur = c.execute(
                "UPDATE users SET email = ?, token = ? WHERE base = ? AND id = ? AND email = ?",
                (email, token, base.name, user.id, user.email),
            )
            if cur.rowcount == 0:
                return False
            c.execute(
                "UPDATE accounts SET email = ? WHERE base = ? AND id = ? AND email = ?",
                (email, base.name, user.account_id, user.email),
            )
            if tenant_id:
                c.execute("UPDATE tenants SET email = ? WHERE id = ? AND email = ?", (email, tenant_id, user.email))
            return True

        return await self._write(tx)

    async def set_role(self, base: Base, user_id: str, role: int) -> bool:
        cur = await self._write(
            lambda c: c.execute("UPDATE users SET role = ? WHERE base = ? AND id = ?", (role, base.name, user_id))
        )
        return cur.rowcount > 0
