"""Shared fixtures.

PostgreSQL-backed tests run when ``SB_TEST_PG_URL`` is set (``.ci/run`` and ``make test`` set it);
each pytest-xdist worker gets its own database, created empty at the start of the session, so
workers never see each other's rows. Redis-backed tests run when ``SB_TEST_REDIS_URL`` is set;
each worker uses its own Redis database number.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest

# the ``moto`` fixture: moto's S3 and SES server, one per session (worker), whichever test asks first
pytest_plugins = ["tests.backends.moto_server"]

PG_URL = os.environ.get("SB_TEST_PG_URL", "")
REDIS_URL = os.environ.get("SB_TEST_REDIS_URL", "")
# CI (.ci/run) sets it: a PostgreSQL or Redis variant that cannot run fails instead of skipping.
REQUIRE_SERVICES = os.environ.get("SB_REQUIRE_SERVICES", "") == "1"

# Every variant is always collected; one whose service URL is unset skips with the reason (or
# fails, under SB_REQUIRE_SERVICES), so it is never silently dropped.
STORE_KINDS = ["sqlite", "pg"]
BUS_KINDS = ["memory", "redis"]
# server processes on PostgreSQL share a Redis too
LIVE_KINDS = ["sqlite", "pg"]


def missing_service(*names: str) -> None:
    """Skip the test for want of these variables, or fail it when services are required."""
    unset = [n for n in names if not os.environ.get(n)]
    if not unset:
        return
    reason = f"{' and '.join(unset)} {'is' if len(unset) == 1 else 'are'} not set"
    if REQUIRE_SERVICES:
        pytest.fail(f"SB_REQUIRE_SERVICES=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if REQUIRE_SERVICES and not (PG_URL and REDIS_URL):
        raise pytest.UsageError("SB_REQUIRE_SERVICES=1 needs SB_TEST_PG_URL and SB_TEST_REDIS_URL")


def run_async(factory: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run a coroutine to completion on a fresh loop in a thread: safe inside or outside a loop."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(factory())
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


def _worker_index(config: pytest.Config) -> int:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else 0


@pytest.fixture(scope="session")
def pg_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh PostgreSQL database for this worker (skips when SB_TEST_PG_URL is unset)."""
    missing_service("SB_TEST_PG_URL")
    import asyncpg

    # The pid keeps concurrent pytest runs on one machine (several terminals) out of each other's way.
    dbname = f"sbtest_{_worker_index(request.config)}_{os.getpid()}"

    async def drop_all(conn: Any, names: list[str]) -> None:
        for name in names:
            await conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name)
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')

    async def drop() -> None:
        """This run's database and the ones fixtures derived from it (``<name>_compat`` ...)."""
        conn = await asyncpg.connect(PG_URL)
        try:
            rows = await conn.fetch("SELECT datname FROM pg_database WHERE datname LIKE 'sbtest%'")
            await drop_all(conn, [r[0] for r in rows if r[0] == dbname or r[0].startswith(dbname + "_")])
        finally:
            await conn.close()

    async def recreate() -> None:
        conn = await asyncpg.connect(PG_URL)
        try:
            # Databases left by runs that were killed (their pid is gone) are dropped too.
            stale = []
            for row in await conn.fetch("SELECT datname FROM pg_database WHERE datname LIKE 'sbtest\\_%'"):
                parts = row[0].split("_")
                if len(parts) >= 3 and parts[2].isdigit() and not os.path.exists(f"/proc/{parts[2]}"):
                    stale.append(row[0])
            await drop_all(conn, stale)
            await conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", dbname)
            await conn.execute(f'DROP DATABASE IF EXISTS "{dbname}"')
            await conn.execute(f'CREATE DATABASE "{dbname}"')
        finally:
            await conn.close()

    run_async(recreate)
    base, _, _ = PG_URL.rpartition("/")
    yield f"{base}/{dbname}"
    run_async(drop)


@pytest.fixture(scope="session")
def redis_url(request: pytest.FixtureRequest) -> str:
    """A Redis database number for this worker (skips when SB_TEST_REDIS_URL is unset)."""
    missing_service("SB_TEST_REDIS_URL")
    base = REDIS_URL.rstrip("/")
    if base.count("/") >= 3:
        base = base.rsplit("/", 1)[0]
    return f"{base}/{1 + _worker_index(request.config)}"
