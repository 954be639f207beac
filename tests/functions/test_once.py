"""Decision 13 of spec 00: a triggered run happens exactly once, on any number of processes.

Two real server processes share one fresh PostgreSQL database, one Redis and one JWT secret, with
``SB_FUNCTION_LEASE_SECONDS=3``, ``SB_FUNCTION_POLL_SECONDS=1`` and ``SB_FUNCTION_QUEUE_LIMIT=4``
(so that most of a burst's jobs wait in the store unclaimed, for either process to claim). Runs only when both
``SB_TEST_PG_URL`` and ``SB_TEST_REDIS_URL`` are set (two processes on one SQLite directory are
not a supported deployment).

- 50 source documents created through both processes yield exactly 50 derived documents;
- a job left in ``sb.fn_jobs`` by a dead owner with an expired lease is run once by the survivors,
  and a third process killed with SIGKILL in the middle of a run loses nothing: P1 or P2 runs the
  job once its lease expires, and the derived document exists exactly once.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest

from tests.compat.conftest import _fresh_database
from tests.conftest import PG_URL, REDIS_URL, REQUIRE_SERVICES
from tests.functions.support import FnApi, Process, User, server_process, unique

pytestmark = pytest.mark.skipif(
    not (PG_URL and REDIS_URL) and not REQUIRE_SERVICES,
    reason="needs SB_TEST_PG_URL and SB_TEST_REDIS_URL (two processes share them)",
)

DERIVE = """function handle(channel, type, data) {
  if (type !== "db_created") return;
  var r = create("derived", {src: data.id, n: data.n});
  log(JSON.stringify(r.ok));
}"""

# Says it started, then is busy for about 2.5 s before it writes: long enough to kill its
# process in the middle.
SLOW_DERIVE = """function handle(channel, type, data) {
  if (type !== "db_created") return;
  create("started", {src: data.id});
  var t = Date.now();
  while (Date.now() - t < 2500) {}
  create("derived", {src: data.id});
}"""

MARK = "function handle() {}"


@dataclass
class Cluster:
    p1: Process
    p2: Process
    database: str
    env: dict[str, str]


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """P1 and P2 for the worker's session (each test uses an app of its own)."""
    pg_url: str = request.getfixturevalue("pg_url")
    redis_url: str = request.getfixturevalue("redis_url")
    database = _fresh_database(pg_url, "fnonce")
    env = {
        "DATA_STORE": "pg",
        "DATABASE_URL": database,
        "REDIS_URL": redis_url,
        "SB_FUNCTION_LEASE_SECONDS": "3",
        "SB_FUNCTION_POLL_SECONDS": "1",
        "SB_FUNCTION_WORKERS": "1",
        "SB_FUNCTION_QUEUE_LIMIT": "4",  # most of a burst waits unclaimed: either process may claim it
    }
    with (
        server_process(tmp_path_factory.mktemp("fn-once-p1"), env) as p1,
        server_process(tmp_path_factory.mktemp("fn-once-p2"), env) as p2,
    ):
        yield Cluster(p1, p2, database, env)


@pytest.fixture
async def apis(cluster: Cluster) -> AsyncIterator[tuple[FnApi, FnApi]]:
    """The same fresh app seen through P1 and through P2."""
    async with httpx.AsyncClient(timeout=60) as http:
        one = await FnApi(http, "", "", cluster.p1.url).new_app()
        yield one, FnApi(http, one.pk, one.root, cluster.p2.url)


async def derived(api: FnApi, col: str = "derived") -> list[dict[str, Any]]:
    r = await api.request("GET", f"/sudo/{col}", api.root, params={"size": "1000"})
    if r.status_code == 404:
        return []
    assert r.status_code == 200, r.text
    results: list[dict[str, Any]] = r.json()["results"]
    return results


async def wait_derived(api: FnApi, want: int, timeout: float) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        docs = await derived(api)
        if len(docs) >= want or time.monotonic() > deadline:
            return docs
        await asyncio.sleep(0.2)


async def pg(database: str, query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database)
    try:
        rows: list[asyncpg.Record] = await conn.fetch(query, *args)
        return rows
    finally:
        await conn.close()


async def quiesced(cluster: Cluster, apis: tuple[FnApi, FnApi], fn_ids: list[str], mark: str) -> None:
    """Return once no run of these functions can start any more and none is still going on P1
    or P2 (in place of waiting past a lease and hoping).

    Every job row is gone (each is removed in the transaction that records its run), so nothing
    is left to claim. A run claimed before that (a second run of a job) is held by the process
    that claimed it, where the app's runs take its run slot first come first served, one at a time
    here (one worker): a web run of ``mark`` through each process comes after it, so once both
    have answered, such a run has written what it writes.
    """
    deadline = time.monotonic() + 30
    while await pg(cluster.database, "SELECT id FROM sb.fn_jobs WHERE function_id = ANY($1::text[])", fn_ids):
        assert time.monotonic() < deadline, "function jobs still in the store after 30 s"
        await asyncio.sleep(0.1)
    for api in apis:
        r = await api.sudo_exec(mark)
        assert r.status_code == 200, f"/fn/sudoexec/{mark} through {api.url} answered {r.status_code}: {r.text}"


