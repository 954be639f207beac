"""The worker pool's scheduling: which worker a run goes to (sbserver/runtime/pool.py)."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from sbserver.runtime.pool import RuntimePool, Worker


async def no_helpers(name: str, args: list[Any]) -> Any:
    return {"ok": True, "content": None}


async def test_with_one_cpu_turn_runs_keep_to_the_warmest_worker() -> None:
    """Runs that never wait on I/O go one after another to the same worker, not by turns to
    every worker (switching processes on one CPU costs each run its caches)."""
    pool = RuntimePool(size=3, timeout=10, memory_mb=64, concurrency=1)
    await pool.start()
    used: Counter[int] = Counter()
    try:
        for worker in list(pool._all):
            original = worker.send

            async def send(message: dict[str, Any], w: Worker = worker, orig: Any = original) -> None:
                if message.get("op") == "run":
                    used[w.proc.pid] += 1
                await orig(message)

            worker.send = send  # type: ignore[method-assign]
        code = 'function handle() { create("c", {a: 1}); }'
        outcomes = await asyncio.gather(*(pool.run(code, [], no_helpers) for _ in range(12)))
        assert all(o.ok for o in outcomes), outcomes
        assert sum(used.values()) == 12
        assert len(used) == 1, f"runs went to {len(used)} workers: {dict(used)}"
    finally:
        await pool.stop()
