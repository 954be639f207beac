"""Security hygiene (issue 13, items 3 and 9): reserved /sudo/ paths, internal error text, CORS.

Each test reproduces a hole found before the fix and shows it closed, on every store kind:

* ``/sudo/sendmail`` and ``/sudo/cache`` fell into ``/sudo/{collection}``: a POST created a document
  in a collection named ``sendmail``; now they have routes of their own (``/db/count`` and
  ``/sudo/index/`` without a collection are checked here).
* A database error reached the client with the driver's text; now the client reads
  ``internal error (request id ...)`` and the log holds the text under that id.
* CORS reflected any origin; in prod an origin must now be on the app's list (or the server's).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from sbserver.app import create_app
from sbserver.errors import BadRequest, SBError, StoreError, client_message, is_internal
from sbserver.services.tenancy import DEV_PASSWORD, DEV_PK, NewApp
from tests.compat.conftest import _fresh_database
from tests.conftest import STORE_KINDS
from tests.http.conftest import Server, make_settings
from tests.http.helpers import (
    ServerFactory,
    _pg_session_ready,
    admin_token,
    assert_error,
    assert_json,
    auth,
    behind_the_servers_back,
    extra_client,
    login,
    make_server,
    unique_email,
)

__all__ = ["_pg_session_ready", "make_server"]

SERVER_ORIGIN = "https://admin.example"


def origin_of(r: httpx.Response) -> str | None:
    return r.headers.get("access-control-allow-origin")


async def collections(client: httpx.AsyncClient, root: str) -> list[str]:
    names = assert_json(await client.get("/sudolistall", headers=auth(root)))
    assert isinstance(names, list)
    return names


# 3. Reserved routes under /sudo/


@asynccontextmanager
async def fresh_app(server: Server) -> AsyncIterator[tuple[httpx.AsyncClient, str, str]]:
    """A new app of its own (the PostgreSQL database, and so the dev app, lives for the session):
    a client on its key, its root token and its admin's session token."""
    app = await server.services.tenancy.init_account(unique_email("app"), False, False, True)
    async with extra_client(server, pk=app.base.id) as c:
        token = assert_json(await login(c, app.email, app.password))
        yield c, app.root_token, token


# /sudo/sendmail and /sudo/cache are served now: tests/http/test_sendmail.py and test_cache_routes.py
# (which also checks that "cache" never becomes a collection).


async def test_db_count_without_a_collection_is_not_a_collection(server: Server) -> None:
    async with fresh_app(server) as (c, root, token):
        for path in ("/db/count", "/db/count/"):
            assert_error(await c.post(path, headers=auth(token), json={"a": 1}), 400)
        assert_json(await c.post("/db/tasks", headers=auth(token), json={"a": 1}), 201)
        names = await collections(c, root)
        assert "tasks" in names and "count" not in names
        assert assert_json(await c.post("/db/count/tasks", headers=auth(token))) == {"count": 1}


async def test_sudo_index_keeps_its_own_route(server: Server) -> None:
    async with fresh_app(server) as (c, root, token):
        assert_error(await c.post("/sudo/index/", headers=auth(root), json={"a": 1}), 400)
        assert_json(await c.post("/db/tasks", headers=auth(token), json={"a": 1}), 201)
        names = await collections(c, root)
        assert "tasks" in names and "index" not in names


# 9a. Internal error text


async def _break_forms_table(server: Server, app: NewApp) -> None:
    """Drop the forms table under the running server, as a failed migration or an operator would."""
    await behind_the_servers_back(server, f'DROP TABLE "{app.base.name}".forms', "DROP TABLE forms")


