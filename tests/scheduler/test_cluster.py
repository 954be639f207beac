"""Once means once on several real processes (spec 00 decision 13).

Three server processes share one PostgreSQL database and one Redis, with no primary instance.
An ``@every 1s`` function task that creates one document per run must produce exactly one
document (and one run) per tick: the processes all tick, only one takes each tick.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter

import httpx
import pytest

from tests.functions.support import Process
from tests.scheduler.support import TICK_FN, TaskApi, logged, parse_time, unique

pytestmark = pytest.mark.timeout(90)


async def test_three_processes_run_each_tick_exactly_once(cluster: list[Process]) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        api = await TaskApi(http, "", "", cluster[0].url).new_app()
        others = [api.on(http, p.url) for p in cluster[1:]]
        fn = unique("tick")
        await api.add_fn(fn, TICK_FN)
        # Created through the second process: every process sees it through the store.
        task = await others[0].add_task(unique("every"), "function", fn, "@every 1s")
        await asyncio.sleep(4.2)
        # Stopped (not deleted: deleting would drop the runs we want to count), then settled.
        stopped = await others[1].update_task(task["id"], enabled=False)
        assert stopped["enabled"] is False
        await asyncio.sleep(1.0)

        runs = await api.runs(task["id"])
        dues = Counter(r["due"] for r in runs)
        assert all(n == 1 for n in dues.values()), f"ticks taken more than once: {dues.most_common(3)}"
        ok = [r for r in runs if r["outcome"] == "success"]
        assert len(ok) >= 3, f"{len(ok)} successful run(s) in ~4 s: {runs}"
        times = sorted(parse_time(r["due"]) for r in runs)
        assert all(b - a >= 0.99 for a, b in itertools.pairwise(times)), times

        documents = await api.count("ticks")
        history = await api.history(fn)
        assert len(history) == len(ok), f"{len(history)} function runs for {len(ok)} task runs"
        assert all(v == {"ok": True} for h in history for v in logged(h)), history
        assert documents == len(ok), f"{documents} documents for {len(ok)} runs (dues {sorted(dues)})"

        # Every process agrees, and nothing runs any more.
        for other in others:
            assert len(await other.runs(task["id"])) == len(runs)
        await asyncio.sleep(1.2)
        assert await api.count("ticks") == documents
        await api.delete_task(task["id"])
