"""Time of ``backend migrate``: an SQLite installation of N documents moved to an empty PostgreSQL
database and verified, against raw ``COPY`` of the same rows measured in the same run.

    python bench/migrate.py                    # 1,000,000 documents
    python bench/migrate.py --docs 20000 --json

The installation: one app, 100 users, 4 collections, documents of 200-400 bytes of JSON (a few
fields, a nested object, an array), spread evenly over the users. It is seeded through the
SQLite store's bulk insert (timed apart, not part of the result), then ``backend migrate
--data-dir D --to URL`` runs as a user would run it, in its own process, into a fresh database
``sbbench_migrate_<pid>`` next to ``--pg`` (dropped at the end). Its exit code must be 0 and the
document counts it prints must be N on both sides.

Rows:

* ``raw COPY, bare table``: ``copy_records_to_table`` (asyncpg) of the documents' rows (the six
  columns sbserver keeps, the JSON as text) into a table without keys or indexes, in one
  transaction. The rows are read from the SQLite file beforehand, outside the timing. The
  machine's ceiling.
* ``raw COPY, sbserver's table``: the same into a copy of an app's ``documents`` table
  (``LIKE ... INCLUDING ALL``: its primary key, its three indexes and the jsonb column
  PostgreSQL derives from the text). What any migration into that schema costs the database.
* ``backend migrate``: the whole command (wall time: interpreter start, copy, commit, verify).
  Its output gives no phases; ``verify`` is the same work timed again in this process (the
  target re-read in one snapshot and checksummed), ``copy`` is the rest.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from sbserver.backends.storage.postgresql_base import _schema
from sbserver.backends.storage.sqlite import SQLiteStore
from sbserver.backends.storage.transfer.postgresql import PostgresSource
from sbserver.services import transfer
from sbserver.types import Account, Base, StoredDoc, Tenant, User

ROOT = Path(__file__).resolve().parent.parent
USERS = 100
COLLECTIONS = (("posts", "740"), ("comments", "744"), ("orders", "700"), ("events", "766"))
SEED_BATCH = 20_000  # documents per insert_documents call
COPY_BATCH = 50_000  # rows per copy_records_to_table call in the baselines
COLUMNS = ("col", "id", "account_id", "owner_id", "created", "data")
T0 = 1_780_000_000_000_000  # the first document's creation time (µs); the next ones follow 0.5 ms apart
WORDS = ("alpha", "beta", "gamma", "delta", "north", "south", "river", "stone", "light", "paper", "green", "quiet",
         "rapid", "amber", "cedar")  # fmt: skip


def stamped(rng: random.Random, us: int) -> tuple[str, str]:
    """(id, created) of a document created at ``us`` microseconds after the epoch: a version 7
    UUID of that millisecond, as the server makes them, so ids and creation times run in the
    same order."""
    b = bytearray(rng.randbytes(16))
    b[0:6] = (us // 1000).to_bytes(6, "big")
    b[6] = (b[6] & 0x0F) | 0x70
    b[8] = (b[8] & 0x3F) | 0x80
    h = b.hex()
    created = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(us // 1_000_000)) + f".{us % 1_000_000:06d}Z"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}", created


def document(rng: random.Random, i: int) -> dict[str, Any]:
    """About 200-400 bytes of JSON: scalars, a nested object, an array."""
    return {
        "title": " ".join(rng.choices(WORDS, k=rng.randint(2, 6))),
        "status": rng.choice(("open", "closed", "pending", "archived")),
        "n": i,
        "amount": round(rng.uniform(0, 10_000), 2),
        "done": rng.random() < 0.5,
        "tags": rng.sample(WORDS, rng.randint(1, 4)),
        "author": {
            "name": rng.choice(WORDS).title(),
            "email": f"user{i % USERS}@example.com",
            "age": rng.randint(18, 90),
        },
        "body": " ".join(rng.choices(WORDS, k=rng.randint(8, 30))),
    }


async def seed(db: Path, docs: int) -> tuple[Base, int]:
    """An app with USERS users and ``docs`` documents over COLLECTIONS; (the app, total JSON bytes)."""
    rng = random.Random(16)
    store = SQLiteStore(db, writer="thread")
    await store.open()
    try:
        await store.create_tenant(Tenant("bench-tenant", "owner@example.com", 1, True, "2026-01-01T00:00:00.000000Z"))
        base = Base("bench_pk", "abenchmigrate", "bench-tenant", ("localhost",), True, "2026-01-01T00:00:00.000000Z")
        await store.create_base(base)
        users = []
        for u in range(USERS):
            acct = Account(f"acct-{u:03d}", f"user{u}@example.com", "2026-01-01T00:00:00.000000Z")
            user = User(f"user-{u:03d}", acct.id, acct.email, f"tok-{u}", 100 if u == 0 else 0,
                        "2026-01-01T00:00:00.000000Z", "$2b$10$" + "x" * 53)  # fmt: skip
            await store.create_account_with_user(base, acct, user)
            users.append(user)
        size = 0
        per_col = -(-docs // len(COLLECTIONS))
        for c, (col, perm) in enumerate(COLLECTIONS):
            first, last = c * per_col, min(docs, (c + 1) * per_col)
            for start in range(first, last, SEED_BATCH):
                batch = []
                for i in range(start, min(last, start + SEED_BATCH)):
                    u = users[i % USERS]
                    data = document(rng, i)
                    size += len(orjson.dumps(data))
                    doc_id, created = stamped(rng, T0 + i * 500)
                    batch.append(StoredDoc(doc_id, u.account_id, u.id, created, data))
                await store.insert_documents(base, col, batch, perm)
    finally:
        await store.close()
    return base, size


async def admin(pg: str, sql: str) -> None:
    conn = await asyncpg.connect(pg)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def migrate(data_dir: Path, url: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    backend = ROOT / ".venv" / "bin" / "backend"
    args = [str(backend)] if backend.exists() else [sys.executable, "-m", "sbserver"]
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DATA_STORE", "SB_DATA_DIR")}
    start = time.perf_counter()
    done = subprocess.run(
        [*args, "migrate", "--data-dir", str(data_dir), "--to", url], capture_output=True, text=True, env=env
    )
    return time.perf_counter() - start, done


def printed_documents(out: str) -> tuple[int, int]:
    """(source, target) document counts from the comparison ``backend migrate`` prints."""
    for line in out.splitlines():
        m = re.match(r"document\s+(\d+)\s+(\d+)\s", line)
        if m:
            return int(m.group(1)), int(m.group(2))
    return -1, -1


async def verify_again(url: str) -> float:
    """The command's verify phase, timed in this process: the target read and checksummed."""
    source = PostgresSource(url)
    start = time.perf_counter()
    await source.open()
    try:
        await transfer.summarize(source)
    finally:
        await source.close()
    return time.perf_counter() - start