async def test_database_error_text_is_logged_under_a_request_id_not_sent(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    app = await server.services.tenancy.init_account(unique_email("broken"), False, False, True)
    async with extra_client(server, pk=app.base.id) as c:
        assert assert_json(await c.get("/form", headers=auth(app.root_token))) == []
        await _break_forms_table(server, app)
        with caplog.at_level(logging.ERROR, logger="sbserver"):
            r = await c.get("/form", headers=auth(app.root_token))
            given = await c.get("/form", headers={**auth(app.root_token), "X-Request-Id": "trace-42.a"})
        rid = r.headers["x-request-id"]
        assert len(rid) >= 8
        line = assert_error(r, 500, f"internal error (request id {rid})")
        assert "forms" not in line and "database" not in line
        assert given.headers["x-request-id"] == "trace-42.a"
        assert_error(given, 500, "internal error (request id trace-42.a)")
        logged = [rec for rec in caplog.records if rid in rec.getMessage()]
        assert logged, [rec.getMessage() for rec in caplog.records]
        text = logged[0].getMessage() + str(logged[0].exc_info[1] if logged[0].exc_info else "")
        assert "forms" in text  # the driver's text ("no such table" / "relation ... does not exist")
        assert any("trace-42.a" in rec.getMessage() for rec in caplog.records)


async def test_request_ids_on_every_response_and_client_mistakes_keep_their_reason(server: Server) -> None:
    token = await admin_token(server)
    ok = await server.client.get("/ping")
    assert len(ok.headers["x-request-id"]) >= 8
    other = await server.client.get("/ping")
    assert other.headers["x-request-id"] != ok.headers["x-request-id"]
    for bad in ("has space", "x" * 65, "semi;colon"):
        r = await server.client.get("/ping", headers={"X-Request-Id": bad})
        assert r.headers["x-request-id"] != bad and len(r.headers["x-request-id"]) >= 8
    r = await server.client.post("/db/tasks", headers=auth(token), content=b"{not json")
    assert_error(r, 400, startswith="invalid JSON body")
    assert r.headers["x-request-id"]
    r = await server.client.get("/db/tasks", headers={"Authorization": "Token abc"})
    assert_error(r, 400, startswith="invalid authorization HTTP header")


def test_internal_errors_are_found_through_the_cause_chain() -> None:
    def wrapped(outer: type[SBError]) -> SBError:
        try:
            try:
                raise StoreError('database error: relation "x".forms does not exist')
            except StoreError as inner:
                raise outer("unable to publish: " + inner.message) from inner
        except SBError as exc:
            return exc
        raise AssertionError("not raised")

    assert is_internal(wrapped(SBError))
    assert client_message(wrapped(SBError), "r1") == "internal error (request id r1)"
    assert not is_internal(wrapped(BadRequest))  # a client mistake keeps its reason
    assert client_message(SBError("your account is inactive.")) == "your account is inactive."
    assert is_internal(ValueError("boom"))


# 9b. CORS


@dataclass
class Prod:
    app: Starlette
    a: NewApp
    b: NewApp

    def client(self, pk: str | None = None) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.app, raise_app_exceptions=False)
        headers = {"SB-PUBLIC-KEY": pk} if pk else {}
        return httpx.AsyncClient(transport=transport, base_url="http://testserver", headers=headers)


@pytest.fixture(params=STORE_KINDS)
def prod_server(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    kind = request.param
    # a database of its own: a preflight consults every app's list, and other tests' apps have lists
    pg_url = _fresh_database(request.getfixturevalue("pg_url"), "prodcors") if kind == "pg" else None

    @asynccontextmanager
    async def start() -> AsyncIterator[Prod]:
        settings = make_settings(kind, tmp_path, pg_url, app_env="prod", cors_origins=(SERVER_ORIGIN,))
        assert settings.is_prod and not settings.is_dev
        app = create_app(settings)
        tenancy = app.state.services.tenancy
        tenancy.announce = lambda text: None
        async with app.router.lifespan_context(app):
            a = await tenancy.init_account(unique_email("a"), False, False, True)
            b = await tenancy.init_account(unique_email("b"), False, False, True)
            yield Prod(app, a, b)

    return start


def preflight(origin: str) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": "post",
        "Access-Control-Request-Headers": "sb-public-key,authorization,content-type",
    }


