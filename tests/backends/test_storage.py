"""The Store conformance suite: written once, run against every store kind in ``STORE_KINDS``.

Each test makes its own tenant, bases and users with random ids and emails, so tests can share
one PostgreSQL database. Kind-specific code is limited to building stores and reading the
migration bookkeeping, which the contract does not expose.
"""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import closing
from dataclasses import replace
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

from sbserver.backends.storage import postgresql, sqlite
from sbserver.backends.storage.base import Store
from sbserver.backends.storage.postgresql import PostgresStore, connect_args
from sbserver.backends.storage.sqlite import SQLiteStore
from sbserver.errors import Conflict, StoreError
from sbserver.types import ROLE_OWNER, ROLE_ROOT, ROLE_USER, Account, Base, Tenant, User
from tests.conftest import STORE_KINDS

NOW = "2024-05-01T10:00:00Z"


@pytest.fixture(params=[*STORE_KINDS, "sqlite-inline"])
def new_store(request: pytest.FixtureRequest, tmp_path: Any) -> Callable[[], Store]:
    """Builds unopened stores of one kind, every one on the same file or database.

    Synchronous on purpose: ``pg_url`` creates its database with ``asyncio.run``, which cannot
    run inside the event loop of an async fixture.
    """
    if request.param == "pg":
        url: str = request.getfixturevalue("pg_url")
        return lambda: PostgresStore(url)
    path = tmp_path / "sb.db"
    writer = "inline" if request.param == "sqlite-inline" else "thread"  # inline: the one-CPU mode
    return lambda: SQLiteStore(path, writer=writer)


@pytest_asyncio.fixture
async def store(new_store: Callable[[], Store]) -> AsyncIterator[Store]:
    s = new_store()
    await s.open()
    yield s
    await s.close()


def uid() -> str:
    return str(uuid.uuid4())


def email(prefix: str = "u") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}@example.com"


async def make_tenant(store: Store, **kw: Any) -> Tenant:
    tenant = Tenant(id=uid(), email=kw.pop("email", email("t")), created=kw.pop("created", NOW), **kw)
    await store.create_tenant(tenant)
    return tenant


async def make_base(store: Store, tenant_id: str | None = None, **kw: Any) -> Base:
    name = "a" + uuid.uuid4().hex[:11]
    base = Base(
        id=kw.pop("id", name),
        name=kw.pop("name", name),
        tenant_id=tenant_id or uid(),
        created=kw.pop("created", NOW),
        **kw,
    )
    await store.create_base(base)
    return base


def new_user(account_id: str, role: int = ROLE_USER, **kw: Any) -> User:
    return User(
        id=kw.pop("id", uid()),
        account_id=account_id,
        email=kw.pop("email", email()),
        token=uid(),
        role=role,
        created=kw.pop("created", NOW),
        password=kw.pop("password", "$2b$10$hash"),
        **kw,
    )


async def make_account(store: Store, base: Base, **kw: Any) -> tuple[Account, User]:
    """An account and its owner."""
    owner = new_user(uid(), ROLE_OWNER, **kw)
    account = Account(owner.account_id, owner.email, owner.created)
    await store.create_account_with_user(base, account, owner)
    return account, owner


async def migration_rows(store: Store, base: Base) -> list[tuple[Any, ...]]:
    """Every recorded migration (system, then the base's), read around the store."""
    if isinstance(store, SQLiteStore):
        with closing(sqlite3.connect(store.path)) as c:
            return c.execute("SELECT version, applied FROM sb_migrations ORDER BY version").fetchall()
    assert isinstance(store, PostgresStore)
    conn = await asyncpg.connect(store.dsn)
    try:
        rows = await conn.fetch(
            f"SELECT 0, version, applied FROM sb.migrations UNION ALL "
            f'SELECT 1, version, applied FROM "{base.name}".migrations ORDER BY 1, 2'
        )
        return [tuple(r) for r in rows]
    finally:
        await conn.close()


# plumbing


async def test_ping(new_store: Callable[[], Store]) -> None:
    s = new_store()
    assert await s.ping() is False  # not open yet: False, not an exception
    await s.open()
    assert await s.ping() is True
    await s.close()
    assert await s.ping() is False


