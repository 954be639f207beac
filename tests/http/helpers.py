"""Shared helpers for the HTTP behaviour tests: response checks, users, extra servers.

``make_server`` starts further in-process apps with settings overrides (an activation flag, a small
body limit, a low failed-login limit) on every store kind, like the ``server`` fixture does.
``_pg_session_ready`` creates the session-wide PostgreSQL database before any async fixture runs:
``pg_url`` calls ``asyncio.run`` and so cannot be first requested from inside a running loop.
"""

from __future__ import annotations

import base64
import itertools
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from sbserver.app import create_app
from sbserver.types import Base, User
from tests.conftest import PG_URL, STORE_KINDS
from tests.http.conftest import DEV_PK, Server, make_settings

PASSWORD = "pw-123456"
JSON_TYPE = "application/json"
TEXT_TYPE = "text/plain; charset=utf-8"


@pytest.fixture(autouse=True)
def _pg_session_ready(request: pytest.FixtureRequest) -> None:
    if PG_URL:
        request.getfixturevalue("pg_url")


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def unique_email(prefix: str = "user") -> str:
    """Emails never repeat: the PostgreSQL database lives for a whole test session."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}@example.com"


def assert_json(r: httpx.Response, status: int = 200) -> Any:
    """A success in StaticBackend's format; returns the decoded body."""
    assert r.status_code == status, f"{r.status_code} {r.text!r}"
    assert r.headers["content-type"] == JSON_TYPE
    assert not r.text.endswith("\n")
    return r.json()


def assert_error(
    r: httpx.Response,
    status: int | None = None,
    text: str | None = None,
    *,
    startswith: str | None = None,
    contains: str | None = None,
) -> str:
    """An error in StaticBackend's format: plain text, one line ending with a newline."""
    if status is None:
        assert 400 <= r.status_code < 500, f"{r.status_code} {r.text!r}"
    else:
        assert r.status_code == status, f"expected {status}, got {r.status_code} {r.text!r}"
    assert r.headers.get("content-type") == TEXT_TYPE, r.headers
    assert r.headers.get("x-content-type-options") == "nosniff"
    body = r.text
    assert body.endswith("\n"), repr(body)
    assert body.count("\n") == 1, f"not one line: {body!r}"
    assert body.strip(), "empty reason"
    line = body[:-1]
    if text is not None:
        assert line == text, repr(body)
    if startswith is not None:
        assert line.startswith(startswith), repr(body)
    if contains is not None:
        assert contains in line, repr(body)
    return line


