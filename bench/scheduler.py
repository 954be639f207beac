"""Scheduler benchmark: 1,000 tasks due every second on one process (embedded SQLite store).

Reports the scheduling delay (actual start minus due time: p50, p99, max) over the measured
seconds, and the scheduler's CPU cost when idle (no task due), as a share of one core.

    python bench/scheduler.py [--tasks 1000] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path

from sbserver.app import create_app
from sbserver.settings import from_env


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


async def main_async(n: int, seconds: float) -> None:
    data = Path(tempfile.mkdtemp(prefix="sb-sched-"))
    settings = from_env({"APP_ENV": "dev", "JWT_SECRET": "bench"}, data_dir=data)
    app = create_app(settings)
    svc = app.state.services
    svc.tenancy.announce = lambda text: None
    async with app.router.lifespan_context(app):
        base = await svc.tenancy.base("dev_memory_pk")
        for i in range(n):
            await svc.tasks.create(
                base,
                {
                    "name": f"t{i}",
                    "type": "message",
                    "value": "tick",
                    "interval": "@every 1s",
                    "meta": {"channel": f"c{i % 10}", "data": "x"},
                },
            )
        await asyncio.sleep(2.0)  # warm-up ticks
        t0 = time.time()
        await asyncio.sleep(seconds)
        t1 = time.time()
        delays: list[float] = []
        for task in await svc.store.tasks(base):
            for run in await svc.store.task_runs(task.id, 100):
                if t0 <= run.due < t1 - 1:
                    delays.append(ts(run.started) - run.due)
        ticks = len(delays)
        print(
            f"{n} tasks @every 1s for {seconds:.0f} s: {ticks} runs measured "
            f"({ticks / max(1, n * (seconds - 1)):.0%} of expected)"
        )
        print(
            f"scheduling delay: p50 {statistics.median(delays) * 1000:.1f} ms, p99 {pct(delays, 0.99) * 1000:.1f} ms, "
            f"max {max(delays) * 1000:.1f} ms (target p99 < 100 ms)"
        )
        for task in await svc.store.tasks(base):
            await svc.tasks.delete(base, task.id)
        await asyncio.sleep(1.5)
        c0, w0 = time.process_time(), time.time()
        await asyncio.sleep(seconds)
        idle = (time.process_time() - c0) / (time.time() - w0)
        print(f"idle scheduler (no tasks due): {idle:.2%} of one core (target < 1%)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=10)
    a = ap.parse_args()
    asyncio.run(main_async(a.tasks, a.seconds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