def rows_of(db: Path) -> list[list[tuple[Any, ...]]]:
    import sqlite3

    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        cur = conn.execute(f"SELECT {', '.join(COLUMNS)} FROM documents")
        return [list(map(tuple, b)) for b in iter(lambda: cur.fetchmany(COPY_BATCH), [])]
    finally:
        conn.close()


async def raw_copy(url: str, table: str, ddl: str, batches: list[list[tuple[Any, ...]]]) -> float:
    """Seconds to COPY every batch into a new table ``table`` (made by ``ddl``) and commit."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(ddl)
        start = time.perf_counter()
        async with conn.transaction():
            for rows in batches:
                await conn.copy_records_to_table(table, records=rows, columns=list(COLUMNS))
        seconds = time.perf_counter() - start
        await conn.execute(f"DROP TABLE {table}")
        return seconds
    finally:
        await conn.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=1_000_000, help="documents in the installation (default 1,000,000)")
    ap.add_argument("--pg", default=os.environ.get("SB_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test"),
                    help="a PostgreSQL URL whose server gets the scratch database")  # fmt: skip
    ap.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    a = ap.parse_args()
    if a.docs < len(COLLECTIONS):
        ap.error(f"--docs must be at least {len(COLLECTIONS)}")
    scratch = Path(tempfile.mkdtemp(prefix="sb-bench-migrate-"))
    dbname = f"sbbench_migrate_{os.getpid()}"
    url = a.pg.rpartition("/")[0] + "/" + dbname
    created = False
    try:
        say = (lambda _t: None) if a.json else (lambda t: print(t, file=sys.stderr, flush=True))
        say(f"seeding {a.docs:,} documents into {scratch}/sbserver.db ...")
        start = time.perf_counter()
        base, size = asyncio.run(seed(scratch / "sbserver.db", a.docs))
        seeding = time.perf_counter() - start
        say(f"seeded in {seeding:.1f} s; reading the rows for the COPY baselines ...")
        batches = rows_of(scratch / "sbserver.db")
        asyncio.run(admin(a.pg, f'CREATE DATABASE "{dbname}"'))
        created = True
        bare = asyncio.run(raw_copy(url, "bench_bare", f"CREATE TABLE bench_bare ({', '.join(c + ' TEXT NOT NULL' for c in COLUMNS)})", batches))  # fmt: skip
        say(f"raw COPY into a bare table: {bare:.1f} s; running backend migrate ...")
        seconds, done = migrate(scratch, url)
        if done.returncode != 0:
            raise SystemExit(f"backend migrate exited {done.returncode}: {done.stderr.strip()[-2000:]}")
        counts = printed_documents(done.stdout)
        if counts != (a.docs, a.docs):
            raise SystemExit(f"backend migrate printed document counts {counts}, expected {a.docs} on both sides")
        say(f"backend migrate: {seconds:.1f} s; timing the verify phase again ...")
        verify = asyncio.run(verify_again(url))
        schema = _schema(base.name)
        shaped = asyncio.run(raw_copy(url, "bench_shaped", f"CREATE TABLE bench_shaped (LIKE {schema}.documents INCLUDING ALL)", batches))  # fmt: skip
        version = asyncio.run(pg_version(url))
    finally:
        if created:
            asyncio.run(admin(a.pg, f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)'))
        shutil.rmtree(scratch, ignore_errors=True)

    n = a.docs
    result = {
        "docs": n,
        "json_bytes_per_doc": round(size / n),
        "users": USERS,
        "collections": len(COLLECTIONS),
        "postgresql": version,
        "seeding_seconds": round(seeding, 2),
        "raw_copy_bare_seconds": round(bare, 2),
        "raw_copy_shaped_seconds": round(shaped, 2),
        "migrate_seconds": round(seconds, 2),
        "migrate_verify_seconds": round(verify, 2),
        "migrate_copy_seconds": round(seconds - verify, 2),
        "migrate_docs_per_second": round(n / seconds),
        "migrate_vs_bare_copy": round(bare / seconds, 3),
        "migrate_vs_shaped_copy": round(shaped / seconds, 3),
    }
    if a.json:
        print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
        return 0
    print(
        f"backend migrate, SQLite -> PostgreSQL {version}: {n:,} documents of {size / n:.0f} bytes of JSON "
        f"({len(COLLECTIONS)} collections, {USERS} users); seeding took {seeding:.1f} s (not counted)"
    )
    print(f"{'':34} {'seconds':>8} {'docs/s':>10} {'vs bare COPY':>13}")
    for name, s in (
        ("raw COPY, bare table", bare),
        ("raw COPY, sbserver's table", shaped),
        ("backend migrate (whole command)", seconds),
    ):
        print(f"{name:34} {s:8.1f} {n / s:10,.0f} {bare / s:12.2f}x")
    print(f"{'  of which copy (the rest)':34} {seconds - verify:8.1f}")
    print(f"{'  of which verify (timed again)':34} {verify:8.1f}")
    return 0


async def pg_version(url: str) -> str:
    conn = await asyncpg.connect(url)
    try:
        return str(await conn.fetchval("SHOW server_version")).split()[0]
    finally:
        await conn.close()


if __name__ == "__main__":
    sys.exit(main())
