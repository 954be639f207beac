"""The one SQLite writer: a thread that owns the only write connection (or, in a process with
one CPU, the event loop itself: see ``Writer``).

Callers submit plain functions ``fn(conn) -> result``. The writer takes every job that is
waiting (up to ``max_batch``), runs them in one ``BEGIN IMMEDIATE`` transaction (if one fails,
the batch runs again with a savepoint per job, so the failure is that job's alone), commits
once, and only then resolves the callers' futures. A caller therefore never sees its write
before it is durable in the WAL, and events derived from a write can be published after its future resolves.

The WAL: the checkpointer thread copies it back into the database file, but SQLite only starts
writing the WAL from its beginning again when a write transaction begins with every frame
already copied, which a checkpoint on another connection never arranges while writes keep
coming. The WAL would then grow without end, and appending to new file blocks costs the kernel
far more than overwriting cached ones (zero-filling each block; it was an eighth of all the CPU
a stream of writes used). So once the WAL passes ``wal_limit`` bytes, the writer restarts it:
on the writer thread, a checkpoint on its own connection between two batches; inline, from a
thread (its fsyncs off the loop), the bulk copied on a second connection while batches go on,
then batches held only while the frames written meanwhile are copied on the writer's
connection (or from the moment the WAL reaches four times the limit, if the copy falls that far
behind). ``journal_size_limit`` trims the file back when the WAL restarts.
"""

from __future__ import annotations

import asyncio
import bisect
import concurrent.futures
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from sbserver.backends.storage.documents.filters import register_functions
from sbserver.settings import usable_cpus

T = TypeVar("T")
OVERGROWN = 4  # inline: batches wait for a WAL restart once the WAL is this many times its limit
Job = tuple[Callable[[sqlite3.Connection], Any], asyncio.Future[Any]]
BATCH_BOUNDS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class BatchSizes:
    """How many writes each transaction carried: a count per bucket of ``BATCH_BOUNDS`` (the last
    one past them), for ``/metrics``. Only the writer adds; a reader may see a batch half-counted."""

    def __init__(self) -> None:
        self.counts = [0] * (len(BATCH_BOUNDS) + 1)
        self.total = 0  # writes in every batch counted

    def add(self, size: int) -> None:
        self.counts[bisect.bisect_left(BATCH_BOUNDS, size)] += 1
        self.total += size


PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA busy_timeout=10000",
    "PRAGMA foreign_keys=OFF",
    "PRAGMA temp_store=MEMORY",
    # Reads through a memory map of the file (shared by every connection through the OS page
    # cache) rather than each connection's own 2 MB page cache, which a scan of a large
    # collection would churn.
    "PRAGMA mmap_size=1073741824",
)


