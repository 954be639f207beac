"""``backend server``: run the HTTP server (dev app on the embedded SQLite store by default).

Stopping: the first SIGINT (Ctrl-C) or SIGTERM stops accepting connections, ends every realtime
stream (SSE: a final ``error`` event "server shutting down", then the end of the response;
WebSocket: that event, then close code 1001), gives requests still running ``--shutdown-grace``
seconds, stops the app (functions, scheduler, backends) and exits with status 0. A second signal
exits at once. Uvicorn alone would wait for the streams to end, which they never do.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import uvicorn

    from sbserver.settings import Settings

SHUTDOWN_REASON = "server shutting down"
STREAMS_GRACE = 2.0  # seconds the open streams get to write their final event and close
log = logging.getLogger("sbserver")


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("server", help="run the server")
    p.add_argument("--host", default=None, help="interface to listen on (default 127.0.0.1; 0.0.0.0 in prod)")
    p.add_argument("-p", "--port", type=int, default=None, help="port (default $PORT or 8099)")
    p.add_argument("--data-dir", default=None, help="where the embedded store keeps its files (default ./.sbdata)")
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="server processes on one port (above 1: PostgreSQL and Redis only; the embedded SQLite store "
        "keeps its one writer in one process)",
    )
    # set by the supervisor of --workers N for each worker it starts (sbserver/cli/workers.py)
    p.add_argument("--worker-fd", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--worker-index", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument(
        "--persist-data",
        action="store_true",
        help="keep the data in the embedded SQLite store under --data-dir, even if DATA_STORE names "
        "another (StaticBackend's flag; this server never keeps data only in memory)",
    )
    p.add_argument(
        "--no-log",
        action="store_true",
        help="no per-request or per-run log lines (warnings, errors and the start and stop lines stay)",
    )
    p.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="info: a line per request, function run and task run; debug: more (client, route, what "
        "functions print, realtime connections, uvicorn's lines); warning, error: only those",
    )
    p.add_argument(
        "--log-format",
        default="text",
        choices=["text", "json"],
        help="text for people, json for machines (one object per line, on stdout and stderr)",
    )
    p.add_argument(
        "--shutdown-grace",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="on SIGINT/SIGTERM, how long requests still running may finish (default 5)",
    )
    p.set_defaults(run=run)


async def preflight(settings: Settings) -> str:
    """Open and close every backend once, so a bad setting is one clear line, not a traceback."""
    from sbserver.backends.bus import create_bus
    from sbserver.backends.cache import create_cache
    from sbserver.backends.storage import create_store
    from sbserver.errors import SBError

    for backend in (create_store(settings), create_cache(settings), create_bus(settings)):
        try:
            await backend.open()
        except SBError as exc:
            return exc.message
        except OSError as exc:
            return str(exc)
        finally:
            with contextlib.suppress(Exception):
                await backend.close()
    return ""


def port_problem(host: str, port: int) -> str:
    """Why the server could not listen on ``host:port`` ('' when it can): checked before anything
    is opened or printed, where uvicorn would find it only after start-up, as a bare errno."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return f"cannot listen on {host}: {exc.strerror} (change it with --host or SB_HOST)"
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            what = "is already in use" if exc.errno == errno.EADDRINUSE else f"cannot be used ({exc.strerror})"
            return f"port {port} on {host} {what}: choose another with -p/--port (or PORT)"
    return ""


def is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def dev_exposure_warning(host: str) -> str:
    rule = "!" * 78
    return (
        f"{rule}\n"
        f"WARNING: dev mode (APP_ENV=dev) is listening on {host}, reachable from other machines.\n"
        "Dev mode has a known root token alias, fixed magic-link codes, memory-mode sign-ups and\n"
        "accepts every CORS origin. Use APP_ENV=prod for anything but local development.\n"
        f"{rule}\n"
    )


def exit_now() -> None:
    """A second signal: leave at once, whatever is still running (no traceback, status 0)."""
    with contextlib.suppress(Exception):  # a write the signal interrupted may make these refuse
        sys.stderr.write("sbserver: second signal, stopping at once\n")
        sys.stderr.flush()
        sys.stdout.flush()
    os._exit(0)


class CutShort(logging.Filter):
    """Requests still running when the grace period ends are cancelled; uvicorn would log each
    cancel as an "Exception in ASGI application" with a CancelledError traceback. One line instead,
    once the shutdown has begun (before it, such a record is a real error and keeps its traceback)."""

    def __init__(self) -> None:
        super().__init__()
        self.stopping = False

    def filter(self, record: logging.LogRecord) -> bool:
        if self.stopping and record.exc_info and isinstance(record.exc_info[1], asyncio.CancelledError):
            record.msg, record.args = "a request still running after the shutdown grace period was cancelled", ()
            record.exc_info, record.exc_text = None, None
        return True