async def test_50_source_documents_over_two_processes_derive_exactly_50(
    cluster: Cluster, apis: tuple[FnApi, FnApi]
) -> None:
    one, two = apis
    derive = await one.add_ok("derive", "db-src", DERIVE)
    await one.add_ok("mark", "web", MARK)
    users = [await one.register(), await two.register()]
    sem = asyncio.Semaphore(8)

    async def make(i: int) -> str:
        api, user = (one, users[0]) if i % 2 == 0 else (two, users[1])
        async with sem:
            doc = await api.create(user.jwt, "src", {"n": i})
        return str(doc["id"])

    ids = await asyncio.gather(*(make(i) for i in range(50)))
    docs = await wait_derived(one, 50, timeout=30)
    assert len(docs) == 50, f"{len(docs)} derived documents after 30 s"
    await quiesced(cluster, apis, [derive["id"]], "mark")  # nothing runs a second time after this
    docs = await derived(two)
    srcs = [d["src"] for d in docs]
    assert len(srcs) == 50 and sorted(srcs) == sorted(ids), (
        f"{len(srcs)} derived, duplicates: {len(srcs) - len(set(srcs))}"
    )
    history = (await one.info("derive"))["history"]
    assert len(history) == 50 and all(run["success"] for run in history), len(history)


def _stat(pid: int) -> list[str]:
    """State, parent pid, ... of a process (Linux /proc); [] once it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid``."""
    return [int(d.name) for d in Path("/proc").iterdir() if d.name.isdigit() and _stat(int(d.name))[1:2] == [str(pid)]]


def running(pid: int) -> bool:
    """Still a live process (not gone, not a zombie waiting to be reaped)."""
    return _stat(pid)[:1] not in ([], ["Z"])


def identity(base: str, user: User) -> dict[str, Any]:
    return {"base": base, "a": user.account_id, "u": user.user_id, "e": user.email, "r": 0, "t": ""}


async def queue_orphan_job(cluster: Cluster, api: FnApi, fn_id: str, user: User, source: str) -> None:
    """A job row as a process that died after claiming it leaves it: owned, lease expired."""
    [base] = await pg(cluster.database, "SELECT name FROM sb.bases WHERE pk = $1", api.pk)
    payload = {
        "args": ["db-orphan", "db_created", {"id": source, "n": 7}],
        "legacy": None,
        "identity": identity(base["name"], user),
        "event": "db_created",
    }
    await pg(
        cluster.database,
        "INSERT INTO sb.fn_jobs (id, base, function_id, payload, created, owner, lease_until, attempts) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        unique("job"),
        base["name"],
        fn_id,
        orjson.dumps(payload).decode(),
        "2024-01-01T00:00:00Z",
        "dead-owner",
        time.time() - 10,
        1,
    )


async def test_no_run_is_lost_when_its_process_dies(
    cluster: Cluster, apis: tuple[FnApi, FnApi], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Two crashes: a job row left by a dead owner, and a third process P3 killed (SIGKILL) in the
    middle of a run it had accepted. P1 and P2 both poll; each job runs exactly once."""
    one, two = apis
    orphan_fn = await one.add_ok("derive", "db-orphan", DERIVE)
    slow_fn = await one.add_ok("slow", "db-src", SLOW_DERIVE)
    user = await one.register()
    orphan = "src-" + uuid.uuid4().hex
    await queue_orphan_job(cluster, one, orphan_fn["id"], user, orphan)

    with server_process(tmp_path_factory.mktemp("fn-once-p3"), cluster.env) as p3:
        three = FnApi(one.http, one.pk, one.root, p3.url)
        await one.add_ok("warm", "web", "function handle() {}")
        await three.exec_ok("warm", user.jwt, {})  # P3's worker is up: the next run starts at once
        doc = await three.create(user.jwt, "src", {"n": 1})  # P3 queues the job, claimed by itself, and runs it
        deadline = time.monotonic() + 10
        while not [d for d in await derived(one, "started") if d["src"] == doc["id"]]:
            assert time.monotonic() < deadline, "P3 never started the run"
            await asyncio.sleep(0.05)
        workers = children(p3.pid)  # the run is now in its busy loop on P3, in one of these
        assert workers, "P3 has no worker process"
        os.kill(p3.pid, signal.SIGKILL)
        p3.proc.wait(timeout=10)
        assert not [d for d in await derived(one) if d["src"] == doc["id"]], "P3's run ended before the kill"

    want = sorted([orphan, doc["id"]])
    docs = await wait_derived(two, 2, timeout=20)
    assert sorted(d["src"] for d in docs) == want, docs
    # P3's workers are gone (so none writes anything any more), and P1/P2 run nothing twice
    deadline = time.monotonic() + 20
    while alive := [pid for pid in workers if running(pid)]:
        assert time.monotonic() < deadline, f"P3's workers {alive} still alive after 20 s"
        await asyncio.sleep(0.1)
    await quiesced(cluster, apis, [orphan_fn["id"], slow_fn["id"]], "warm")
    docs = await derived(one)
    assert sorted(d["src"] for d in docs) == want, f"{len(docs)} derived documents, want 2: {docs}"
    [from_orphan] = [d for d in docs if d["src"] == orphan]
    assert from_orphan["accountId"] == user.account_id, "a job must run with the identity it was queued with"
    for fn in (orphan_fn, slow_fn):
        assert await pg(cluster.database, "SELECT id FROM sb.fn_jobs WHERE function_id = $1", fn["id"]) == []
        history = (await two.info(fn["name"]))["history"]
        assert [run["success"] for run in history] == [True], history