def _unb64(part: str) -> Any:
    return orjson.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def jwt_parts(token: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    """Decoded header, decoded payload and the raw signature of a JWT."""
    head, body, sig = token.split(".")
    return _unb64(head), _unb64(body), sig


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


async def register(client: httpx.AsyncClient, email: str | None = None, password: str = PASSWORD) -> str:
    r = await client.post("/register", json={"email": email or unique_email(), "password": password})
    token = assert_json(r)
    assert isinstance(token, str)
    return token


async def login(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> httpx.Response:
    return await client.post("/login", json={"email": email, "password": password})


async def me(client: httpx.AsyncClient, token: str) -> dict[str, Any]:
    data = assert_json(await client.get("/me", headers=auth(token)))
    assert isinstance(data, dict)
    return data


async def admin_token(server: Server) -> str:
    token = assert_json(await login(server.client, server.dev.email, server.dev.password))
    assert isinstance(token, str)
    return token


async def dev_base(server: Server) -> Base:
    base = await server.services.store.base_by_pk(DEV_PK)
    assert base is not None
    return base


async def stored_user(server: Server, email: str, pk: str = DEV_PK) -> User | None:
    base = await server.services.store.base_by_pk(pk)
    assert base is not None
    return await server.services.store.user_by_email(base, email)


async def snapshot(server: Server) -> tuple[list[tuple[str, str]], list[tuple[str, str, str, str]]]:
    """Every account and user of the dev app, to prove a refused request wrote nothing."""
    store = server.services.store
    base = await dev_base(server)
    accounts = await store.accounts(base)
    users: list[tuple[str, str, str, str]] = []
    for acct in accounts:
        users += [(u.id, u.email, u.password, u.reset_code) for u in await store.users_of_account(base, acct.id)]
    return sorted((a.id, a.email) for a in accounts), sorted(users)


@asynccontextmanager
async def extra_client(
    server: Server, *, pk: str | None = None, address: str = "127.0.0.1"
) -> AsyncIterator[httpx.AsyncClient]:
    """A client on the same app without the default public key (or with another), from ``address``.

    A crash comes back as the 500 the server answers instead of being raised in the test.
    """
    transport = httpx.ASGITransport(app=server.app, client=(address, 40000), raise_app_exceptions=False)
    headers = {"SB-PUBLIC-KEY": pk} if pk else {}
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver", headers=headers) as c:
        yield c


async def ping_ok(client: httpx.AsyncClient) -> None:
    r = await client.get("/ping")
    assert r.status_code == 200 and r.text == "true"


ServerFactory = Callable[..., AbstractAsyncContextManager[Server]]


@pytest.fixture(params=STORE_KINDS)
def make_server(request: pytest.FixtureRequest, tmp_path: Path) -> ServerFactory:
    """Start an app with settings overrides, on each store kind in turn."""
    kind = request.param
    pg_url = request.getfixturevalue("pg_url") if kind == "pg" else None
    counter = itertools.count()

    @asynccontextmanager
    async def start(**overrides: object) -> AsyncIterator[Server]:
        app = create_app(make_settings(kind, tmp_path / f"app{next(counter)}", pg_url, **overrides))
        app.state.services.tenancy.announce = lambda text: None
        async with app.router.lifespan_context(app):
            dev = await app.state.services.tenancy.dev_app()
            assert dev is not None
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://testserver", headers={"SB-PUBLIC-KEY": DEV_PK}
            ) as client:
                yield Server(app, client, dev, kind)

    return start


@dataclass(frozen=True)
class Member:
    email: str
    token: str
    user_id: str
    account_id: str
    role: int


async def member(client: httpx.AsyncClient, email: str, token: str) -> Member:
    m = await me(client, token)
    return Member(email, token, m["userId"], m["accountId"], m["role"])


async def add_user(client: httpx.AsyncClient, token: str, email: str, password: str = PASSWORD) -> dict[str, Any]:
    r = await client.post("/account/users", json={"email": email, "password": password}, headers=auth(token))
    user = assert_json(r)
    assert isinstance(user, dict)
    return user


async def accounts_ab(client: httpx.AsyncClient) -> tuple[Member, Member, Member]:
    """A1 (registered, role 50) and A2 (added by A1, role 0) in account A; B in account B."""
    a1_email, a2_email, b_email = unique_email("a1"), unique_email("a2"), unique_email("b")
    a1 = await member(client, a1_email, await register(client, a1_email))
    await add_user(client, a1.token, a2_email)
    a2 = await member(client, a2_email, assert_json(await login(client, a2_email)))
    b = await member(client, b_email, await register(client, b_email))
    return a1, a2, b


async def behind_the_servers_back(server: Server, pg_sql: str, sqlite_sql: str) -> None:
    """Change the store under a running server, as a failing disk or an operator would: one
    statement on its own connection to the PostgreSQL database or the SQLite file."""
    settings = server.services.settings
    if server.kind == "pg":
        import asyncpg

        conn = await asyncpg.connect(settings.database_url)
        try:
            await conn.execute(pg_sql)
        finally:
            await conn.close()
    else:
        import sqlite3

        db = sqlite3.connect(settings.sqlite_path)
        try:
            db.execute(sqlite_sql)
            db.commit()
        finally:
            db.close()