async def test_prod_cors_follows_each_apps_list(prod_server) -> None:  # type: ignore[no-untyped-def]
    origin = f"https://shop-{uuid.uuid4().hex[:10]}.example"
    async with prod_server() as prod:
        a, b = prod.a, prod.b
        async with prod.client(a.base.id) as ca, prod.client(b.base.id) as cb, prod.client() as anon:
            # Before: nobody lists the origin; the preflight is refused, the real request unmarked.
            r = await anon.options("/db/tasks", headers=preflight(origin))
            line = assert_error(r, 403, startswith=f"origin '{origin}' is not allowed")
            assert "/account/origins" in line and origin_of(r) is None
            r = await ca.get("/account/origins", headers={**auth(a.root_token), "Origin": origin})
            assert assert_json(r) == {"origins": ["localhost"], "server": [SERVER_ORIGIN]}
            assert origin_of(r) is None

            # App B lists it: preflights pass, B's requests are marked, A's still are not.
            r = await cb.post("/account/origins", headers=auth(b.root_token), json={"origins": [origin + "/"]})
            assert assert_json(r) == {"origins": [origin], "server": [SERVER_ORIGIN]}
            r = await anon.options("/db/tasks", headers=preflight(origin))
            assert r.status_code == 200 and r.content == b""
            assert origin_of(r) == origin and r.headers["access-control-allow-methods"] == "POST"
            r = await cb.get("/account/origins", headers={**auth(b.root_token), "Origin": origin})
            assert origin_of(r) == origin
            r = await ca.get("/account/origins", headers={**auth(a.root_token), "Origin": origin})
            assert r.status_code == 200 and origin_of(r) is None
            r = await ca.options(f"/db/tasks?sbpk={a.base.id}", headers=preflight(origin))
            assert_error(r, 403)  # a preflight naming app A by sbpk follows A's list

            # App A lists it too: now A's requests are marked, errors included.
            r = await ca.post("/account/origins", headers=auth(a.root_token), json={"origins": ["localhost", origin]})
            assert assert_json(r)["origins"] == ["localhost", origin]
            r = await ca.get("/db/tasks", headers={"Origin": origin})
            assert_error(r, 401)
            assert origin_of(r) == origin

            # The default entry and the server-wide list; unlisted origins stay unmarked.
            r = await ca.get("/db/tasks", headers={"Origin": "http://localhost:5173"})
            assert origin_of(r) == "http://localhost:5173"
            assert origin_of(await cb.get("/db/tasks", headers={"Origin": "http://localhost:5173"})) is None
            r = await anon.options("/account/init", headers=preflight(SERVER_ORIGIN))
            assert r.status_code == 200 and origin_of(r) == SERVER_ORIGIN
            assert origin_of(await anon.get("/ping", headers={"Origin": SERVER_ORIGIN})) == SERVER_ORIGIN
            assert origin_of(await anon.get("/ping", headers={"Origin": origin})) is None
            assert origin_of(await cb.get("/ping", headers={"Origin": "https://evil.example"})) is None

            # B empties its list: B's requests lose the header at once.
            r = await cb.post("/account/origins", headers=auth(b.root_token), json={"origins": []})
            assert assert_json(r)["origins"] == []
            assert origin_of(await cb.get("/db/tasks", headers={"Origin": origin})) is None


