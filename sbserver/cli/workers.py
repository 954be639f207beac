"""``backend server --workers N``: N server processes on one listening socket.

Only on PostgreSQL with Redis. Every process is a full peer: requests, realtime streams,
functions and scheduled tasks work whichever process a client reaches, because documents, the
function queue and task claims live in PostgreSQL and realtime messages and the cache go through
Redis (the same guarantees as separate ``backend server`` processes behind a proxy, which the
cluster tests run). The embedded SQLite store keeps its single writer in one process, so there
``--workers`` above 1 is refused with the reason rather than run with a second writer.

This process is the supervisor: it checks the settings and the port once, binds the socket,
and starts N workers (``python -m sbserver server --worker-fd FD ...``) that inherit it; the
kernel hands each new connection to one of them. Each worker answers with an ``X-Served-By:
worker-<i>`` header, so an operator (or a test) can tell which process served a request.

Stopping: SIGINT or SIGTERM is passed on once to every worker, which stops as a single server
does (streams get their final event, requests in flight their grace period); workers still
running ``grace + KILL_MARGIN`` seconds later are killed. A second signal kills them at once.
A worker that exits while the group is running is started again, after a pause that doubles with
each failure in a row; when one fails right after starting ``MAX_QUICK_FAILURES`` times in a row,
the group stops with status 1.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import argparse

    from starlette.types import ASGIApp

    from sbserver.settings import Settings

KILL_MARGIN = 10.0  # seconds past the workers' own grace before they are killed
QUICK = 10.0  # a worker that exits within this many seconds of its start failed "at start"
MAX_QUICK_FAILURES = 5
POLL = 0.1
SERVED_BY = b"x-served-by"


def refusal(workers: int, settings: Settings) -> str:
    """Why ``--workers`` cannot run as asked ('' when it can)."""
    if workers < 1:
        return "--workers must be 1 or more"
    if workers == 1:
        return ""
    if settings.data_store != "pg":
        return (
            f"--workers {workers} needs PostgreSQL and Redis: the embedded SQLite store has one writer, "
            "in one process (set DATA_STORE=pg with DATABASE_URL, and REDIS_URL; or run one process)"
        )
    if not settings.redis_url:
        return (
            f"--workers {workers} on PostgreSQL also needs REDIS_URL: the processes share realtime "
            "messages and the cache through Redis"
        )
    return ""


def listening_socket(host: str, port: int) -> socket.socket:
    """The socket every worker accepts on, inheritable by the workers."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[
        0
    ]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(address)
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def served_by(app: ASGIApp, index: int) -> ASGIApp:
    """``app`` answering every HTTP response with ``X-Served-By: worker-<index>``."""
    value = f"worker-{index}".encode()

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return

        async def tagged(message: Any) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), (SERVED_BY, value)]
            await send(message)

        await app(scope, receive, tagged)

    return wrapped


def _die_with_parent() -> None:
    """In the worker, before exec: SIGTERM when the supervisor dies, so a killed supervisor
    (SIGKILL, OOM) never leaves workers serving on their own."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class Worker:
    index: int
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    quick_failures: int = 0
    restart_at: float = 0.0


@dataclass
class Supervisor:
    args: argparse.Namespace
    sock: socket.socket
    workers: list[Worker] = field(default_factory=list)
    signals: int = 0

    def command(self, index: int) -> list[str]:
        a = self.args
        cmd = [sys.executable, "-m", "sbserver", "server", "--worker-fd", str(self.sock.fileno())]
        cmd += ["--worker-index", str(index), "--log-level", a.log_level, "--log-format", a.log_format]
        cmd += ["--shutdown-grace", str(a.shutdown_grace)]
        for flag, value in (("--host", a.host), ("--port", a.port), ("--data-dir", a.data_dir)):
            if value:
                cmd += [flag, str(value)]
        if a.no_log:
            cmd.append("--no-log")
        return cmd

    def start(self, worker: Worker) -> None:
        worker.proc = subprocess.Popen(
            self.command(worker.index),
            pass_fds=(self.sock.fileno(),),
            process_group=0,  # a terminal's Ctrl-C reaches the supervisor only, which passes it on once
            preexec_fn=_die_with_parent,
        )
        worker.started = time.monotonic()

    def on_signal(self, signum: int, frame: Any) -> None:
        self.signals += 1

    def running(self) -> list[subprocess.Popen[bytes]]:
        return [w.proc for w in self.workers if w.proc is not None and w.proc.poll() is None]

    def send(self, sig: int) -> None:
        for proc in self.running():
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)

    def supervise(self, count: int) -> int:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self.on_signal)
        self.workers = [Worker(i) for i in range(count)]
        for worker in self.workers:
            self.start(worker)
        status = 0
        while not self.signals:
            time.sleep(POLL)
            now = time.monotonic()
            for worker in self.workers:
                proc = worker.proc
                if proc is not None and proc.poll() is not None:
                    quick = now - worker.started < QUICK
                    worker.quick_failures = worker.quick_failures + 1 if quick else 0
                    sys.stderr.write(
                        f"sbserver: worker {worker.index} (pid {proc.pid}) exited with status {proc.returncode}\n"
                    )
                    worker.proc = None
                    if worker.quick_failures >= MAX_QUICK_FAILURES:
                        sys.stderr.write(
                            f"sbserver: worker {worker.index} keeps exiting right after it starts "
                            "(see the lines above); stopping every worker\n"
                        )
                        status = 1
                        self.signals = 1
                        break
                    worker.restart_at = now + min(30.0, 0.5 * 2 ** max(0, worker.quick_failures - 1))
                if worker.proc is None and not self.signals and now >= worker.restart_at:
                    self.start(worker)
        return self.stop(status)

    def stop(self, status: int) -> int:
        self.send(signal.SIGTERM)
        handled = self.signals
        deadline = time.monotonic() + max(0.0, self.args.shutdown_grace) + KILL_MARGIN
        while self.running():
            if self.signals > handled or time.monotonic() > deadline:  # a second signal, or too long
                self.send(signal.SIGKILL)
            time.sleep(POLL)
        self.sock.close()
        return status


def run_group(args: argparse.Namespace, settings: Settings, announce: Any) -> int:
    """Bind, start ``args.workers`` workers and supervise them until a signal; the exit status."""
    try:
        sock = listening_socket(settings.host, settings.port)
    except OSError as exc:
        sys.stderr.write(f"sbserver cannot start: port {settings.port} on {settings.host}: {exc.strerror}\n")
        return 1
    announce(
        f"sbserver on http://{settings.host}:{settings.port} — store: pg, env: {settings.app_env}, "
        f"workers: {args.workers} (supervisor pid {os.getpid()})"
    )
    status = Supervisor(args, sock).supervise(args.workers)
    announce("sbserver stopped")
    return status
