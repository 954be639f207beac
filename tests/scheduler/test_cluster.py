"""Once means once on several real processes (spec 00 decision 13).

Three server processes share one PostgreSQL database and one Redis, with no primary instance.
An ``@every 1s`` function task that creates one document per run must produce exactly one
document (and one run) per tick: the processes all tick, only one takes each tick.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import Counter
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.functions.support import Process
from tests.scheduler.support import TICK_FN, TaskApi, logged, parse_time, unique

pytestmark = pytest.mark.timeout(90)


def database_of(process: Process) -> str:
    """The PostgreSQL database a server process was started with (its environment, Linux /proc)."""
    for entry in Path(f"/proc/{process.pid}/environ").read_bytes().split(b"\0"):
        name, _, value = entry.partition(b"=")
        if name == b"DATABASE_URL":
            return value.decode()
    raise AssertionError(f"process {process.pid} has no DATABASE_URL")


async def settled(database: str, task_id: str) -> None:
    """Wait until no run of the task is in progress: a claim holds the task (``running_until``)
    until its run is recorded, in the same transaction that lets it go."""
    conn = await asyncpg.connect(database)
    try:
        deadline = time.monotonic() + 30
        while held := await conn.fetchval("SELECT running_until FROM sb.tasks WHERE id = $1", task_id):
            assert time.monotonic() < deadline, f"task {task_id} still held until {held}"
            await asyncio.sleep(0.1)
    finally:
        await conn.close()


async def test_three_processes_run_each_tick_exactly_once(cluster: list[Process]) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        api = await TaskApi(http, "", "", cluster[0].url).new_app()
        others = [api.on(http, p.url) for p in cluster[1:]]
        fn = unique("tick")
        await api.add_fn(fn, TICK_FN)
        # Created through the second process: every process sees it through the store.
        task = await others[0].add_task(unique("every"), "function", fn, "@every 1s")
        await api.wait_runs(task["id"], 4, timeout=30, outcome="success")
        # Stopped (not deleted: deleting would drop the runs we want to count): no claim succeeds
        # once it is disabled; then the run of the tick claimed last is recorded.
        stopped = await others[1].update_task(task["id"], enabled=False)
        assert stopped["enabled"] is False
        stopped_at = time.time()
        await settled(database_of(cluster[0]), task["id"])
        runs = await api.runs(task["id"])

        dues = Counter(r["due"] for r in runs)
        assert all(n == 1 for n in dues.values()), f"ticks taken more than once: {dues.most_common(3)}"
        ok = [r for r in runs if r["outcome"] == "success"]
        assert len(ok) >= 4, f"{len(ok)} successful run(s): {runs}"
        times = sorted(parse_time(r["due"]) for r in runs)
        assert all(b - a >= 0.99 for a, b in itertools.pairwise(times)), times

        documents = await api.count("ticks")
        history = await api.history(fn)
        assert len(history) == len(ok), f"{len(history)} function runs for {len(ok)} task runs"
        assert all(v == {"ok": True} for h in history for v in logged(h)), history
        assert documents == len(ok), f"{documents} documents for {len(ok)} runs (dues {sorted(dues)})"

        # Every process agrees, and nothing runs any more: once a tick of another @every 1s task,
        # due a second after the stop, has run, the schedulers have looked past a due time of the
        # stopped task, and the stopped task was not claimed again (a claim moves its ``last``).
        for other in others:
            assert len(await other.runs(task["id"])) == len(runs)
        last = (await api.task(task["id"]))["last"]
        marker = await api.add_task(
            unique("marker"), "message", "tick", "@every 1s", json.dumps({"channel": unique("c")})
        )
        deadline = time.monotonic() + 30
        while not [r for r in await api.runs(marker["id"]) if parse_time(r["due"]) >= stopped_at + 1.0]:
            assert time.monotonic() < deadline, "the marker task never ran"
            await asyncio.sleep(0.1)
        assert (await api.task(task["id"]))["last"] == last, "the stopped task was claimed again"
        assert len(await api.runs(task["id"])) == len(runs)
        assert await api.count("ticks") == documents
        await api.delete_task(marker["id"])
        await api.delete_task(task["id"])
