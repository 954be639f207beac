"""Memory per idle SSE connection: N clients connect to /sse/connect and stay; the server's
resident memory is read before and after. Reports KB per connection.

    python bench/idle_sse.py --connections 5000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def hold(url: str, ready: asyncio.Event, counter: list[int], n: int, stop: asyncio.Event) -> None:
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=None, limits=limits) as client, client.stream("GET", url) as resp:
        async for line in resp.aiter_lines():
            if line.startswith("data:"):
                counter[0] += 1
                if counter[0] >= n:
                    ready.set()
                break
        await stop.wait()


async def main_async(port: int, n: int, pid: int) -> tuple[int, int]:
    url = f"http://127.0.0.1:{port}/sse/connect?sbpk=dev_memory_pk"
    await asyncio.sleep(1.0)
    before = rss_kb(pid)
    ready, stop = asyncio.Event(), asyncio.Event()
    counter = [0]
    tasks = []
    for i in range(n):
        tasks.append(asyncio.create_task(hold(url, ready, counter, n, stop)))
        if i % 200 == 199:
            await asyncio.sleep(0.05)
    await asyncio.wait_for(ready.wait(), 120)
    await asyncio.sleep(2.0)
    after = rss_kb(pid)
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    return before, after


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--connections", type=int, default=5000)
    a = ap.parse_args()
    backend = shutil.which("backend", path=str(ROOT / ".venv" / "bin")) or "backend"
    port = free_port()
    data = tempfile.mkdtemp(prefix="sb-idle-")
    env = dict(os.environ, APP_ENV="dev", JWT_SECRET="bench", SB_SSE_KEEPALIVE_SECONDS="30")
    proc = subprocess.Popen(
        ["taskset", "-c", "0", backend, "server", "--port", str(port), "--data-dir", data],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ping").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        before, after = asyncio.run(main_async(port, a.connections, proc.pid))
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(data, ignore_errors=True)
    per = (after - before) / a.connections
    print(
        f"idle SSE connections: {a.connections}; server RSS {before / 1024:.1f} MB -> {after / 1024:.1f} MB; "
        f"{per:.1f} KB per connection (target < 20 KB)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
