"""The worker pool: hands runs to idle workers, bridges helper calls, enforces deadlines.

Each run takes one idle worker (waiting when all are busy), sends it the code and arguments,
then serves the worker's helper calls with ``helpers(name, args)`` on the event loop until the
worker reports the end. At most ``concurrency`` runs compute at once (one per usable CPU): more
would only take turns on the same cores, each one's memory going cold while the others run. A
run waiting on an I/O-bound helper (``fetch``, ``sendMail``) gives its turn to another run and
waits for one again before it goes on, so slow calls overlap. The idle worker used last is
taken first, as its caches are the warmest. A run past its deadline, or a worker that dies (memory cap reached
past the engine's own limit), costs that worker: it is killed and replaced, and the run is
reported as failed with the reason.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from sbserver.runtime.protocol import HEADER, MAX_FRAME, encode

log = logging.getLogger("sbserver.runtime")

UNDEFINED = object()  # a helper result that JavaScript should see as undefined
Helpers = Callable[[str, list[Any]], Awaitable[Any]]


@dataclass
class Outcome:
    ok: bool
    output: list[str] = field(default_factory=list)
    error: str = ""
    # "compile" (before handle ran), "run", "timeout", "crash", "refused" (the worker runs nothing)
    stage: str = ""


# The worker's own knobs, passed on when set: nothing else of the server's environment is.
WORKER_VARIABLES = ("SB_WORKER_MAX_BYTES", "SB_LEAN_CONTEXTS", "SB_ALLOW_UNCAPPED_WORKERS")
SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"
PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])  # the directory holding ``sbserver``


def worker_environment() -> dict[str, str]:
    """The whole environment of a worker process, built from scratch: a worker runs user code,
    so it never inherits the server's (JWT_SECRET, APP_SECRET, DATABASE_URL, REDIS_URL,
    passwords, cloud credentials ...), whatever a future engine might let that code read."""
    env = {
        "PATH": SAFE_PATH,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONPATH": PACKAGE_ROOT,  # imports sbserver however the server was started
    }
    for name in WORKER_VARIABLES:
        value = os.environ.get(name)
        if value is not None:
            env[name] = value
    return env


class Worker:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        assert proc.stdin is not None and proc.stdout is not None
        self.stdin = proc.stdin
        self.stdout = proc.stdout

    async def send(self, message: dict[str, Any]) -> None:
        try:
            self.stdin.write(encode(message))
        except RuntimeError as exc:  # uvloop: the pipe's handle closed with the process
            raise ConnectionError(f"worker {self.proc.pid} is gone") from exc
        await self.stdin.drain()

    def gone(self) -> bool:
        """True when the process has exited or its pipe closed (it died between runs)."""
        return self.proc.returncode is not None or self.stdin.is_closing()

    async def receive(self) -> dict[str, Any]:
        head = await self.stdout.readexactly(HEADER.size)
        (size,) = HEADER.unpack(head)
        if size > MAX_FRAME:
            raise ConnectionError(f"worker sent a frame of {size} bytes")
        value: dict[str, Any] = orjson.loads(await self.stdout.readexactly(size))
        return value

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()


class Idle:
    """Idle workers, the one returned last handed out first (its caches are the warmest)."""

    def __init__(self) -> None:
        self._stack: list[Worker] = []
        self._waiters: collections.deque[asyncio.Future[Worker]] = collections.deque()

    def put(self, worker: Worker) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(worker)
                return
        self._stack.append(worker)

    def take(self) -> Worker | None:
        """An idle worker now, or None."""
        return self._stack.pop() if self._stack else None

    async def get(self) -> Worker:
        if self._stack:
            return self._stack.pop()
        waiter: asyncio.Future[Worker] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():  # handed over just before the cancel
                self.put(waiter.result())
            raise


class RuntimePool:
    def __init__(
        self,
        size: int,
        timeout: float,
        memory_mb: int,
        stack_kb: int = 1024,
        concurrency: int = 0,
        io_helpers: frozenset[str] = frozenset(),
    ) -> None:
        self.size = max(1, size)
        self.timeout = timeout
        self.memory = memory_mb * 1024 * 1024
        self.stack = stack_kb * 1024
        self.concurrency = min(self.size, concurrency) if concurrency > 0 else self.size
        self.io_helpers = io_helpers
        self._turns = asyncio.Semaphore(self.concurrency)
        self._idle = Idle()
        self._all: set[Worker] = set()
        self._started = False
        self._tasks: set[asyncio.Future[None]] = set()

    async def _spawn(self) -> Worker:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "sbserver.runtime.worker",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=worker_environment(),
            # a session of its own: a terminal's Ctrl-C (sent to the server's process group) never
            # reaches a worker, not even one still starting; the server ends workers itself, and a
            # worker whose server is gone exits at the end of its input
            start_new_session=True,
        )
        worker = Worker(proc)
        self._all.add(worker)
        return worker

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        for _ in range(self.size):
            self._idle.put(await self._spawn())

    async def stop(self) -> None:
        self._started = False
        self._idle = Idle()
        for worker in list(self._all):
            worker.kill()
            with contextlib.suppress(Exception):
                await worker.proc.wait()
        self._all.clear()

    async def _replace(self, worker: Worker) -> None:
        worker.kill()
        self._all.discard(worker)
        with contextlib.suppress(Exception):
            await worker.proc.wait()
        if self._started:
            self._idle.put(await self._spawn())

    async def run(
        self,
        code: str,
        args: list[Any],
        helpers: Helpers,
        legacy: Any = None,
        secrets: dict[str, str] | None = None,
        timeout: float | None = None,
        check: bool = False,
    ) -> Outcome:
        if not self._started:
            await self.start()
        turn = False
        worker: Worker | None = None
        outcome = Outcome(ok=False)
        healthy = True
        job = {
            "op": "run",
            "code": code,
            "args": args,
            "legacy": legacy,
            "secrets": secrets or {},
            "memory": self.memory,
            "stack": self.stack,
            "check": check,
        }
        try:
            worker = await self._live_worker(job)
            turn = True
            async with asyncio.timeout(timeout or self.timeout):
                while True:
                    frame = await worker.receive()
                    op = frame.get("op")
                    lines = frame.get("output")
                    if lines:
                        outcome.output.extend(str(line) for line in lines)
                    if op == "call":
                        if frame.get("name") in self.io_helpers:
                            self._turns.release()
                            turn = False
                            value = await self._call(helpers, frame)
                            await self._turns.acquire()
                            turn = True
                        else:
                            value = await self._call(helpers, frame)
                        await worker.send({"op": "reply", "value": value})
                    elif op == "done":
                        outcome.ok = bool(frame.get("ok"))
                        outcome.error = str(frame.get("error") or "")
                        outcome.stage = str(frame.get("stage") or "")
                        break
        except TimeoutError:
            healthy = False
            outcome.ok, outcome.stage, outcome.error = False, "timeout", "function execution timed out"
        except (asyncio.IncompleteReadError, ConnectionError, BrokenPipeError, OSError) as exc:
            healthy = False
            outcome.ok, outcome.stage = False, "crash"
            outcome.error = "function stopped: it exceeded its memory limit or crashed" + (
                f" ({exc.__class__.__name__})" if not isinstance(exc, asyncio.IncompleteReadError) else ""
            )
        except BaseException:
            healthy = False
            raise
        finally:
            if turn:
                self._turns.release()
            if worker is not None:
                if healthy:
                    self._idle.put(worker)
                else:
                    self._replace_later(worker)
        return outcome

    async def _live_worker(self, job: dict[str, Any]) -> Worker:
        """An idle worker that took ``job``, with a CPU turn held for it.

        The turn comes first, then the worker that went idle last (the warmest: with one CPU,
        runs keep to one worker instead of taking turns between processes). A run never holds
        a turn while it waits for a worker: the runs holding every worker may be waiting for a
        turn (to go on after a fetch). A worker that died while idle (killed, out of memory) has
        not seen the job: it is replaced and the job goes to the next one."""
        for _ in range(self.size + 1):
            await self._turns.acquire()
            worker = self._idle.take()
            if worker is None:
                self._turns.release()
                worker = await self._idle.get()
                try:
                    await self._turns.acquire()
                except BaseException:
                    self._idle.put(worker)
                    raise
            if not worker.gone():
                try:
                    await worker.send(job)
                    return worker
                except (ConnectionError, OSError):
                    pass
                except BaseException:
                    self._turns.release()
                    self._replace_later(worker)
                    raise
            self._turns.release()
            log.warning("function worker %s had exited; replacing it", worker.proc.pid)
            self._replace_later(worker)
        raise ConnectionError("function workers keep exiting before they can take a run")

    def _replace_later(self, worker: Worker) -> None:
        task = asyncio.ensure_future(self._replace(worker))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def check(self, code: str, timeout: float = 3.0) -> Outcome:
        """Compile the code and find ``handle`` without running it (helpers are refused)."""

        async def no_helpers(name: str, args: list[Any]) -> Any:
            return UNDEFINED

        outcome = await self.run(code, [], no_helpers, timeout=timeout, check=True)
        if outcome.stage == "timeout":
            outcome.error = "the code's top level did not finish loading in time"
        return outcome

    @staticmethod
    async def _call(helpers: Helpers, frame: dict[str, Any]) -> str | None:
        """Run one helper; its result goes back as JSON text (None = undefined)."""
        name = str(frame.get("name", ""))
        args = frame.get("args")
        try:
            value = await helpers(name, args if isinstance(args, list) else [])
        except Exception as exc:  # a helper must answer, never break the run
            log.exception("helper %s failed", name)
            value = {"ok": False, "content": f"internal error in {name}(): {exc.__class__.__name__}"}
        if value is UNDEFINED:
            return None
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
