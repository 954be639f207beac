"""Real server processes for the realtime tests, one set per pytest-xdist worker.

``rt`` is parametrised over the bus: ``memory`` (SQLite, in-process bus) always, ``redis`` (SQLite,
``REDIS_URL``) when ``SB_TEST_REDIS_URL`` is set. Each server gets one fresh app for the session
(topics are namespaced by app, so servers sharing a Redis database never see each other's
channels) and tests use channel and collection names of their own. The main servers send an SSE
keep-alive comment every second (item 28).

The fault tests use servers with small limits (``limits_server``, ``slow_server``,
``connlimit_server``), a Redis server of their own whose connections they cut (``outage_server``),
and ``cluster``: two processes on one PostgreSQL database and one Redis sharing a JWT secret.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import httpx
import pytest

from tests.compat.conftest import _fresh_database
from tests.conftest import BUS_KINDS
from tests.realtime.support import App, Realtime, Server, new_app, running_server, unique_email

MakeRealtime = Callable[[Server], Awaitable[Realtime]]


def _app_of(server: Server) -> App:
    r = httpx.get(
        server.url + "/account/init",
        params={"email": unique_email("owner"), "ui": "1"},
        headers={"Accept": "application/json"},
        timeout=15,
    )
    assert r.status_code == 200, f"/account/init answered {r.status_code}: {r.text}"
    return App(pk=r.json()["pk"], root=r.json()["rootToken"])


@pytest.fixture(scope="session", params=BUS_KINDS)
def rt_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    bus: str = request.param
    env = {"SB_SSE_KEEPALIVE_SECONDS": "1"}
    if bus == "redis":
        env["REDIS_URL"] = request.getfixturevalue("redis_url")
    with running_server(tmp_path_factory.mktemp(f"rt-{bus}"), env, bus) as server:
        yield server


@pytest.fixture(scope="session")
def rt_app(rt_server: Server) -> App:
    return _app_of(rt_server)


@pytest.fixture
async def rt(rt_server: Server, rt_app: App) -> AsyncIterator[Realtime]:
    """The test's handle on a main server (both buses), its app, users and clients."""
    session = Realtime(rt_server, rt_app)
    yield session
    await session.aclose()


@pytest.fixture
async def realtime_on() -> AsyncIterator[MakeRealtime]:
    """``await realtime_on(server)``: a handle with a fresh app on another server."""
    made: list[Realtime] = []

    async def make(server: Server) -> Realtime:
        async with httpx.AsyncClient(timeout=15) as http:
            app = await new_app(http, server.url)
        session = Realtime(server, app)
        made.append(session)
        return session

    yield make
    for session in made:
        await session.aclose()


@pytest.fixture(scope="session")
def limits_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Messages of at most 1000 bytes, 20 commands a second per connection."""
    env = {"SB_REALTIME_MAX_MESSAGE": "1000", "SB_REALTIME_RATE": "20"}
    with running_server(tmp_path_factory.mktemp("rt-limits"), env) as server:
        yield server


@pytest.fixture(scope="session")
def slow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A connection more than 50 envelopes behind is cut off."""
    env = {"SB_REALTIME_QUEUE_LIMIT": "50"}
    with running_server(tmp_path_factory.mktemp("rt-slow"), env) as server:
        yield server


@pytest.fixture(scope="session")
def connlimit_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("rt-connlimit"), {"SB_REALTIME_MAX_CONNECTIONS": "2"}) as server:
        yield server


@pytest.fixture(scope="session")
def outage_server(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Server]:
    """A Redis-bus server whose Redis connections a test may cut."""
    with running_server(tmp_path_factory.mktemp("rt-outage"), {"REDIS_URL": redis_url}, "redis") as server:
        yield server


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory, redis_url: str, pg_url: str) -> Iterator[tuple[Server, Server]]:
    """Two processes sharing one PostgreSQL database, one Redis and one JWT secret."""
    database = _fresh_database(pg_url, "rt")
    env = {"DATA_STORE": "pg", "DATABASE_URL": database, "REDIS_URL": redis_url}
    with (
        running_server(tmp_path_factory.mktemp("rt-p1"), env, "redis") as p1,
        running_server(tmp_path_factory.mktemp("rt-p2"), env, "redis") as p2,
    ):
        yield p1, p2
