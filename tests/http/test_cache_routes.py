"""``/sudo/cache`` (spec 02 §7.2, spec 09 items 106-107): an app's cache values and queues.

Every test runs on both caches (the in-process one with SQLite, Redis with PostgreSQL), each on a
fresh app of its own: values and queues are the app's only (another app, with any key, reads
nothing of them, nor the server's own entries), bad input is a 400 that says why and stores
nothing, and the functions' ``cacheGet``/``cacheSet``/``inc`` see the same values.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from sbserver.app import create_app
from sbserver.services.identity import DEV_ROOT_KEY
from sbserver.services.tenancy import DEV_PK
from tests.functions.support import FnApi, logged
from tests.http.conftest import Server, make_settings
from tests.http.helpers import assert_error, assert_json, auth, extra_client, login, unique_email

KINDS = [("sqlite", "memory"), ("pg", "redis")]


@dataclass
class App:
    client: httpx.AsyncClient  # carries the app's public key
    name: str
    root: str
    token: str  # the admin's session token

    async def set(self, key: str, value: str, kind: str = "") -> httpx.Response:
        body = {"key": key, "value": value, **({"type": kind} if kind else {})}
        return await self.client.post("/sudo/cache", headers=auth(self.root), json=body)

    async def set_ok(self, key: str, value: str, kind: str = "") -> None:
        r = await self.set(key, value, kind)
        assert r.status_code == 200 and r.text == "true", (r.status_code, r.text)

    async def get(self, key: str, queue: bool = False) -> httpx.Response:
        params = {"key": key, **({"type": "queue"} if queue else {})}
        return await self.client.get("/sudo/cache", headers=auth(self.root), params=params)

    async def value(self, key: str) -> str | None:
        """The value, or None on the 404 of a missing key."""
        r = await self.get(key)
        if r.status_code == 404:
            assert_error(r, 404, "key not found in cache")
            return None
        got = assert_json(r)
        assert isinstance(got, str)
        return got

    async def pop(self, key: str) -> str:
        got = assert_json(await self.get(key, queue=True))
        assert isinstance(got, str)
        return got


Start = Callable[..., AbstractAsyncContextManager[Server]]


@pytest.fixture(params=KINDS, ids=["-".join(k) for k in KINDS])
def start(request: pytest.FixtureRequest, tmp_path: Path) -> Start:
    store, cache = request.param
    pg_url = request.getfixturevalue("pg_url") if store == "pg" else None
    redis_url = request.getfixturevalue("redis_url") if cache == "redis" else ""

    @asynccontextmanager
    async def run(**overrides: object) -> AsyncIterator[Server]:
        settings = make_settings(store, tmp_path, pg_url, redis_url=redis_url, **overrides)
        app = create_app(settings)
        app.state.services.tenancy.announce = lambda text: None
        async with app.router.lifespan_context(app):
            dev = await app.state.services.tenancy.dev_app()
            assert dev is not None
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://testserver", headers={"SB-PUBLIC-KEY": DEV_PK}
            ) as client:
                yield Server(app, client, dev, f"{store}-{cache}")

    return run


@pytest.fixture
async def server(start: Start) -> AsyncIterator[Server]:
    async with start() as s:
        yield s


@asynccontextmanager
async def new_app(server: Server) -> AsyncIterator[App]:
    app = await server.services.tenancy.init_account(unique_email("cache"), False, False, True)
    async with extra_client(server, pk=app.base.id) as c:
        token = assert_json(await login(c, app.email, app.password))
        yield App(c, app.base.name, app.root_token, token)


async def test_106_a_set_value_is_read_back_and_invisible_from_another_app(server: Server) -> None:
    async with new_app(server) as a, new_app(server) as b:
        await a.set_ok("k", "v")
        assert await a.value("k") == "v"
        assert await b.value("k") is None
        await b.set_ok("k", "b's")
        assert await a.value("k") == "v" and await b.value("k") == "b's"
        await a.set_ok("k", "replaced")
        assert await a.value("k") == "replaced" and await b.value("k") == "b's"


async def test_107_a_queue_pops_in_order_then_answers_empty(server: Server) -> None:
    async with new_app(server) as a, new_app(server) as b:
        await a.set_ok("jobs", "1", "queue")
        await a.set_ok("jobs", "2", "queue")
        assert await b.pop("jobs") == ""  # another app's queue of the same name is its own
        assert [await a.pop("jobs") for _ in range(3)] == ["1", "2", ""]
        assert await a.pop("never-pushed") == ""


async def test_values_round_trip_as_sent(server: Server) -> None:
    async with new_app(server) as a:
        samples = {
            "settings": '{"theme":"dark"}',  # the Go client stores JSON-encoded values as strings
            "empty": "",
            "unicode": "héllo ✓ 🎉",
            "with spaces/and:colons_and_underscores": "x",
            "k" * 256: "longest key",
        }
        for key, value in samples.items():
            await a.set_ok(key, value)
        for key, value in samples.items():
            assert await a.value(key) == value, key
        assert await a.value("missing") is None


async def test_a_value_and_a_queue_of_the_same_name_are_separate(server: Server) -> None:
    async with new_app(server) as a:
        await a.set_ok("same", "value")
        await a.set_ok("same", "queued", "queue")
        assert await a.value("same") == "value"
        assert await a.pop("same") == "queued"
        assert await a.pop("same") == ""
        assert await a.value("same") == "value"
        await a.set_ok("only-queued", "q", "queue")
        assert await a.value("only-queued") is None
        assert await a.pop("only-queued") == "q"


async def test_keys_cannot_reach_another_app_or_the_servers_entries(server: Server) -> None:
    """Whatever a key holds (separators, another app's name or prefix, the server's own key
    names), it names an entry of the caller's app only."""
    cache = server.services.cache
    dev_root = await cache.get(DEV_ROOT_KEY)
    assert dev_root  # the server's own entry, in the same cache
    async with new_app(server) as a, new_app(server) as b:
        await b.set_ok("k", "b secret")
        await b.set_ok("k", "b queued", "queue")
        tricky = [
            f"{b.name}_k",
            f"_{b.name}_k",
            f"{b.name}:k",
            f":{b.name}:k",
            f"app:{b.name}:k",
            f"../{b.name}/k",
            f"{a.name}_{b.name}_k",
            DEV_ROOT_KEY,
            "rl:register:address:127.0.0.1",
        ]
        for key in tricky:
            assert await a.value(key) is None, key
            assert await a.pop(key) == "", key
            await a.set_ok(key, "from a")
            await a.set_ok(key, "from a", "queue")
        # the marker: a reads its own writes under every one of those keys
        for key in tricky:
            assert await a.value(key) == "from a", key
        assert await b.value("k") == "b secret"
        assert await b.pop("k") == "b queued"
        assert await b.pop("k") == ""
        assert await cache.get(DEV_ROOT_KEY) == dev_root
        # the dev app's name holds "_": another app cannot land on its keys through that either
        dev = App(server.client, DEV_PK, server.dev.root_token, "")
        await dev.set_ok("memory_pk_k", "dev value")
        assert await a.value("memory_pk_k") is None
        assert await dev.value("memory_pk_k") == "dev value"