async def test_origin_list_edits_are_checked(prod_server) -> None:  # type: ignore[no-untyped-def]
    async with prod_server() as prod:
        a = prod.a
        async with prod.client(a.base.id) as c:
            for body, reason in (
                ({"origins": ["https://a.example/path"]}, "invalid origin 1 "),
                ({"origins": ["localhost", "ftp://a.example"]}, "invalid origin 2 "),
                ({"origins": ["a|b-"]}, "invalid origin 1 "),
                ({"origins": ["https://u@a.example"]}, "invalid origin 1 "),
                ({"origins": [3]}, "invalid origin 1: expected a string"),
                ({"origins": "https://a.example"}, "invalid origins: expected a list"),
                ({"origins": ["a.example"] * 101}, "invalid origins: 101 entries"),
                ({"list": []}, "invalid JSON body"),
            ):
                r = await c.post("/account/origins", headers=auth(a.root_token), json=body)
                assert_error(r, 400, startswith=reason)
            assert_error(await c.post("/account/origins", json={"origins": []}), 401)
            assert_error(await c.get("/account/origins", headers=auth(prod.b.root_token)), 400)
            r = await c.post(
                "/account/origins", headers=auth(a.root_token), json={"origins": ["*.App.example", "http://[::1]:3000"]}
            )
            assert assert_json(r)["origins"] == ["*.app.example", "http://[::1]:3000"]
            got = assert_json(await c.get("/account/origins", headers=auth(a.root_token)))
            assert got["origins"] == ["*.app.example", "http://[::1]:3000"]
            assert (
                origin_of(await c.get("/ping", headers={"Origin": "https://x.app.example"})) == "https://x.app.example"
            )
            assert origin_of(await c.get("/ping", headers={"Origin": "https://app.example"})) is None


async def test_prod_account_init_ignores_memory_mode(prod_server) -> None:  # type: ignore[no-untyped-def]
    async with prod_server() as prod, prod.client() as c:
        store = prod.app.state.services.store
        had_dev_app = await store.base_by_pk(DEV_PK) is not None  # the PostgreSQL database is shared
        r = await c.get(f"/account/init?email={unique_email()}&mem=1", headers={"Accept": "application/json"})
        creds = assert_json(r)
        assert creds["pk"] != DEV_PK and creds["pw"] != DEV_PASSWORD
        assert (await store.base_by_pk(DEV_PK) is not None) == had_dev_app


async def test_dev_mode_reflects_any_origin(server: Server) -> None:
    origin = f"https://anything-{uuid.uuid4().hex[:8]}.example"
    r = await server.client.options("/db/tasks", headers=preflight(origin))
    assert r.status_code == 200 and origin_of(r) == origin
    assert r.headers["access-control-allow-methods"] == "POST"
    assert r.headers["access-control-allow-headers"] == "sb-public-key,authorization,content-type"
    token = await admin_token(server)
    r = await server.client.get(
        "/db/tasks", headers={**auth(token), "Origin": origin, "Access-Control-Request-Method": "get"}
    )
    assert r.status_code == 200 and origin_of(r) == origin
    assert r.headers["access-control-allow-methods"] == "GET"


async def test_every_answer_carries_one_request_id_and_one_set_of_cors_headers(make_server: ServerFactory) -> None:
    """The edge layer adds its headers once, whoever answers: a route, a preflight, the body
    limit by Content-Length or while the body streams, or a request that fails to match."""
    origin = {"Origin": "https://app.example", "Access-Control-Request-Method": "post"}

    async def streamed() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b"x" * 100

    async with make_server(max_body_bytes=1000) as srv, extra_client(srv, pk=DEV_PK) as c:
        answers = [
            await c.get("/ping", headers=origin),
            await c.options("/db/tasks", headers=origin),
            await c.post("/register", headers=origin, content=b"x" * 1001),
            await c.post("/register", headers=origin, content=streamed()),
            await c.get("/no/such/route", headers=origin),
            await c.put("/ping", headers=origin),
        ]
        assert [r.status_code for r in answers] == [200, 200, 413, 413, 404, 405]
        ids = set()
        for r in answers:
            assert len(r.headers.get_list("x-request-id")) == 1, r.headers
            ids.add(r.headers["x-request-id"])
            assert r.headers.get_list("access-control-allow-origin") == ["https://app.example"], r.headers
            assert r.headers.get_list("access-control-allow-methods") == ["POST"]
            vary = r.headers.get_list("vary")
            assert sorted(vary) == sorted(set(vary)) and "Origin" in vary, vary
        assert len(ids) == len(answers)  # each its own
        given = await c.get("/ping", headers={**origin, "X-Request-Id": "trace-7"})
        assert given.headers.get_list("x-request-id") == ["trace-7"]
