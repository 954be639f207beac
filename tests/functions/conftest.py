"""Fixtures of the functions tests.

``fn``: a fresh app (through ``/account/init``) on an in-process server shared by the worker's
session, on every store kind (SQLite always, PostgreSQL when ``SB_TEST_PG_URL`` is set). Modules
using it run their tests in the session's event loop (``pytestmark``). ``make_fn`` starts a server
of its own with settings overrides (a short timeout, another primary instance ...). The dev app
is shared and is only read.

``live``: a real server process per xdist worker, for what needs SSE/WebSocket or a real socket:
SQLite with the in-process bus always, PostgreSQL with Redis when both test URLs are set.
``live_fn`` is a fresh app on it.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from sbserver.app import create_app
from tests.compat.conftest import _fresh_database, js_client_dir
from tests.conftest import LIVE_KINDS, PG_URL, STORE_KINDS
from tests.functions.local_http import LocalHTTP, serve
from tests.functions.support import FnApi, Process, server_process
from tests.http.conftest import DEV_PK, Server, make_settings

__all__ = ["js_client_dir"]  # the compat suite's fixture: installs @staticbackend/js when needed

# The local HTTP servers functions fetch from listen on 127.0.0.1, which the outbound guard refuses.
FAST = {"function_workers": 2, "function_poll_seconds": 0.5, "fetch_allow": ("127.0.0.1",)}


@pytest.fixture(autouse=True)
def _pg_session_ready(request: pytest.FixtureRequest) -> None:
    """``pg_url`` calls ``asyncio.run``: create it before any async fixture runs."""
    if PG_URL:
        request.getfixturevalue("pg_url")


@dataclass
class InProcess:
    """An in-process server and the API of a fresh app on it."""

    server: Server
    api: FnApi

    @property
    def store(self) -> Any:
        return self.server.services.store

    async def base(self, api: FnApi | None = None) -> Any:
        base = await self.store.base_by_pk((api or self.api).pk)
        assert base is not None
        return base


@asynccontextmanager
async def in_process(kind: str, data_dir: Path, pg_url: str | None, **overrides: object) -> AsyncIterator[Server]:
    app = create_app(make_settings(kind, data_dir, pg_url, **{**FAST, **overrides}))
    app.state.services.tenancy.announce = lambda text: None
    async with app.router.lifespan_context(app):
        dev = await app.state.services.tenancy.dev_app()
        assert dev is not None
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver", timeout=30) as client:
            yield Server(app, client, dev, kind)


@pytest.fixture(scope="session", params=STORE_KINDS)
def store_kind(request: pytest.FixtureRequest) -> tuple[str, str | None]:
    """The store kind and, for PostgreSQL, this worker's database (created outside any event loop)."""
    kind: str = request.param
    return kind, request.getfixturevalue("pg_url") if kind == "pg" else None


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def shared_server(
    store_kind: tuple[str, str | None], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Server]:
    """One in-process server per store kind for the worker's session (its worker pool stays warm)."""
    kind, pg_url = store_kind
    async with in_process(kind, tmp_path_factory.mktemp(f"fn-inproc-{kind}"), pg_url) as server:
        yield server


@pytest_asyncio.fixture(loop_scope="session")
async def env(shared_server: Server) -> InProcess:
    """A fresh app on the shared in-process server (tests using it run in the session's event loop)."""
    return InProcess(shared_server, await FnApi(shared_server.client, DEV_PK, shared_server.dev.root_token).new_app())


@pytest.fixture
def fn(env: InProcess) -> FnApi:
    return env.api


MakeFn = Callable[..., AbstractAsyncContextManager[InProcess]]


@pytest.fixture(params=STORE_KINDS)
def make_fn(request: pytest.FixtureRequest, tmp_path: Path) -> MakeFn:
    """``async with make_fn(**settings_overrides) as env``: a server of its own, on each store kind.

    On PostgreSQL it gets a database of its own: its job queue must not be seen by the shared server.
    """
    kind = request.param
    pg_url = _fresh_database(request.getfixturevalue("pg_url"), "fnmake") if kind == "pg" else None
    counter = itertools.count()

    @asynccontextmanager
    async def start(**overrides: object) -> AsyncIterator[InProcess]:
        async with in_process(kind, tmp_path / f"app{next(counter)}", pg_url, **overrides) as server:
            yield InProcess(server, await FnApi(server.client, DEV_PK, server.dev.root_token).new_app())

    return start


@pytest.fixture(scope="session", params=LIVE_KINDS)
def live(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    """A server process for the worker's session (a database of its own on PostgreSQL)."""
    kind: str = request.param
    settings = {"SB_FUNCTION_WORKERS": "2", "SB_FUNCTION_POLL_SECONDS": "1"}
    if kind == "pg":
        settings.update(
            {
                "DATA_STORE": "pg",
                "DATABASE_URL": _fresh_database(request.getfixturevalue("pg_url"), "fnlive"),
                "REDIS_URL": request.getfixturevalue("redis_url"),
            }
        )
    with server_process(tmp_path_factory.mktemp(f"fn-live-{kind}"), settings) as proc:
        yield proc


@pytest.fixture
async def live_fn(live: Process) -> AsyncIterator[FnApi]:
    """A fresh app on ``live``."""
    async with httpx.AsyncClient(timeout=30) as http:
        yield await FnApi(http, "", "", live.url).new_app()


@pytest.fixture(scope="session")
def local_http() -> Iterator[LocalHTTP]:
    """An HTTP server on 127.0.0.1 recording the requests functions make with ``fetch``."""
    yield from serve()