async def test_bad_input_is_a_400_with_the_reason_and_stores_nothing(server: Server) -> None:
    async with new_app(server) as a:
        post = a.client.post
        h = auth(a.root)
        cases: list[tuple[httpx.Response, str]] = [
            (await post("/sudo/cache", headers=h, content=b"{not json"), "invalid JSON body"),
            (await post("/sudo/cache", headers=h, content=b""), "invalid JSON body"),
            (await post("/sudo/cache", headers=h, json=["k", "v"]), "invalid JSON body: expected an object"),
            (await post("/sudo/cache", headers=h, json={"key": "bad", "value": 5}), 'invalid field "value"'),
            (await post("/sudo/cache", headers=h, json={"key": "bad", "value": {"a": 1}}), 'invalid field "value"'),
            (await post("/sudo/cache", headers=h, json={"key": 7, "value": "v"}), 'invalid field "key"'),
            (
                await post("/sudo/cache", headers=h, json={"key": "bad", "value": "v", "type": 1}),
                'invalid field "type"',
            ),
            (await post("/sudo/cache", headers=h, json={"value": "v"}), "missing key"),
            (await a.set("", "v"), "missing key"),
            (await a.set("k" * 257, "v"), "invalid key: 257 characters, at most 256"),
            (await a.set("bad\nkey", "v"), "invalid key: control characters"),
            (await a.set("bad", "x" * (1024 * 1024 + 1)), "value too large: 1048577 bytes, at most 1048576"),
            (await a.set("bad", "é" * (512 * 1024 + 1), "queue"), "value too large: 1048578 bytes"),
            (await a.get(""), "missing key"),
            (await a.client.get("/sudo/cache", headers=h), "missing key"),
            (await a.get("k" * 257, queue=True), "invalid key"),
        ]
        for r, reason in cases:
            line = assert_error(r, 400)
            assert line.startswith(reason), (reason, line)
        assert await a.value("bad") is None
        assert await a.pop("bad") == ""
        # exactly at the limits is fine
        await a.set_ok("big", "x" * (1024 * 1024))
        assert await a.value("big") == "x" * (1024 * 1024)