def connect(path: Path) -> sqlite3.Connection:
    """A connection with the store's pragmas and the functions compiled filters call."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, cached_statements=256)
    for pragma in PRAGMAS:
        conn.execute(pragma)
    register_functions(conn)
    return conn


def _settle(results: list[Result]) -> None:
    for fut, value, exc in results:
        if fut.cancelled():
            continue
        if exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(value)


def one_core() -> bool:
    """True when this process may run on a single CPU (pinned, or a one-core machine)."""
    return usable_cpus() == 1


class Writer:
    """``inline``: run the batches on the event loop itself, each one after the callbacks of the
    loop iteration that submitted its jobs. On one core a writer thread cannot run beside the
    loop anyway, and handing every write to it and back costs two thread switches."""

    def __init__(
        self,
        path: Path,
        max_batch: int = 512,
        inline: bool = False,
        wal_limit: int = 16 << 20,
        sizes: BatchSizes | None = None,
    ) -> None:
        self.path = path
        self.sizes = sizes or BatchSizes()
        self.max_batch = max_batch
        self.inline = inline
        self.wal_limit = wal_limit
        self._wal = Path(f"{path}-wal")
        self._batches = 0
        self._held = False  # inline: batches wait for the end of a checkpoint
        self._stopping = False
        self._copier: sqlite3.Connection | None = None  # inline: the first pass of a checkpoint
        self._checkpoint: concurrent.futures.Future[None] | None = None  # inline: one in flight
        self._conn: sqlite3.Connection | None = None
        self._pending: list[Job] = []
        self._scheduled = False
        self._queue: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="sqlite-writer", daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._start_error: BaseException | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        if self.inline:
            self._conn = self._connect()
            return
        self._thread.start()
        self._ready.wait()
        if self._start_error is not None:
            raise self._start_error

    def submit(self, fn: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        assert self._loop is not None, "writer not started"
        fut: asyncio.Future[T] = self._loop.create_future()
        if self._conn is not None:
            self._pending.append((fn, fut))
            if not self._scheduled:
                self._scheduled = True
                self._loop.call_soon(self._run_inline)
        else:
            self._queue.put((fn, fut))
        return fut

    def _run_inline(self) -> None:
        self._scheduled = False
        if self._checkpoint is not None and not self._held and self._overgrown():
            self._held = True  # the copy lags behind the writes (a starved thread): wait for it
        if self._held:  # the batch goes when the checkpoint is done
            return
        conn = self._conn
        results: list[Result]
        if conn is None:  # stopped meanwhile
            results = [(fut, None, ConnectionError("the store is closed")) for _, fut in self._pending]
            self._pending = []
        else:
            batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
            results = self._run_safely(conn, batch)
            if self._checkpoint is None and self._wal_too_long():
                self._checkpoint_off_loop(conn)
        if self._pending and self._loop is not None:
            self._scheduled = True
            self._loop.call_soon(self._run_inline)
        _settle(results)

    def _run_safely(self, conn: sqlite3.Connection, batch: list[Job]) -> list[Result]:
        self.sizes.add(len(batch))
        try:
            return self._run_batch(conn, batch)
        except BaseException as exc:  # the connection itself failed: fail the batch, keep serving
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            return [(fut, None, exc) for _, fut in batch]

    def _wal_too_long(self) -> bool:
        """Checked every few batches (a stat call); the limit is a soft one."""
        self._batches += 1
        return not self._batches % 8 and self._wal_size() > self.wal_limit

    def _overgrown(self) -> bool:
        """Inline, while a restart is under way: the WAL has grown to four times the limit, so
        batches wait for the restart; the WAL stays bounded even when the restart's thread gets
        little CPU."""
        return self._wal_size() > OVERGROWN * self.wal_limit

    def _wal_size(self) -> int:
        try:
            return self._wal.stat().st_size
        except OSError:
            return 0

    def _checkpoint_off_loop(self, conn: sqlite3.Connection) -> None:
        """Inline mode: restart the WAL from a thread, its fsyncs off the loop. First the bulk of
        the copy, on a connection of its own, while batches go on; then, with batches held, the
        frames written meanwhile, on the writer's connection, so that the next batch begins on a
        fully copied WAL and SQLite starts it over."""
        assert self._loop is not None
        loop = self._loop
        done: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._checkpoint = done

        def work() -> None:
            try:
                if self._copier is None:
                    self._copier = connect(self.path)
                _checkpoint(self._copier)
                held = threading.Event()
                loop.call_soon_threadsafe(self._hold, held)
                while not held.wait(0.05):
                    if self._stopping:
                        return
                _checkpoint_all(conn)
            except RuntimeError:  # the loop is closed: nobody is writing any more
                pass
            except sqlite3.Error as exc:  # the second connection could not open: the next pass tries again
                checkpoint_failed(exc, "restart connection")
            finally:
                done.set_result(None)
                try:
                    loop.call_soon_threadsafe(self._checkpoint_done)
                except RuntimeError:
                    pass

        threading.Thread(target=work, name="sqlite-wal-restart", daemon=True).start()

    def _hold(self, held: threading.Event) -> None:
        """Between two batches: none runs until the checkpoint is done."""
        self._held = True
        held.set()

    def _checkpoint_done(self) -> None:
        self._checkpoint = None
        self._held = False
        if self._pending and not self._scheduled and self._loop is not None:
            self._scheduled = True
            self._loop.call_soon(self._run_inline)

    async def checkpoint_done(self) -> None:
        """Inline mode: wait, without holding the loop, for a checkpoint using the connection."""
        if self._checkpoint is not None:
            await asyncio.wrap_future(self._checkpoint)

    def stop(self) -> None:
        self._stopping = True
        if self._checkpoint is not None:
            self._checkpoint.result()
        if self._copier is not None:
            self._copier.close()
            self._copier = None
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.close()
            return
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def _connect(self) -> sqlite3.Connection:
        conn = connect(self.path)
        # Checkpoints (and their fsync) run on the checkpointer thread, never inside a commit;
        # the writer's own only when the WAL has grown past wal_limit (see the module's doc).
        conn.execute("PRAGMA wal_autocheckpoint=0")
        conn.execute(f"PRAGMA journal_size_limit={int(self.wal_limit)}")
        return conn

    def _run(self) -> None:
        try:
            conn = self._connect()
        except BaseException as exc:  # reported to start()
            self._start_error = exc
            self._ready.set()
            return
        self._ready.set()
        loop = self._loop
        assert loop is not None
        stopping = False
        try:
            while not stopping:
                first = self._queue.get()
                if first is None:
                    break
                batch = [first]
                while len(batch) < self.max_batch:
                    try:
                        nxt = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is None:
                        stopping = True
                        break
                    batch.append(nxt)
                results = self._run_safely(conn, batch)
                try:
                    loop.call_soon_threadsafe(_settle, results)
                except RuntimeError:  # the loop closed under us: nobody is waiting any more
                    return
                if self._wal_too_long():
                    _checkpoint_all(conn)
        finally:
            conn.close()

    @staticmethod
    def _run_batch(conn: sqlite3.Connection, batch: list[Job]) -> list[Result]:
        """One transaction for the batch. Jobs rarely fail, so the batch first runs without a
        savepoint per job; if one fails, it is rolled back and run again with savepoints, so the
        failure is that job's alone (jobs only touch the database, so running one twice is safe)."""
        if len(batch) == 1:
            return _run_one(conn, batch[0])
        return _run_plain(conn, batch) or _run_isolated(conn, batch)


