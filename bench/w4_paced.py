"""W4 at a steady rate: event -> function lag when the server keeps up, over HTTP.

The harness's W4 (``run.py --workloads w4``) creates its documents as fast as 32 clients can,
so its lag is the queue behind the burst. Here the creations come at a fixed rate, spread over
32 users, the way an app's traffic does; the same function as the harness's W4 writes a derived
document for each creation, and the lag is ``t1 - t0`` (the function's ``Date.now()`` minus the
client's clock when it sent the creation). The server runs on CPU 0 (its function workers
inherit that), this script on CPU 1, as in the harness. Also prints the server's and the
workers' CPU time per event.

Runs under the harness's virtualenv (aiohttp), which ``run.py`` creates:

    python bench/w4_paced.py --rate 500 1000 1200 [--docs 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pacing import paced

ROOT = Path(__file__).resolve().parent.parent
HARNESS_PY = Path(os.environ.get("BENCH_SCRATCH", "/tmp/bench")) / "venv" / "bin" / "python"
PK = "dev_memory_pk"
ROOT_TOKEN = "safe-to-use-in-dev-root-token"
SOURCE, DERIVED = "src4_700_", "derived_700_"
FN_CODE = (
    "function handle(channel, type, doc) {\n"
    f'  var res = create("{DERIVED}", {{src: doc.id, t0: doc.t0, t1: Date.now()}});\n'
    '  if (!res.ok) { log("create failed", res.content); }\n'
    "}"
)

try:
    import aiohttp
except ImportError:  # not in sbserver's own environment: run again under the harness's
    if not HARNESS_PY.exists():
        raise SystemExit(f"needs aiohttp: run `python bench/run.py` once to create {HARNESS_PY}") from None
    os.execv("/usr/bin/taskset", ["taskset", "-c", "1", str(HARNESS_PY), *sys.argv])


def cpu_seconds(pid: int) -> float:
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        fields = Path(f"/proc/{pid}/task/{task}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q / 100 * (len(values) - 1)))]


async def ready(http: aiohttp.ClientSession, url: str) -> None:
    for _ in range(200):
        try:
            async with http.get(url + "/ping") as r:
                if r.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.05)
    raise SystemExit("the server did not start")


async def one_rate(rate: float, docs: int, port: int) -> None:
    data = Path(tempfile.mkdtemp(prefix="sb-w4p-"))
    backend = os.environ.get("BENCH_SB_CMD", str(ROOT / ".venv" / "bin" / "backend"))
    cmd = ["taskset", "-c", "0", backend, "server", "--port", str(port), "--data-dir", str(data)]
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    root = {"SB-PUBLIC-KEY": PK, "Authorization": f"Bearer {ROOT_TOKEN}"}
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as http:
            await ready(http, url)
            tokens = []
            for u in range(32):
                body = {"email": f"user{u}@bench.local", "password": "userpass-123456"}
                async with http.post(url + "/register", headers={"SB-PUBLIC-KEY": PK}, json=body) as r:
                    tokens.append(json.loads(await r.text()))
            fn = {"name": "bench_derive", "trigger": f"db-{SOURCE}", "code": FN_CODE}
            async with http.post(url + "/fn/add", headers=root, json=fn) as r:
                assert r.status < 300, await r.text()
            await asyncio.sleep(0.5)
            pids = [server.pid, *children(server.pid)]
            before = {p: cpu_seconds(p) for p in pids}
            errors = 0

            async def create(i: int) -> None:
                nonlocal errors
                headers = {"SB-PUBLIC-KEY": PK, "Authorization": f"Bearer {tokens[i % 32]}"}
                doc = {"n": i, "t0": time.time() * 1000, "title": f"doc {i}", "body": "x" * 100}
                async with http.post(url + f"/db/{SOURCE}", headers=headers, json=doc) as r:
                    await r.read()
                    errors += r.status >= 300

            start = time.time()
            await paced(docs, rate, start, create)
            sent = time.time() - start
            lags: list[float] = []
            deadline = time.time() + 60
            while time.time() < deadline:
                lags = await derived_lags(http, url, root)
                if len(lags) >= docs - errors:
                    break
                await asyncio.sleep(0.1)
            after = {p: cpu_seconds(p) for p in pids}
        spent = {p: after[p] - before[p] for p in pids}
        workers = sum(v for p, v in spent.items() if p != server.pid)
        lags.sort()
        print(
            f"rate {rate:g}/s: {docs} created in {sent:.2f} s ({errors} errors), {len(lags)} derived; "
            f"lag p50 {pct(lags, 50):.0f} ms, p99 {pct(lags, 99):.0f} ms, max {lags[-1]:.0f} ms; "
            f"CPU per event: server {spent[server.pid] * 1e6 / docs:.0f} us, workers {workers * 1e6 / docs:.0f} us",
            flush=True,
        )
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(data, ignore_errors=True)


async def derived_lags(http: aiohttp.ClientSession, url: str, root: dict[str, str]) -> list[float]:
    """Every derived document's lag; Date.now() has 1 ms steps, so a lag under 1 ms may read 0."""
    lags: list[float] = []
    page = 1
    while True:
        async with http.get(url + f"/sudo/{DERIVED}?size=1000&page={page}", headers=root) as r:
            results: list[dict[str, Any]] = json.loads(await r.text())["results"] or []
        lags += [max(0.0, d["t1"] - d["t0"]) for d in results]
        if len(results) < 1000:
            return lags
        page += 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=float, nargs="+", default=[500.0, 1000.0], help="creations per second")
    ap.add_argument("--docs", type=int, default=3000)
    ap.add_argument("--port", type=int, default=18791)
    a = ap.parse_args()
    for rate in a.rate:
        asyncio.run(one_rate(rate, a.docs, a.port))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