async def test_reopen_keeps_data_and_rerunning_migrations_is_a_no_op(
    new_store: Callable[[], Store],
) -> None:
    first = new_store()
    await first.open()
    tenant = await make_tenant(first)
    base = await make_base(first, tenant.id)
    account, owner = await make_account(first, base)
    before = await migration_rows(first, base)
    await first.close()

    again = new_store()
    await again.open()
    try:
        assert await again.tenant_by_email(tenant.email) == tenant
        assert await again.base_by_pk(base.id) == base
        assert await again.accounts(base) == [account]
        assert await again.user_by_id(base, owner.id) == owner
        assert await migration_rows(again, base) == before
    finally:
        await again.close()


async def test_concurrent_opens_migrate_once(new_store: Callable[[], Store]) -> None:
    stores = [new_store() for _ in range(3)]
    await asyncio.gather(*(s.open() for s in stores))
    try:
        base = await make_base(stores[0])
        rows = await migration_rows(stores[1], base)
        versions = [r[:-1] for r in rows]  # drop the "applied" time
        assert len(versions) == len(set(versions))
        await make_account(stores[2], base)
    finally:
        await asyncio.gather(*(s.close() for s in stores))


async def test_pending_migrations_are_applied_on_open(
    new_store: Callable[[], Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    first = new_store()
    await first.open()
    base = await make_base(first)
    before = await migration_rows(first, base)
    await first.close()

    # Pretend the code gained one migration since the data was written.
    if first.kind == "pg":
        extra = "CREATE TABLE {s}.probe (x INTEGER)"
        monkeypatch.setattr(postgresql, "BASE_MIGRATIONS", [*postgresql.BASE_MIGRATIONS, extra])
    else:
        monkeypatch.setattr(sqlite, "MIGRATIONS", [*sqlite.MIGRATIONS, "CREATE TABLE probe (x INTEGER)"])
    for _ in range(2):  # the second open finds nothing to do
        s = new_store()
        await s.open()
        after = await migration_rows(s, base)
        await s.close()
        assert after[: len(before)] == before
        assert len(after) == len(before) + 1


# tenants


async def test_tenants(store: Store) -> None:
    tenant = await make_tenant(store, plan=3, active=False)
    assert await store.tenant_by_email(tenant.email) == tenant
    assert await store.tenant_by_email(email("nobody")) is None
    with pytest.raises(Conflict, match="already exists"):
        await store.create_tenant(Tenant(id=uid(), email=tenant.email, created=NOW))
    with pytest.raises(Conflict):
        await store.create_tenant(Tenant(id=tenant.id, email=email("t"), created=NOW))


# bases


async def test_bases(store: Store) -> None:
    tenant = await make_tenant(store)
    base = await make_base(store, tenant.id, whitelist=("localhost", "example.com", "app.test:8080"))
    assert await store.base_by_pk(base.id) == base
    assert await store.base_by_pk(uid()) is None

    with pytest.raises(Conflict, match="already exists"):  # same pk
        await make_base(store, tenant.id, id=base.id)
    with pytest.raises(Conflict):  # same name
        await make_base(store, tenant.id, name=base.name)
    assert await store.bases_of_tenant(tenant.id) == [base]


async def test_base_fields_round_trip(store: Store) -> None:
    tenant = await make_tenant(store)
    empty = await make_base(store, tenant.id, whitelist=(), active=False, created="2024-01-01")
    assert await store.base_by_pk(empty.id) == empty
    default = await make_base(store, tenant.id, created="2024-01-02")
    assert (await store.base_by_pk(default.id)) == default
    assert default.whitelist == ("localhost",)


async def test_bases_of_tenant_oldest_first(store: Store) -> None:
    tenant, other = await make_tenant(store), await make_tenant(store)
    created = ["2024-03-01T00:00:00Z", "2024-01-01T00:00:00Z", "2024-02-01T00:00:00Z"]
    bases = [await make_base(store, tenant.id, created=c) for c in created]
    await make_base(store, other.id)
    assert await store.bases_of_tenant(tenant.id) == sorted(bases, key=lambda b: b.created)
    assert await store.bases_of_tenant(uid()) == []


async def test_invalid_base_name_is_refused(store: Store) -> None:
    if store.kind != "pg":
        pytest.skip("only schema-per-base stores restrict base names")
    for name in ['x"; DROP SCHEMA sb; --', "a" * 64, "", "sb", "pg_catalog", "has space"]:
        with pytest.raises(StoreError, match="invalid base name"):
            await make_base(store, name=name, id=uid())


# accounts and users


async def test_create_account_with_user(store: Store) -> None:
    base = await make_base(store)
    account, owner = await make_account(store, base)
    assert await store.accounts(base) == [account]
    assert await store.user_by_email(base, owner.email) == owner
    assert await store.user_by_id(base, owner.id) == owner
    assert await store.users_of_account(base, account.id) == [owner]
    assert await store.user_by_email(base, email()) is None
    assert await store.user_by_id(base, uid()) is None
    assert await store.users_of_account(base, uid()) == []


async def test_create_account_with_user_is_atomic(store: Store) -> None:
    base = await make_base(store)
    account, owner = await make_account(store, base)
    orphan = new_user(uid(), ROLE_OWNER, email=owner.email)
    with pytest.raises(Conflict, match="already exists"):
        await store.create_account_with_user(base, Account(orphan.account_id, orphan.email, NOW), orphan)
    assert await store.accounts(base) == [account]
    assert await store.user_by_id(base, orphan.id) is None


async def test_email_unique_per_base(store: Store) -> None:
    base, other = await make_base(store), await make_base(store)
    account, owner = await make_account(store, base)
    with pytest.raises(Conflict, match="already exists"):
        await store.create_user(base, new_user(account.id, email=owner.email))
    with pytest.raises(Conflict):  # same id
        await store.create_user(base, new_user(account.id, id=owner.id))
    _, twin = await make_account(store, other, email=owner.email)
    assert await store.user_by_email(other, owner.email) == twin
    assert await store.user_by_email(base, owner.email) == owner


async def test_users_are_isolated_per_base(store: Store) -> None:
    base, other = await make_base(store), await make_base(store)
    account, owner = await make_account(store, base)
    assert await store.user_by_id(other, owner.id) is None
    assert await store.user_by_email(other, owner.email) is None
    assert await store.users_of_account(other, account.id) == []
    assert await store.accounts(other) == []
    assert await store.delete_user(other, owner.id) is False
    assert await store.user_by_id(base, owner.id) == owner


async def test_users_of_account_and_accounts_oldest_first(store: Store) -> None:
    base = await make_base(store)
    account, owner = await make_account(store, base, created="2024-01-01T00:00:00Z")
    later = [
        new_user(account.id, created="2024-03-01T00:00:00Z"),
        new_user(account.id, created="2024-02-01T00:00:00Z"),
        new_user(account.id, created="2024-02-01T00:00:00Z"),  # same time: ordered by id
    ]
    for u in later:
        await store.create_user(base, u)
    expected = [owner, *sorted(later, key=lambda u: (u.created, u.id))]
    assert await store.users_of_account(base, account.id) == expected

    second, _ = await make_account(store, base, created="2023-12-31T00:00:00Z")
    assert await store.accounts(base) == [second, account]


async def test_count_users_counts_every_account_of_one_base(store: Store) -> None:
    base, other = await make_base(store), await make_base(store)
    assert await store.count_users(base) == 0
    account, _ = await make_account(store, base)
    await store.create_user(base, new_user(account.id))
    await make_account(store, base)
    await make_account(store, other)
    assert (await store.count_users(base), await store.count_users(other)) == (3, 1)


async def test_delete_user_keeps_the_account(store: Store) -> None:
    base = await make_base(store)
    account, owner = await make_account(store, base)
    member = new_user(account.id)
    await store.create_user(base, member)
    assert await store.delete_user(base, member.id) is True
    assert await store.delete_user(base, member.id) is False
    assert await store.user_by_id(base, member.id) is None
    assert await store.users_of_account(base, account.id) == [owner]
    assert await store.accounts(base) == [account]


async def test_set_password(store: Store) -> None:
    base = await make_base(store)
    account, owner = await make_account(store, base)
    member = new_user(account.id)
    await store.create_user(base, member)
    await store.set_password(base, member.id, "$2b$10$new", "new-token")
    found = await store.user_by_id(base, member.id)
    assert found is not None and found.password == "$2b$10$new" and found.token == "new-token"
    assert await store.user_by_id(base, owner.id) == owner
    await store.set_password(base, uid(), "$2b$10$none", "t")  # unknown id: nothing happens


async def test_set_reset_code(store: Store) -> None:
    base = await make_base(store)
    _, owner = await make_account(store, base)
    assert await store.set_reset_code(base, email("nobody"), "code") is False
    assert await store.set_reset_code(base, owner.email, "c0de") is True
    found = await store.user_by_email(base, owner.email)
    assert found is not None and found.reset_code == "c0de"


async def test_reset_password(store: Store) -> None:
    base = await make_base(store)
    _, owner = await make_account(store, base)
    # The stored code is empty: an empty code must not match it.
    assert await store.reset_password(base, owner.email, "", "$2b$10$x", "t") is False
    await store.set_reset_code(base, owner.email, "c0de")
    assert await store.reset_password(base, owner.email, "wrong", "$2b$10$x", "t") is False
    assert await store.reset_password(base, email("nobody"), "c0de", "$2b$10$x", "t") is False
    assert await store.user_by_id(base, owner.id) == replace(owner, reset_code="c0de")

    assert await store.reset_password(base, owner.email, "c0de", "$2b$10$new", "new-token") is True
    found = await store.user_by_id(base, owner.id)
    assert found is not None and found.password == "$2b$10$new" and found.reset_code == ""
    assert found.token == "new-token"
    assert await store.reset_password(base, owner.email, "c0de", "$2b$10$again", "t") is False
    assert await store.reset_password(base, owner.email, "", "$2b$10$again", "t") is False


async def test_values_round_trip_identically(store: Store) -> None:
    tenant = await make_tenant(store, email=f"tënant-{uuid.uuid4().hex[:8]}@exämple.org", created="x")
    assert await store.tenant_by_email(tenant.email) == tenant
    base = await make_base(store, tenant.id, whitelist=("ünï.test", "*"), created="2024-05-01 10:00:00.123456+02:00")
    assert await store.base_by_pk(base.id) == base
    odd = [
        f"用户-{uuid.uuid4().hex[:8]}@例子.公司",
        f"Ünïcødé-{uuid.uuid4().hex[:8]}@exämple.org",
        f"emoji-😀-{uuid.uuid4().hex[:8]}@example.com",
    ]
    account, owner = await make_account(store, base, email=odd[0], created="2024-05-01T10:00:00.123456789Z")
    assert await store.accounts(base) == [account]
    for i, address in enumerate(odd[1:]):
        user = new_user(account.id, ROLE_ROOT, email=address, created=f"2024-05-0{i + 2}", reset_code="r-é")
        await store.create_user(base, user)
        assert await store.user_by_email(base, address) == user
        assert await store.user_by_id(base, user.id) == user
    assert await store.user_by_email(base, odd[0]) == owner
    # exact match; services lower-case (odd[1] has letters, so upper() always changes it)
    assert await store.user_by_email(base, odd[1].upper()) is None


async def test_concurrent_create_user_all_land(store: Store) -> None:
    base = await make_base(store)
    account, owner = await make_account(store, base)
    users = [new_user(account.id) for _ in range(200)]
    await asyncio.gather(*(store.create_user(base, u) for u in users))
    found = await store.users_of_account(base, account.id)
    assert {u.id for u in found} == {owner.id} | {u.id for u in users}
    assert len(found) == 201


async def test_concurrent_conflicts_fail_alone(store: Store) -> None:
    base = await make_base(store)
    account, owner = await make_account(store, base)
    good = [new_user(account.id) for _ in range(20)]
    bad = [new_user(account.id, email=owner.email) for _ in range(5)]
    results = await asyncio.gather(*(store.create_user(base, u) for u in good + bad), return_exceptions=True)
    assert results[: len(good)] == [None] * len(good)
    assert all(isinstance(r, Conflict) for r in results[len(good) :])
    assert len(await store.users_of_account(base, account.id)) == 1 + len(good)


# PostgreSQL connection settings (no database needed)


def test_dsn_url_passes_through() -> None:
    assert connect_args("postgresql://u:p@h:5433/db") == ("postgresql://u:p@h:5433/db", {})
    assert connect_args("") == (None, {})


def test_dsn_key_value_is_parsed() -> None:
    dsn = "host=db.local port=5433 user=sb password='se cr\\'et' dbname=app sslmode=disable connect_timeout=3"
    assert connect_args(dsn) == (
        None,
        {
            "host": "db.local",
            "port": 5433,
            "user": "sb",
            "password": "se cr'et",
            "database": "app",
            "ssl": "disable",
            "timeout": 3.0,
        },
    )
    assert connect_args("user = sb application_name=x") == (
        None,
        {"user": "sb", "server_settings": {"application_name": "x"}},
    )


def test_dsn_errors_are_explained() -> None:
    with pytest.raises(StoreError, match="unsupported key 'bogus'"):
        connect_args("host=x bogus=1")
    with pytest.raises(StoreError, match="invalid database DSN"):
        connect_args("host")
    with pytest.raises(StoreError, match="not a number"):
        connect_args("port=fast")


async def test_unreachable_postgres_raises_store_error() -> None:
    s = PostgresStore("host=127.0.0.1 port=1 user=nobody dbname=none connect_timeout=2")
    with pytest.raises(StoreError, match="database error"):
        await s.open()
    assert await s.ping() is False


async def test_pg_servers_starting_together_on_an_empty_database(pg_url: str) -> None:
    """The advisory lock: without it, concurrent first migrations collide on CREATE SCHEMA."""
    root, _, dbname = pg_url.rpartition("/")
    fresh = f"{dbname}_fresh"
    admin = await asyncpg.connect(pg_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{fresh}"')
        await admin.execute(f'CREATE DATABASE "{fresh}"')
        stores = [PostgresStore(f"{root}/{fresh}") for _ in range(8)]
        results = await asyncio.gather(*(s.open() for s in stores), return_exceptions=True)
        await asyncio.gather(*(s.close() for s in stores))
        assert results == [None] * len(stores)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{fresh}" WITH (FORCE)')
        await admin.close()


async def test_a_user_read_by_id_is_never_stale_after_a_change(store: Store) -> None:
    """Every authenticated request reads its user by id (a store may keep them in memory):
    each change to a user shows in the next read, on every store kind."""
    base = await make_base(store)
    _, owner = await make_account(store, base)
    for _ in range(2):  # read twice: a kept copy, if any, is in place
        got = await store.user_by_id(base, owner.id)
        assert got is not None and got.token == owner.token
    await store.set_password(base, owner.id, "$2b$10$other", "token-2")
    got = await store.user_by_id(base, owner.id)
    assert got is not None and (got.token, got.password) == ("token-2", "$2b$10$other")
    assert await store.reset_password(base, owner.email, "", "$2b$10$x", "token-3") is False
    assert await store.set_reset_code(base, owner.email, "code-1")
    assert (await store.user_by_id(base, owner.id)).reset_code == "code-1"  # type: ignore[union-attr]
    assert await store.reset_password(base, owner.email, "code-1", "$2b$10$third", "token-3")
    got = await store.user_by_id(base, owner.id)
    assert got is not None and got.token == "token-3" and got.reset_code == ""
    assert await store.set_role(base, owner.id, ROLE_ROOT)
    assert (await store.user_by_id(base, owner.id)).role == ROLE_ROOT  # type: ignore[union-attr]
    new_email = email("moved")
    assert await store.change_email(base, got, new_email, "token-4")
    got = await store.user_by_id(base, owner.id)
    assert got is not None and (got.email, got.token) == (new_email, "token-4")
    assert await store.delete_user(base, owner.id)
    assert await store.user_by_id(base, owner.id) is None