Result = tuple[asyncio.Future[Any], Any, BaseException | None]

log = logging.getLogger("sbserver.sqlite")
_CONTENDED = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def checkpoint_failed(exc: sqlite3.Error, where: str) -> None:
    """Log a checkpoint that failed: busy or locked is routine (the next pass catches up) and
    only a debug line; anything else (I/O, a full disk, a closed connection) is a warning."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None and code & 0xFF in _CONTENDED:
        log.debug("WAL checkpoint (%s) deferred: %s", where, exc)
    else:
        log.warning("WAL checkpoint (%s) failed: %s", where, exc)


def _checkpoint(conn: sqlite3.Connection) -> bool:
    """Copy what the WAL holds into the database. False when another connection's checkpoint
    was in progress (nothing copied); True otherwise, even if a reader kept some frames."""
    try:
        busy, _, _ = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    except sqlite3.Error as exc:  # busy or locked: the next batch past the limit tries again
        checkpoint_failed(exc, "restart")
        return False
    return not busy


def _checkpoint_all(conn: sqlite3.Connection, tries: int = 25) -> None:
    """With no write in progress: copy every frame, so that the next write starts the WAL over.
    A pass made while the checkpointer thread's own checkpoint runs gives up at once, copying
    nothing, and the WAL would grow on until the next attempt: that checkpoint is over within
    milliseconds, so try again a few times."""
    for _ in range(tries):
        if _checkpoint(conn):
            return
        time.sleep(0.002)


def _rollback(conn: sqlite3.Connection) -> None:
    try:
        conn.execute("ROLLBACK")
    except sqlite3.Error:
        pass


def _run_one(conn: sqlite3.Connection, job: Job) -> list[Result]:
    fn, fut = job
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as exc:
        return [(fut, None, exc)]
    try:
        value = fn(conn)
        conn.execute("COMMIT")
    except BaseException as exc:
        _rollback(conn)
        return [(fut, None, exc)]
    return [(fut, value, None)]


def _run_plain(conn: sqlite3.Connection, batch: list[Job]) -> list[Result] | None:
    """The batch without savepoints; None (and nothing written) when any job or the commit failed."""
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.Error:
        return None
    results: list[Result] = []
    try:
        for fn, fut in batch:
            results.append((fut, fn(conn), None))
        conn.execute("COMMIT")
    except BaseException:
        _rollback(conn)
        return None
    return results


def _run_isolated(conn: sqlite3.Connection, batch: list[Job]) -> list[Result]:
    results: list[Result] = []
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as exc:
        return [(fut, None, exc) for _, fut in batch]
    for fn, fut in batch:
        conn.execute("SAVEPOINT job")
        try:
            value = fn(conn)
        except BaseException as exc:
            conn.execute("ROLLBACK TO job")
            conn.execute("RELEASE job")
            results.append((fut, None, exc))
        else:
            conn.execute("RELEASE job")
            results.append((fut, value, None))
    try:
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        _rollback(conn)
        return [(fut, None, exc) for _, fut in batch]
    return results


class Checkpointer:
    """Copies the WAL back into the database file every ``interval`` seconds on its own thread
    and connection (PASSIVE: never waits for readers or blocks the writer), so the writer's
    commits never stall on a checkpoint's fsync."""

    def __init__(self, path: Path, interval: float = 1.0) -> None:
        self.path = path
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpointer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        conn = connect(self.path)
        try:
            while not self._stop.wait(self.interval):
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error as exc:  # busy or locked: the next round catches up
                    checkpoint_failed(exc, "periodic")
            try:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as exc:
                checkpoint_failed(exc, "at close")
        finally:
            conn.close()
