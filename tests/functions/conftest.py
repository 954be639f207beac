"""Fixtures of the functions tests.

``fn``: a fresh app on an in-process server, on every store kind (SQLite always, PostgreSQL when
``SB_TEST_PG_URL`` is set). ``make_fn`` starts further in-process servers with settings overrides
(a short timeout, another primary instance ...). Every test gets apps of its own (through
``/account/init``): on PostgreSQL the database lives for the whole session, so the dev app is
shared and is only read.

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

from sbserver.app import create_app
from tests.compat.conftest import _fresh_database, js_client_dir
from tests.conftest import PG_URL, REDIS_URL, STORE_KINDS
from tests.functions.local_http import LocalHTTP, serve
from tests.functions.support import FnApi, Process, server_process
from tests.http.conftest import DEV_PK, Server, make_settings

__all__ = ["js_client_dir"]  # the compat suite's fixture: installs @staticbackend/js when needed

LIVE_KINDS = ["sqlite", "pg"] if PG_URL and REDIS_URL else ["sqlite"]
FAST = {"function_workers": 2, "function_poll_seconds": 0.5}


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


MakeFn = Callable[..., AbstractAsyncContextManager[InProcess]]


@pytest.fixture(params=STORE_KINDS)
def make_fn(request: pytest.FixtureRequest, tmp_path: Path) -> MakeFn:
    """``async with make_fn(**settings_overrides) as env``: an in-process server on each store kind."""
    kind = request.param
    pg_url = request.getfixturevalue("pg_url") if kind == "pg" else None
    counter = itertools.count()

    @asynccontextmanager
    async def start(**overrides: object) -> AsyncIterator[InProcess]:
        settings = make_settings(kind, tmp_path / f"app{next(counter)}", pg_url, **{**FAST, **overrides})
        app = create_app(settings)
        app.state.services.tenancy.announce = lambda text: None
        async with app.router.lifespan_context(app):
            dev = await app.state.services.tenancy.dev_app()
            assert dev is not None
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver", timeout=30) as client:
                server = Server(app, client, dev, kind)
                api = await FnApi(client, DEV_PK, dev.root_token).new_app()
                yield InProcess(server, api)

    return start


@pytest.fixture
async def env(make_fn: MakeFn) -> AsyncIterator[InProcess]:
    async with make_fn() as started:
        yield started


@pytest.fixture
def fn(env: InProcess) -> FnApi:
    return env.api


@pytest.fixture(scope="session", params=LIVE_KINDS)
def live(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
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
    async with httpx.AsyncClient(timeout=30) as http:
        yield await FnApi(http, "", "", live.url).new_app()


@pytest.fixture(scope="session")
def local_http() -> Iterator[LocalHTTP]:
    """An HTTP server on 127.0.0.1 recording the requests functions make with ``fetch``."""
    yield from serve()