async def test_a_full_queue_refuses_more_until_popped(start: Start) -> None:
    async with start(cache_max_queue_length=3) as server, new_app(server) as a, new_app(server) as b:
        for i in range(3):
            await a.set_ok("q", str(i), "queue")
        assert_error(await a.set("q", "3", "queue"), 400, "queue 'q' is full: it holds 3 values, pop some first")
        await b.set_ok("q", "b", "queue")  # per app and per queue
        await a.set_ok("other", "x", "queue")
        assert await a.pop("q") == "0"
        await a.set_ok("q", "after", "queue")
        assert [await a.pop("q") for _ in range(4)] == ["1", "2", "after", ""]


async def test_values_expire_after_the_ttl_and_queues_do_not(start: Start) -> None:
    async with start(cache_ttl_seconds=0.3) as server, new_app(server) as a:
        await a.set_ok("short", "lived")
        await a.set_ok("kept", "queued", "queue")
        assert await a.value("short") == "lived"
        deadline = asyncio.get_running_loop().time() + 5
        while await a.value("short") is not None:
            assert asyncio.get_running_loop().time() < deadline, "the value never expired"
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # a full TTL after the value went: the queue is still there
        assert await a.pop("kept") == "queued"


async def test_root_only(server: Server) -> None:
    async with new_app(server) as a, new_app(server) as b:
        await a.set_ok("k", "v")
        body = {"key": "k", "value": "x"}
        refusals = (
            ({}, 401, "missing authorization"),
            (auth(a.token), 400, "invalid root token"),  # a session token
            (auth(b.root), 400, "invalid root token: no such user in this app"),  # another app's root
        )
        for headers, status, reason in refusals:
            for r in (
                await a.client.get("/sudo/cache", headers=headers, params={"key": "k"}),
                await a.client.post("/sudo/cache", headers=headers, json=body),
                await a.client.post("/sudo/cache", headers=headers, json={**body, "type": "queue"}),
            ):
                assert assert_error(r, status).lower().startswith(reason), r.text
        assert await a.value("k") == "v"
        assert await a.pop("k") == ""


async def test_other_methods_answer_405_and_the_path_is_never_a_collection(server: Server) -> None:
    async with new_app(server) as a:
        await a.set_ok("k", "v")
        await a.set_ok("q", "1", "queue")
        for path in ("/sudo/cache", "/sudo/cache/"):
            for method in ("PUT", "DELETE", "PATCH", "HEAD"):
                r = await a.client.request(method, path, headers=auth(a.root), params={"key": "q", "type": "queue"})
                assert r.status_code == 405, (method, path, r.status_code, r.text)
                assert r.headers["allow"] == "GET, POST"
            r = await a.client.post(path + "?bulk=1", headers=auth(a.root), json={"key": "k2", "value": "w"})
            assert r.status_code == 200 and r.text == "true"
        assert assert_json(await a.client.get("/sudo/cache/", headers=auth(a.root), params={"key": "k"})) == "v"
        assert await a.value("k2") == "w"
        assert await a.pop("q") == "1"  # HEAD popped nothing
        names = assert_json(await a.client.get("/sudolistall", headers=auth(a.root)))
        assert "cache" not in names
        # the marker: "cache" is still an ordinary collection through /db/ and the /sudo/ id paths
        doc = assert_json(await a.client.post("/db/cache", headers=auth(a.token), json={"t": 1}), 201)
        got = assert_json(await a.client.get(f"/sudo/cache/{doc['id']}", headers=auth(a.root)))
        assert got["t"] == 1


async def test_functions_see_the_same_values(server: Server) -> None:
    """Spec 05 §6.3: ``cacheGet``/``cacheSet``/``inc`` use the app's keys, those of /sudo/cache."""
    async with new_app(server) as a, new_app(server) as b:
        fn = FnApi(a.client, a.client.headers["SB-PUBLIC-KEY"], a.root)
        code = """function handle(body) {
          log(JSON.stringify(cacheGet("from-http")));
          log(JSON.stringify(cacheSet("from-fn", "set by a function")));
          log(JSON.stringify(inc("counter", 5)));
        }"""
        await fn.add_ok("cache-fn", "web", code)
        await a.set_ok("from-http", "set over http")
        await b.set_ok("from-http", "b's")
        user = await fn.register()
        got, stored, counted = logged(await fn.exec_ok("cache-fn", user.jwt, {}))
        assert got == {"ok": True, "content": "set over http"}, got
        assert stored == {"ok": True} or stored == {"ok": True, "content": None}, stored
        assert counted == {"ok": True, "content": 5}, counted
        assert await a.value("from-fn") == "set by a function"
        assert await a.value("counter") == "5"
        assert await b.value("from-fn") is None and await b.value("counter") is None
