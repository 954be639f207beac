"""Scheduler fixtures: in-process apps with a fake clock, real server processes, an HTTP target.

``make_sched`` opens one or more in-process apps on ONE store (two SQLite apps on one file, or
two apps on one PostgreSQL database), each with its scheduler loop off and ``TaskService.clock``
set to a shared :class:`FakeClock`; the test ticks them itself (``Sched.tick``). Every opening
makes a fresh app (base) unless given one, and deletes its tasks on exit unless told to keep
them. Fake times are in 2030, so no real scheduler loop elsewhere in the suite ever fires them.

``live`` is a real ``python -m sbserver server`` per worker and store kind (scheduler on, real
time); ``cluster`` is three processes sharing one PostgreSQL database and one Redis (only when
``SB_TEST_PG_URL`` and ``SB_TEST_REDIS_URL`` are set). ``target`` is the recording HTTP server
http tasks call.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, ExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from sbserver.app import create_app
from sbserver.services.tasks import TaskService
from sbserver.types import TaskRun
from tests.compat.conftest import _fresh_database, js_client_dir
from tests.conftest import PG_URL, STORE_KINDS, missing_service, run_async
from tests.functions.support import Process, server_process
from tests.http.conftest import DEV_PK, Server, make_settings
from tests.scheduler.support import FakeClock, Target, TaskApi, serve_target, utc

__all__ = ["js_client_dir"]

# Scheduler loop off: the test is the only one ticking. The HTTP target listens on 127.0.0.1,
# which the outbound guard refuses unless opened.
IN_PROCESS = {
    "scheduler_enabled": False,
    "function_workers": 2,
    "function_poll_seconds": 0.5,
    "fetch_allow": ("127.0.0.1",),
}
T0 = utc("2030-01-07T05:59:30")  # a Monday, 30 s before 06:00 UTC


@pytest.fixture(autouse=True)
def _pg_session_ready(request: pytest.FixtureRequest) -> None:
    """``pg_url`` creates the worker's database: do it before any async fixture runs."""
    if PG_URL:
        request.getfixturevalue("pg_url")


@dataclass
class Node:
    """One in-process app."""

    server: Server

    @property
    def service(self) -> TaskService:
        service: TaskService = self.server.services.tasks
        return service

    @property
    def client(self) -> httpx.AsyncClient:
        return self.server.client


@dataclass
class Sched:
    """In-process apps on one store, a shared fake clock, and a fresh app reachable through each."""

    nodes: list[Node]
    clock: FakeClock
    api: TaskApi  # through nodes[0]
    kind: str

    def api_on(self, index: int) -> TaskApi:
        return self.api.on(self.nodes[index].client)

    async def start_ticks(self, t: float, on: Sequence[int] = (0,)) -> list[asyncio.Task[TaskRun]]:
        """Move the clock to ``t`` and tick the given nodes at the same instant, concurrently."""
        self.clock.set(t)
        started = await asyncio.gather(*(self.nodes[i].service.tick(t) for i in on))
        return [run for runs in started for run in runs]

    async def tick(self, t: float, on: Sequence[int] = (0,)) -> list[TaskRun]:
        """``start_ticks`` and wait for the runs it started."""
        return list(await asyncio.gather(*await self.start_ticks(t, on)))


MakeSched = Callable[..., AbstractAsyncContextManager[Sched]]
_hosts = itertools.count()


@asynccontextmanager
async def open_node(
    kind: str, data_dir: Path, pg_url: str | None, clock: FakeClock, **overrides: Any
) -> AsyncIterator[Node]:
    """One in-process app on the store ``data_dir`` (SQLite) or ``pg_url`` names, ticking on ``clock``."""
    app = create_app(make_settings(kind, data_dir, pg_url, **{**IN_PROCESS, **overrides}))
    app.state.services.tenancy.announce = lambda text: None
    app.state.services.tasks.clock = clock
    async with app.router.lifespan_context(app):
        dev = await app.state.services.tenancy.dev_app()
        assert dev is not None
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url=f"http://node{next(_hosts)}",
            headers={"SB-PUBLIC-KEY": DEV_PK},
            timeout=30,
        ) as client:
            yield Node(Server(app, client, dev, kind))


