"""Steady load for the benchmarks: start one task a step apart, at a fixed rate."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


async def paced(count: int, rate: float, start: float, make: Callable[[int], Awaitable[None]]) -> None:
    """Start ``make(i)`` for i in 0..count-1, the i-th at ``start + i / rate`` (wall clock), and
    wait for all of them; a start that falls behind goes at once."""
    tasks = []
    for i in range(count):
        delay = start + i / rate - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(make(i)))
    await asyncio.gather(*tasks)
