"""Function benchmarks, in process on the embedded store (no HTTP in the way):

* overhead of an empty function run (worker round trip, fresh QuickJS context);
* event -> function throughput: N documents created, a function triggered by each creation
  writes a derived document; reports derived documents/s and the lag p50/p99. As fast as 32
  writers go by default (a burst: the lag is then the queue behind it), or at a steady
  ``--rate`` of creations per second (the lag of a server that keeps up).

    python bench/functions.py [--docs 2000] [--rate 500]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from pacing import paced

from sbserver.app import create_app
from sbserver.clauses import Sort
from sbserver.settings import from_env
from sbserver.types import ALL_ROWS, Identity

DERIVE = """
function handle(channel, type, doc) {
  var res = create("derived_700_", {src: doc.id, t0: doc.t0, t1: Date.now()});
  if (!res.ok) { log("create failed", res.content); }
}
"""


async def main_async(docs: int, rate: float) -> None:
    data = Path(tempfile.mkdtemp(prefix="sb-fn-"))
    app = create_app(from_env({"APP_ENV": "dev", "JWT_SECRET": "bench"}, data_dir=data))
    svc = app.state.services
    svc.tenancy.announce = lambda text: None
    async with app.router.lifespan_context(app):
        base = await svc.tenancy.base("dev_memory_pk")
        root = await svc.tenancy.root_identity(base)
        pool = svc.functions.pool

        async def no_helpers(name: str, args: list[object]) -> object:
            return {"ok": True}

        for _ in range(50):
            await pool.run("function handle(){}", [], no_helpers)
        n = 1000
        t = time.perf_counter()
        for _ in range(n):
            await pool.run("function handle(){}", [], no_helpers)
        empty = (time.perf_counter() - t) / n * 1000
        print(f"empty function run: {empty:.2f} ms per run, sequential ({1000 / empty:.0f} runs/s on one worker)")

        await svc.functions.add(base, "derive", "db-src_700_", DERIVE, "")
        user = Identity(base.name, root.account_id, root.user_id, root.email, 50, root.user_token)
        t0 = time.time()
        sem = asyncio.Semaphore(32)

        async def make(i: int) -> None:
            async with sem:
                await svc.documents.create(user, base, "src_700_", {"i": i, "t0": time.time() * 1000})

        if rate > 0:
            await paced(docs, rate, t0, make)
        else:
            await asyncio.gather(*(make(i) for i in range(docs)))
        created = time.time()
        deadline = time.time() + 120
        count = 0
        while time.time() < deadline:
            count = await svc.store.count_documents(base, "derived_700_", ALL_ROWS)
            if count >= docs:
                break
            await asyncio.sleep(0.05)
        done = time.time()
        derived, _ = await svc.store.query_documents(base, "derived_700_", ALL_ROWS, [], Sort(), -1, 0)
        # Date.now() in the function has 1 ms steps: a lag under 1 ms can come out a little below 0
        lags = sorted(max(0.0, d.data["t1"] - d.data["t0"]) for d in derived)
        print(
            f"event -> function: {docs} docs created in {created - t0:.2f} s"
            f"{f' (paced at {rate:g}/s)' if rate > 0 else ''}; {count} derived; "
            f"{count / (done - t0):.0f} derived/s; lag p50 {statistics.median(lags):.0f} ms, "
            f"p99 {lags[int(0.99 * (len(lags) - 1))]:.0f} ms"
        )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=2000)
    ap.add_argument("--rate", type=float, default=0.0, help="creations per second (0: as fast as possible)")
    a = ap.parse_args()
    asyncio.run(main_async(a.docs, a.rate))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
