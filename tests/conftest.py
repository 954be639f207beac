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

PG_URL = os.environ.get("SB_TEST_PG_URL", "")
REDIS_URL = os.environ.get("SB_TEST_REDIS_URL", "")

STORE_KINDS = ["sqlite", "pg"] if PG_URL else ["sqlite"]


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
    if not PG_URL:
        pytest.skip("SB_TEST_PG_URL is not set")
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
    if not REDIS_URL:
        pytest.skip("SB_TEST_REDIS_URL is not set")
    base = REDIS_URL.rstrip("/")
    if base.count("/") >= 3:
        base = base.rsplit("/", 1)[0]
    return f"{base}/{1 + _worker_index(request.config)}"