@pytest.fixture(params=STORE_KINDS)
def make_sched(request: pytest.FixtureRequest, tmp_path: Path) -> MakeSched:
    """``async with make_sched(nodes=1, api=None, keep=False, start=T0, **overrides) as sched``."""
    kind: str = request.param
    pg_url = request.getfixturevalue("pg_url") if kind == "pg" else None

    @asynccontextmanager
    async def open_apps(
        nodes: int = 1, api: TaskApi | None = None, keep: bool = False, start: float = T0, **overrides: Any
    ) -> AsyncIterator[Sched]:
        clock = FakeClock(start)
        async with AsyncExitStack() as stack:
            opened = [
                await stack.enter_async_context(open_node(kind, tmp_path / "shared", pg_url, clock, **overrides))
                for _ in range(nodes)
            ]
            first = opened[0].client
            own = api.on(first) if api is not None else await TaskApi(first, DEV_PK, "").new_app()
            sched = Sched(opened, clock, own, kind)
            try:
                yield sched
            finally:
                if not keep:
                    await own.cleanup()

    return open_apps


@pytest.fixture
async def sched(make_sched: MakeSched) -> AsyncIterator[Sched]:
    async with make_sched() as opened:
        yield opened


@pytest.fixture
async def pair(make_sched: MakeSched) -> AsyncIterator[Sched]:
    """Two in-process apps (two TaskService instances) on one store."""
    async with make_sched(nodes=2) as opened:
        yield opened


# --- real processes -----------------------------------------------------------------------


def _drop_database(url: str) -> None:
    """Drop a database ``_fresh_database`` made, once its servers have stopped."""
    import asyncpg

    name = url.rpartition("/")[2]

    async def drop() -> None:
        conn = await asyncpg.connect(PG_URL)
        try:
            await conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name)
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        finally:
            await conn.close()

    run_async(drop)


@pytest.fixture(scope="session", params=STORE_KINDS)
def live(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    """A real server, scheduler on, per worker and store kind."""
    kind: str = request.param
    env = {"SB_FUNCTION_WORKERS": "2", "SB_FUNCTION_POLL_SECONDS": "1", "SB_SSE_KEEPALIVE_SECONDS": "1"}
    database = ""
    if kind == "pg":
        database = _fresh_database(request.getfixturevalue("pg_url"), "sched")
        env.update({"DATA_STORE": "pg", "DATABASE_URL": database})
    with server_process(tmp_path_factory.mktemp(f"sched-live-{kind}"), env) as proc:
        yield proc
    if database:
        _drop_database(database)


@pytest.fixture
async def live_api(live: Process) -> AsyncIterator[TaskApi]:
    """A fresh app on the live server; its tasks are deleted afterwards."""
    async with httpx.AsyncClient(timeout=30) as http:
        api = await TaskApi(http, "", "", live.url).new_app()
        try:
            yield api
        finally:
            await api.cleanup()


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Process]]:
    """Three processes sharing one PostgreSQL database, one Redis and one JWT secret."""
    missing_service("SB_TEST_PG_URL", "SB_TEST_REDIS_URL")
    database = _fresh_database(request.getfixturevalue("pg_url"), "schedcluster")
    env = {
        "DATA_STORE": "pg",
        "DATABASE_URL": database,
        "REDIS_URL": request.getfixturevalue("redis_url"),
        "SB_FUNCTION_WORKERS": "1",
    }
    with ExitStack() as stack:
        procs = [
            stack.enter_context(server_process(tmp_path_factory.mktemp(f"sched-cluster-{i}"), env)) for i in range(3)
        ]
        yield procs
    _drop_database(database)


@pytest.fixture(scope="session")
def target() -> Iterator[Target]:
    yield from serve_target()
