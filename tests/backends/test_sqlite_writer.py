"""The SQLite writer on its thread and on the event loop: batches, failure isolation, ordering."""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from sbserver.backends.storage.sqlite_writer import Checkpointer, Writer, _checkpoint, connect
from sbserver.settings import from_env, usable_cpus


@pytest_asyncio.fixture(params=["thread", "inline"])
async def writer(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Writer]:
    path = tmp_path / "w.db"
    setup = connect(path)
    setup.execute("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER)")
    setup.close()
    w = Writer(path, inline=request.param == "inline")
    w.start(asyncio.get_running_loop())
    yield w
    if w.inline:
        w.stop()
    else:
        await asyncio.to_thread(w.stop)


def rows(w: Writer) -> list[tuple[str, int]]:
    c = sqlite3.connect(w.path)
    try:
        return c.execute("SELECT k, v FROM t ORDER BY k").fetchall()
    finally:
        c.close()


def insert(k: str, v: int, calls: list[str] | None = None):  # type: ignore[no-untyped-def]
    def job(c: sqlite3.Connection) -> int:
        if calls is not None:
            calls.append(k)
        c.execute("INSERT INTO t VALUES (?, ?)", (k, v))
        return v

    return job


async def test_concurrent_jobs_share_batches_and_all_land(writer: Writer) -> None:
    got = await asyncio.gather(*(writer.submit(insert(f"k{i:03d}", i)) for i in range(200)))
    assert got == list(range(200))
    assert len(rows(writer)) == 200


async def test_a_failing_job_fails_alone_and_leaves_nothing_half_written(writer: Writer) -> None:
    await writer.submit(insert("dup", 1))
    calls: list[str] = []

    def half_then_fail(c: sqlite3.Connection) -> None:
        c.execute("INSERT INTO t VALUES ('half', 1)")
        c.execute("INSERT INTO t VALUES ('dup', 2)")  # violates the key after a first write

    futures = [
        writer.submit(insert("a", 1, calls)),
        writer.submit(half_then_fail),
        writer.submit(insert("b", 2, calls)),
    ]
    results = await asyncio.gather(*futures, return_exceptions=True)
    assert results[0] == 1 and results[2] == 2
    assert isinstance(results[1], sqlite3.IntegrityError)
    assert rows(writer) == [("a", 1), ("b", 2), ("dup", 1)]  # no 'half'
    # The good jobs may run twice (batch rolled back, then run with savepoints), never three times.
    assert 1 <= calls.count("a") <= 2 and 1 <= calls.count("b") <= 2


async def test_a_lone_failing_job_rolls_back(writer: Writer) -> None:
    def fail(c: sqlite3.Connection) -> None:
        c.execute("INSERT INTO t VALUES ('x', 1)")
        raise ValueError("abort")

    with pytest.raises(ValueError):
        await writer.submit(fail)
    assert rows(writer) == []
    assert await writer.submit(insert("y", 2)) == 2
    assert rows(writer) == [("y", 2)]


async def test_results_arrive_after_the_commit(writer: Writer) -> None:
    """A caller sees its write committed: another connection reads it as soon as the future resolves."""
    for i in range(20):
        await writer.submit(insert(f"c{i}", i))
        assert (f"c{i}", i) in rows(writer)


def test_the_writer_mode_setting_is_checked() -> None:
    assert from_env({"APP_ENV": "dev", "JWT_SECRET": "x", "APP_SECRET": "x"}).sqlite_writer == "auto"
    assert (
        from_env({"APP_ENV": "dev", "JWT_SECRET": "x", "APP_SECRET": "x", "SB_SQLITE_WRITER": " Inline "}).sqlite_writer
        == "inline"
    )
    with pytest.raises(SystemExit, match="unsupported SB_SQLITE_WRITER='fast': use auto, thread or inline"):
        from_env({"APP_ENV": "dev", "JWT_SECRET": "x", "APP_SECRET": "x", "SB_SQLITE_WRITER": "fast"})


_PROBE = (
    "import sys; from sbserver.backends.storage.sqlite import SQLiteStore; "
    "print(SQLiteStore(sys.argv[1], writer=sys.argv[2]).inline_writer)"
)


def _inline_in_process(path: Path, writer: str, cpus: set[int]) -> bool:
    """Whether a store opened by a process pinned to ``cpus`` writes on its event loop."""
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, str(path), writer],
        preexec_fn=lambda: os.sched_setaffinity(0, cpus),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return out.stdout.strip() == "True"


def test_auto_writes_inline_when_the_process_is_pinned_to_one_cpu(tmp_path: Path) -> None:
    cpus = os.sched_getaffinity(0)
    one = {min(cpus)}
    assert _inline_in_process(tmp_path / "a.db", "auto", one) is True
    assert _inline_in_process(tmp_path / "b.db", "thread", one) is False
    assert _inline_in_process(tmp_path / "c.db", "inline", cpus) is True
    if usable_cpus() > 1:  # a machine (or container quota) with a second CPU to give
        assert _inline_in_process(tmp_path / "d.db", "auto", cpus) is False


def test_a_failed_checkpoint_is_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    conn = connect(tmp_path / "x.db")
    conn.close()
    with caplog.at_level(logging.DEBUG, logger="sbserver.sqlite"):
        assert _checkpoint(conn) is False
    [record] = caplog.records
    assert record.levelno == logging.WARNING and "WAL checkpoint (restart) failed" in record.getMessage()


N_WRITES = 3000


@pytest.mark.parametrize("inline", [False, True], ids=["thread", "inline"])
async def test_the_wal_stays_bounded_under_a_steady_stream_of_writes(tmp_path: Path, inline: bool) -> None:
    """A checkpoint on another connection (the checkpointer thread, running here too) never lets
    SQLite restart the WAL while writes keep coming; the writer's own checkpoint past the limit
    does, so the WAL file stays near the limit instead of growing with every write."""
    path = tmp_path / "wal.db"
    setup = connect(path)
    setup.execute("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER)")
    setup.close()
    limit = 256 * 1024
    w = Writer(path, inline=inline, wal_limit=limit)
    w.start(asyncio.get_running_loop())
    checkpointer = Checkpointer(path, interval=0.005)
    checkpointer.start()
    wal = Path(f"{path}-wal")
    largest = 0
    try:
        for i in range(N_WRITES):  # one write at a time: about 4 KB of WAL frames each
            await w.submit(lambda c, i=i: c.execute("INSERT INTO t VALUES (?, ?)", (f"{i:06d}" + "x" * 600, i)))
            largest = max(largest, wal.stat().st_size)
    finally:
        await asyncio.to_thread(checkpointer.stop)
        await asyncio.to_thread(w.stop)
    # bounded: the writes made while a checkpoint copies come on top (unbounded, it reaches 50 MB)
    assert largest < 16 * limit, f"the WAL grew to {largest} bytes (limit {limit})"
    c = sqlite3.connect(path)
    try:
        assert c.execute("SELECT count(*) FROM t").fetchone()[0] == N_WRITES
    finally:
        c.close()