def graceful_server(config: uvicorn.Config, drain: Callable[[], Awaitable[object]]) -> uvicorn.Server:
    """A uvicorn server whose shutdown first ends the app's realtime streams (``drain``).

    Uvicorn stops accepting, then waits for open connections to finish before the lifespan
    shutdown runs; a stream never finishes by itself, so the app would never learn it should stop.
    Here the shutdown closes the listening sockets, runs ``drain`` (each stream gets a final event
    and closes), and goes on with uvicorn's own: idle connections closed, requests in flight given
    ``timeout_graceful_shutdown`` seconds, then the lifespan shutdown. Signals are not re-raised
    after it (uvicorn does, which ends the process with a KeyboardInterrupt traceback or status
    -15), and a second one exits at once.
    """
    import uvicorn

    cut_short = CutShort()
    logging.getLogger("uvicorn.error").addFilter(cut_short)  # after Config, which sets up logging

    class GracefulServer(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            if self.should_exit:
                exit_now()
            self.should_exit = True  # the main loop sees it within 0.1 s and calls shutdown()

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            # kept until the process ends: a signal during the last teardown also means "now"
            if threading.current_thread() is threading.main_thread():  # the only one that may set them
                for sig in (signal.SIGINT, signal.SIGTERM):
                    signal.signal(sig, self.handle_exit)
            yield

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            cut_short.stopping = True
            for server in self.servers:  # no new connections while the streams end
                server.close()
            try:
                await drain()
            except Exception:
                log.exception("ending the realtime streams failed")
            await super().shutdown(sockets)

    return GracefulServer(config)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from sbserver import logs
    from sbserver.app import create_app
    from sbserver.cli.workers import refusal, run_group, served_by
    from sbserver.settings import from_env

    overrides: dict[str, Any] = {}
    if args.host:
        overrides["host"] = args.host
    if args.port:
        overrides["port"] = args.port
    if args.data_dir:
        overrides["data_dir"] = args.data_dir
    settings = from_env(**overrides)
    if args.persist_data and settings.data_store != "sqlite":  # the embedded store, not the DATABASE_URL one
        settings = settings.with_overrides(data_store="sqlite", database_url="")
    logs.setup(args.log_level, args.log_format, activity=not args.no_log)
    worker = args.worker_fd is not None
    if not worker:  # the supervisor of a group checks once for all its workers
        refused = refusal(args.workers, settings)
        if refused:
            sys.stderr.write(f"sbserver cannot start: {refused}\n")
            return 2
        busy = port_problem(settings.host, settings.port)
        if busy:
            sys.stderr.write(f"sbserver cannot start: {busy}\n")
            return 1
        problem = asyncio.run(preflight(settings))
        if problem:
            sys.stderr.write(f"sbserver cannot start: {problem}\n")
            return 1
        if settings.is_dev and not is_loopback(settings.host):
            logs.announce(dev_exposure_warning(settings.host).rstrip("\n"), sys.stderr, "warning")
        if args.workers > 1:
            return run_group(args, settings, logs.announce)
    store = settings.data_store if settings.data_store == "pg" else f"sqlite ({settings.sqlite_path})"
    if worker:
        logs.announce(f"sbserver worker {args.worker_index} (pid {os.getpid()}) serving")
    else:
        logs.announce(f"sbserver on http://{settings.host}:{settings.port} — store: {store}, env: {settings.app_env}")
    app = create_app(settings)
    # the dev app's banner, as JSON with --log-format json; printed by one worker of a group
    app.state.services.tenancy.announce = logs.announce if args.worker_index == 0 else lambda *a, **k: None
    config = uvicorn.Config(
        served_by(app, args.worker_index) if worker else app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_config=None,  # our handler and format (sbserver/logs.py)
        log_level="info" if args.log_level == "debug" else "warning",
        server_header=False,
        date_header=False,
        timeout_graceful_shutdown=max(0.0, args.shutdown_grace),
    )
    broker = app.state.services.broker
    server = graceful_server(config, lambda: broker.drain(SHUTDOWN_REASON, min(STREAMS_GRACE, args.shutdown_grace)))
    if worker:
        server.run(sockets=[socket.socket(fileno=args.worker_fd)])
    else:
        server.run()
    logs.ACTIVITY.flush()
    logs.announce(f"sbserver worker {args.worker_index} stopped" if worker else "sbserver stopped")
    return 0
